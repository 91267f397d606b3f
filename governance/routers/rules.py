"""A collaboration's rules: the version in force, proposals and their history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from governance import rule_versions
from governance.dependencies import (
    HubDep,
    SessionDep,
    StewardDep,
    UserDep,
    VersionPath,
)
from governance.errors import ApiError, error_responses
from governance.lookups import find_collaboration, require_member
from governance.models import RuleVersion

router = APIRouter(
    prefix="/collaborations/{name}/rules",
    tags=["rules"],
    responses=error_responses(401, 403, 404, 422, 429),
)


class RuleProposal(BaseModel):
    """A proposed change: the rules to change, with their new values, and why."""

    changes: dict[str, Any] = Field(
        min_length=1, description="rule names and their new values, e.g. min_count"
    )
    reason: str = Field(min_length=1, max_length=2000)


class AcceptanceOut(BaseModel):
    """A member organisation's acceptance of a rule version."""

    organisation: str
    steward: str
    accepted_at: datetime


class RuleVersionOut(BaseModel):
    """One version of a collaboration's rules."""

    version: int
    state: str
    rules: dict[str, Any]
    reason: str
    proposed_by: str
    created_at: datetime
    activated_at: datetime | None
    acceptances: list[AcceptanceOut]
    awaiting: list[str] = Field(
        description="member organisations whose steward has not accepted yet"
    )


def _out(session, version: RuleVersion) -> RuleVersionOut:
    accepted = {a.organisation_id for a in version.acceptances}
    deciding = rule_versions.deciding_organisations(session, version.collaboration)
    awaiting = (
        [o.name for o in deciding if o.id not in accepted]
        if version.state == "proposed"
        else []
    )
    return RuleVersionOut(
        version=version.version,
        state=version.state,
        rules=version.rules,
        reason=version.reason,
        proposed_by=version.proposed_by,
        created_at=version.created_at,
        activated_at=version.activated_at,
        acceptances=[
            AcceptanceOut(
                organisation=a.organisation.name,
                steward=a.steward,
                accepted_at=a.accepted_at,
            )
            for a in version.acceptances
        ],
        awaiting=awaiting,
    )


def _version(session, collaboration, number: int) -> RuleVersion:
    version = session.scalar(
        select(RuleVersion)
        .where(RuleVersion.collaboration_id == collaboration.id)
        .where(RuleVersion.version == number)
    )
    if version is None:
        raise ApiError(
            404,
            "not_found",
            f"collaboration {collaboration.name!r} has no rule version {number}; "
            f"`linksight rules show -c {collaboration.name}` lists them",
        )
    return version


@router.get("")
def list_rule_versions(
    name: str, user: UserDep, session: SessionDep, hub: HubDep
) -> list[RuleVersionOut]:
    """List every version of the rules, newest first (members and admins)."""
    collaboration = find_collaboration(session, name)
    require_member(session, hub, user, collaboration, "rules.read", admin_allowed=True)
    return [_out(session, v) for v in rule_versions.versions_of(session, collaboration)]


@router.post("", status_code=status.HTTP_201_CREATED, responses=error_responses(409))
def propose_rules(
    name: str, body: RuleProposal, steward: StewardDep, session: SessionDep, hub: HubDep
) -> RuleVersionOut:
    """Propose a change of rules (steward of a member); it counts as accepted by
    the proposer's organisation."""
    collaboration = find_collaboration(session, name)
    require_member(session, hub, steward, collaboration, "rules.propose")
    version = rule_versions.propose(
        session, hub, steward, collaboration, body.changes, body.reason
    )
    session.flush()
    return _out(session, version)


@router.post("/{version}/accept", responses=error_responses(409))
def accept_rules(
    name: str,
    version: VersionPath,
    steward: StewardDep,
    session: SessionDep,
    hub: HubDep,
) -> RuleVersionOut:
    """Accept a proposal for your organisation (steward of a member)."""
    collaboration = find_collaboration(session, name)
    require_member(session, hub, steward, collaboration, "rules.accept")
    accepted = rule_versions.accept(
        session, hub, steward, _version(session, collaboration, version)
    )
    session.flush()
    return _out(session, accepted)


@router.post("/{version}/withdraw", responses=error_responses(409))
def withdraw_rules(
    name: str,
    version: VersionPath,
    steward: StewardDep,
    session: SessionDep,
    hub: HubDep,
) -> RuleVersionOut:
    """Withdraw an open proposal (steward of a member)."""
    collaboration = find_collaboration(session, name)
    require_member(session, hub, steward, collaboration, "rules.withdraw")
    withdrawn = rule_versions.withdraw(
        session, hub, steward, _version(session, collaboration, version)
    )
    return _out(session, withdrawn)

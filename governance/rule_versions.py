"""Versioned collaboration rules: propose a change, accept it, activate it.

A collaboration starts with version 1, its rules at creation. A steward of a
member organisation proposes a change (only one proposal is open at a time);
the proposer's organisation accepts it by proposing. It takes effect when a
steward of every member organisation that has a steward has accepted it.
Requests submitted before that are checked against the rules in force when
they were submitted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from governance.audit_trail import record
from governance.context import Hub
from governance.errors import ApiError
from governance.models import (
    Collaboration,
    Organisation,
    RuleAcceptance,
    RuleVersion,
    User,
    utc_now,
)
from governance.principals import Principal
from linksight.rules import RuleChangeError, apply_rule_changes


def create_first_version(
    session: Session, collaboration: Collaboration, admin: str
) -> RuleVersion:
    """Record the rules a collaboration was created with as active version 1."""
    version = RuleVersion(
        collaboration=collaboration,
        version=1,
        rules=collaboration.rules,
        state="active",
        reason="rules at creation",
        proposed_by=admin,
        created_at=utc_now(),
        activated_at=utc_now(),
    )
    session.add(version)
    return version


def versions_of(session: Session, collaboration: Collaboration) -> list[RuleVersion]:
    """Return every rule version of a collaboration, newest first."""
    return list(
        session.scalars(
            select(RuleVersion)
            .where(RuleVersion.collaboration_id == collaboration.id)
            .order_by(RuleVersion.version.desc())
        )
    )


def deciding_organisations(
    session: Session, collaboration: Collaboration
) -> list[Organisation]:
    """Return the member organisations whose stewards must accept a change.

    Members without any steward (for example a research institute with only
    scientists) have no one to decide, so they are left out.
    """
    deciding = []
    for member in collaboration.members:
        users = session.scalars(select(User).where(User.organisation_id == member.id))
        if any("steward" in user.roles for user in users):
            deciding.append(member)
    return deciding


def propose(
    session: Session,
    hub: Hub,
    steward: Principal,
    collaboration: Collaboration,
    changes: dict[str, Any],
    reason: str,
) -> RuleVersion:
    """Open a proposal of the current rules with `changes` applied.

    The changes are checked before the open proposal, so that a typo is
    reported as such even while another proposal is open.
    """
    try:
        rules = apply_rule_changes(collaboration.rules, changes)
    except RuleChangeError as error:
        raise ApiError(422, "invalid_request", str(error)) from error
    if rules.model_dump(mode="json") == collaboration.rules:
        raise ApiError(
            422,
            "invalid_request",
            "the proposal changes nothing; give at least one rule a new value",
        )
    open_proposal = session.scalar(
        select(RuleVersion)
        .where(RuleVersion.collaboration_id == collaboration.id)
        .where(RuleVersion.state == "proposed")
    )
    if open_proposal is not None:
        raise ApiError(
            409,
            "proposal_open",
            f"version {open_proposal.version} of the rules of "
            f"{collaboration.name!r} is still a proposal; accept or withdraw it "
            "before proposing another",
        )
    latest = session.scalar(
        select(func.max(RuleVersion.version)).where(
            RuleVersion.collaboration_id == collaboration.id
        )
    )
    version = RuleVersion(
        collaboration=collaboration,
        version=(latest or 0) + 1,
        rules=rules.model_dump(mode="json"),
        state="proposed",
        reason=reason,
        proposed_by=steward.name,
        created_at=utc_now(),
    )
    session.add(version)
    record(
        session,
        hub,
        "rules.proposed",
        steward.as_actor("steward"),
        "proposed",
        collaboration=collaboration.name,
        details={"version": version.version, "changes": changes, "reason": reason},
    )
    accept(session, hub, steward, version)
    return version


def accept(
    session: Session, hub: Hub, steward: Principal, version: RuleVersion
) -> RuleVersion:
    """Record `steward`'s organisation's acceptance; activate when all accepted."""
    if version.state != "proposed":
        raise ApiError(
            409,
            "invalid_state",
            f"version {version.version} is {version.state}, not a proposal",
        )
    if any(a.organisation_id == steward.organisation_id for a in version.acceptances):
        raise ApiError(
            409,
            "already_decided",
            f"organisation {steward.organisation!r} already accepted version "
            f"{version.version}",
        )
    version.acceptances.append(
        RuleAcceptance(
            organisation_id=steward.organisation_id,
            steward=steward.name,
            accepted_at=utc_now(),
        )
    )
    collaboration = version.collaboration
    record(
        session,
        hub,
        "rules.accepted",
        steward.as_actor("steward"),
        "accepted",
        collaboration=collaboration.name,
        details={"version": version.version},
    )
    accepted = {a.organisation_id for a in version.acceptances}
    needed = {o.id for o in deciding_organisations(session, collaboration)}
    if needed <= accepted:
        _activate(session, hub, steward, version)
    return version


def _activate(
    session: Session, hub: Hub, steward: Principal, version: RuleVersion
) -> None:
    collaboration = version.collaboration
    for previous in versions_of(session, collaboration):
        if previous.state == "active":
            previous.state = "superseded"
    version.state = "active"
    version.activated_at = utc_now()
    collaboration.rules = version.rules
    record(
        session,
        hub,
        "rules.activated",
        steward.as_actor("steward"),
        "activated",
        collaboration=collaboration.name,
        details={"version": version.version, "rules": version.rules},
    )


def withdraw(
    session: Session, hub: Hub, steward: Principal, version: RuleVersion
) -> RuleVersion:
    """Withdraw an open proposal (a steward of the proposer's organisation)."""
    if version.state != "proposed":
        raise ApiError(
            409,
            "invalid_state",
            f"version {version.version} is {version.state}, not a proposal",
        )
    version.state = "withdrawn"
    record(
        session,
        hub,
        "rules.withdrawn",
        steward.as_actor("steward"),
        "withdrawn",
        collaboration=version.collaboration.name,
        details={"version": version.version},
    )
    return version

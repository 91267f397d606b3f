"""Collaborations: members, rules, stations and datasets."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import select

from governance import rule_versions
from governance.api_models import (
    BudgetOut,
    CollaborationCreate,
    CollaborationDetail,
    CollaborationSummary,
    StationSummary,
)
from governance.audit_trail import record
from governance.budget import budget_of
from governance.dependencies import AdminDep, HubDep, SessionDep, UserDep
from governance.errors import ApiError, error_responses
from governance.lookups import find_collaboration, require_member
from governance.models import Collaboration, Organisation, Station, utc_now
from governance.views import datasets_out
from linksight.rules import CollaborationRules

router = APIRouter(
    prefix="/collaborations",
    tags=["collaborations"],
    responses=error_responses(401, 403, 429),
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(404, 409, 422),
)
def create_collaboration(
    body: CollaborationCreate, admin: AdminDep, session: SessionDep, hub: HubDep
) -> CollaborationSummary:
    """Create a collaboration of existing organisations (admin)."""
    existing = session.scalar(
        select(Collaboration).where(Collaboration.name == body.name)
    )
    if existing is not None:
        raise ApiError(
            409, "already_exists", f"collaboration {body.name!r} already exists"
        )
    names = sorted(set(body.members))
    members = session.scalars(
        select(Organisation).where(Organisation.name.in_(names))
    ).all()
    unknown = sorted(set(names) - {member.name for member in members})
    if unknown:
        raise ApiError(
            404,
            "not_found",
            f"organisation(s) {', '.join(map(repr, unknown))} not found; create "
            "them with POST /organisations first",
        )
    collaboration = Collaboration(
        name=body.name,
        rules=body.rules.model_dump(mode="json"),
        members=list(members),
        created_at=utc_now(),
    )
    session.add(collaboration)
    rule_versions.create_first_version(session, collaboration, admin.name)
    record(
        session,
        hub,
        "collaboration.created",
        admin.as_actor("admin"),
        "created",
        collaboration=body.name,
        details={"members": names, "rules": body.rules.model_dump(mode="json")},
    )
    return CollaborationSummary(name=body.name, members=names)


@router.get("")
def list_collaborations(
    user: UserDep, session: SessionDep
) -> list[CollaborationSummary]:
    """List collaborations: all for an admin, their organisation's for other users."""
    query = select(Collaboration).order_by(Collaboration.name)
    if not user.has_role("admin"):
        query = query.where(
            Collaboration.members.any(Organisation.id == user.organisation_id)
        )
    return [
        CollaborationSummary(
            name=collaboration.name,
            members=[member.name for member in collaboration.members],
        )
        for collaboration in session.scalars(query)
    ]


@router.get("/{name}", responses=error_responses(404, 422))
def get_collaboration(
    name: str, user: UserDep, session: SessionDep, hub: HubDep
) -> CollaborationDetail:
    """Return a collaboration's members, rules, stations and datasets.

    Open to users of member organisations and to admins.
    """
    collaboration = find_collaboration(session, name)
    require_member(
        session, hub, user, collaboration, "collaboration.read", admin_allowed=True
    )
    member_ids = [member.id for member in collaboration.members]
    stations = session.scalars(
        select(Station)
        .where(Station.organisation_id.in_(member_ids))
        .order_by(Station.name)
    )
    return CollaborationDetail(
        name=collaboration.name,
        members=[member.name for member in collaboration.members],
        rules=CollaborationRules.model_validate(collaboration.rules),
        stations=[
            StationSummary(
                name=station.name,
                organisation=station.organisation.name,
                last_seen=station.last_seen,
                version=station.version,
            )
            for station in stations
        ],
        datasets=datasets_out(session, collaboration.id),
    )


@router.get("/{name}/budget", responses=error_responses(404, 422))
def get_budget(name: str, user: UserDep, session: SessionDep, hub: HubDep) -> BudgetOut:
    """Return the caller's query budget in a collaboration (members).

    Every request the caller submitted in the last ``period_days`` days
    counts, except those the rule check rejected at submission.
    """
    collaboration = find_collaboration(session, name)
    require_member(session, hub, user, collaboration, "budget.read")
    budget = budget_of(session, collaboration, user.id)
    return BudgetOut(
        collaboration=collaboration.name,
        limit=budget.limit,
        period_days=budget.period_days,
        used=budget.used,
        remaining=budget.remaining,
        next_release=budget.next_release,
    )

"""Organisations: the members of the network."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import select

from governance.api_models import OrganisationCreate, OrganisationOut
from governance.audit_trail import record
from governance.dependencies import AdminDep, HubDep, SessionDep, UserDep
from governance.errors import ApiError, error_responses
from governance.models import Organisation, utc_now

router = APIRouter(
    prefix="/organisations",
    tags=["organisations"],
    responses=error_responses(401, 403, 429),
)


@router.post(
    "", status_code=status.HTTP_201_CREATED, responses=error_responses(409, 422)
)
def create_organisation(
    body: OrganisationCreate, admin: AdminDep, session: SessionDep, hub: HubDep
) -> OrganisationOut:
    """Create an organisation (admin)."""
    existing = session.scalar(
        select(Organisation).where(Organisation.name == body.name)
    )
    if existing is not None:
        raise ApiError(
            409, "already_exists", f"organisation {body.name!r} already exists"
        )
    organisation = Organisation(name=body.name, created_at=utc_now())
    session.add(organisation)
    record(
        session,
        hub,
        "organisation.created",
        admin.as_actor("admin"),
        "created",
        details={"organisation": body.name},
    )
    return OrganisationOut(name=organisation.name, created_at=organisation.created_at)


@router.get("")
def list_organisations(user: UserDep, session: SessionDep) -> list[OrganisationOut]:
    """List every organisation (any user)."""
    organisations = session.scalars(select(Organisation).order_by(Organisation.name))
    return [
        OrganisationOut(name=organisation.name, created_at=organisation.created_at)
        for organisation in organisations
    ]

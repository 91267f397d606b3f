"""Finding rows by name or id, with the 404 and 403 errors callers need."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit_trail import audited_error
from governance.context import Hub
from governance.errors import ApiError
from governance.models import Collaboration, Organisation, QueryRequest
from governance.principals import Principal


def find_organisation(session: Session, name: str) -> Organisation:
    """Return the organisation called `name`, or raise 404."""
    organisation = session.scalar(select(Organisation).where(Organisation.name == name))
    if organisation is None:
        raise ApiError(
            404,
            "not_found",
            f"organisation {name!r} not found; an admin creates it with "
            "POST /organisations",
        )
    return organisation


def find_collaboration(session: Session, name: str) -> Collaboration:
    """Return the collaboration called `name`, or raise 404."""
    collaboration = session.scalar(
        select(Collaboration).where(Collaboration.name == name)
    )
    if collaboration is None:
        raise ApiError(
            404,
            "not_found",
            f"collaboration {name!r} not found; `linksight collaborations` "
            "lists the ones you can see",
        )
    return collaboration


def is_member(principal: Principal, collaboration: Collaboration) -> bool:
    """Return whether `principal`'s organisation is a member of `collaboration`."""
    return any(
        member.id == principal.organisation_id for member in collaboration.members
    )


def require_member(
    session: Session,
    hub: Hub,
    principal: Principal,
    collaboration: Collaboration,
    event: str,
    *,
    admin_allowed: bool = False,
) -> None:
    """Raise 403 ``not_member`` unless `principal`'s organisation is a member.

    With `admin_allowed`, a user with the admin role passes too. The denial
    is audited as `event`.
    """
    if is_member(principal, collaboration):
        return
    if admin_allowed and principal.has_role("admin"):
        return
    error = ApiError(
        403,
        "not_member",
        f"organisation {principal.organisation!r} is not a member of "
        f"collaboration {collaboration.name!r}; ask the hub admin to add it",
    )
    raise audited_error(
        session,
        hub,
        error,
        event,
        principal.as_actor(),
        collaboration=collaboration.name,
    )


def find_request(session: Session, request_id: int) -> QueryRequest:
    """Return request `request_id`, or raise 404."""
    request = session.get(QueryRequest, request_id)
    if request is None:
        raise ApiError(404, "not_found", f"request {request_id} not found")
    return request

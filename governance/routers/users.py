"""Users and the caller's own identity."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import select

from governance.api_models import PrincipalOut, UserCreate, UserCreated
from governance.audit_trail import record
from governance.dependencies import AdminDep, HubDep, PrincipalDep, SessionDep
from governance.errors import ApiError, error_responses
from governance.lookups import find_organisation
from governance.models import User, utc_now
from governance.tokens import issue_token

router = APIRouter(prefix="/users", tags=["users"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 404, 409, 422, 429),
)
def create_user(
    body: UserCreate, admin: AdminDep, session: SessionDep, hub: HubDep
) -> UserCreated:
    """Create a user (admin). Only this response contains its token."""
    if session.scalar(select(User).where(User.name == body.name)) is not None:
        raise ApiError(409, "already_exists", f"user {body.name!r} already exists")
    organisation = find_organisation(session, body.organisation)
    roles = sorted(set(body.roles))
    user = User(
        name=body.name,
        organisation=organisation,
        roles=roles,
        created_at=utc_now(),
    )
    session.add(user)
    token, _ = issue_token(
        session,
        user=user,
        lifetime_days=hub.settings.user_token_days,
        label="issued at creation",
    )
    record(
        session,
        hub,
        "user.created",
        admin.as_actor("admin"),
        "created",
        details={"user": body.name, "organisation": organisation.name, "roles": roles},
    )
    return UserCreated(
        name=user.name, organisation=organisation.name, roles=roles, token=token
    )


@router.get("/me", responses=error_responses(401, 429))
def who_am_i(principal: PrincipalDep) -> PrincipalOut:
    """Return the caller: a user with roles, or a station (any principal)."""
    return PrincipalOut(
        name=principal.name,
        organisation=principal.organisation,
        roles=sorted(principal.roles),
        kind=principal.kind,
    )

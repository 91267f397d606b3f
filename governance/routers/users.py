"""Users and the caller's own identity."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import select

from governance.api_models import (
    PrincipalOut,
    ResultKeyBody,
    ResultKeyOut,
    UserCreate,
    UserCreated,
)
from governance.audit_trail import record
from governance.dependencies import (
    AdminDep,
    HubDep,
    PrincipalDep,
    SessionDep,
    UserDep,
)
from governance.errors import ApiError, error_responses
from governance.lookups import find_organisation
from governance.models import ResultKey, User, utc_now
from governance.tokens import issue_token
from linksight.result_encryption import fingerprint

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


def _result_key_out(key: ResultKey) -> ResultKeyOut:
    return ResultKeyOut(
        public_key=key.public_key,
        fingerprint=fingerprint(key.public_key),
        registered_at=key.registered_at,
    )


@router.get("/me/result-key", responses=error_responses(401, 403, 404, 429))
def get_result_key(user: UserDep, session: SessionDep) -> ResultKeyOut:
    """Return the caller's result key, to which stations seal their results."""
    key = session.get(ResultKey, user.id)
    if key is None:
        raise ApiError(
            404,
            "not_found",
            f"user {user.name!r} has no result key; register one with PUT "
            "/users/me/result-key",
        )
    return _result_key_out(key)


@router.put("/me/result-key", responses=error_responses(401, 403, 422, 429))
def put_result_key(
    body: ResultKeyBody, user: UserDep, session: SessionDep, hub: HubDep
) -> ResultKeyOut:
    """Register or replace the caller's X25519 result public key.

    Tasks signed from now on carry the new key. Results of tasks signed
    before stay sealed to the old key.
    """
    key = session.get(ResultKey, user.id)
    previous = None if key is None else fingerprint(key.public_key)
    if key is None:
        key = ResultKey(user_id=user.id, public_key=body.public_key)
        session.add(key)
    key.public_key = body.public_key
    key.registered_at = utc_now()
    outcome = "registered" if previous is None else "replaced"
    record(
        session,
        hub,
        "user.result_key",
        user.as_actor(),
        outcome,
        details={"fingerprint": fingerprint(body.public_key), "previous": previous},
    )
    session.flush()
    return _result_key_out(key)

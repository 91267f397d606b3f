"""Bearer tokens of the caller: list, issue a new one, revoke.

Any user or station may manage its own tokens, for example to rotate a
token before it expires: issue a new one, switch to it, revoke the old one.
An admin may also issue a token for another user or station (one whose
token was lost) and revoke any token.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from governance.audit_trail import record
from governance.dependencies import HubDep, PrincipalDep, RowIdPath, SessionDep
from governance.errors import ApiError, error_responses
from governance.models import ApiToken, Station, User, utc_now
from governance.principals import Principal
from governance.tokens import issue_token

MAX_TOKEN_DAYS = 36_500
"""The longest lifetime a token may be given, 100 years, whatever the hub's."""

router = APIRouter(
    prefix="/tokens", tags=["tokens"], responses=error_responses(401, 429)
)


class TokenCreate(BaseModel):
    """A request for a new token, for the caller unless user or station is set."""

    label: str = Field(default="", max_length=200)
    # The upper bound keeps the expiry date computable when the hub sets no
    # lifetime: a date beyond the year 9999 overflows Python's datetime.
    lifetime_days: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TOKEN_DAYS,
        description="days until the token expires; at most, and by default, the "
        "hub's lifetime for users or stations, and never more than 36,500",
    )
    user: str | None = Field(default=None, description="issue for this user (admin)")
    station: str | None = Field(
        default=None, description="issue for this station (admin)"
    )


class TokenOut(BaseModel):
    """A token's metadata; the token itself is shown only when issued."""

    id: int
    owner: str
    kind: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    current: bool = Field(description="whether this call was made with this token")


class TokenIssued(TokenOut):
    """A newly issued token; only this response contains it."""

    token: str


def _out(row: ApiToken, principal: Principal) -> TokenOut:
    owner = row.user.name if row.user is not None else row.station.name  # type: ignore[union-attr]
    return TokenOut(
        id=row.id,
        owner=owner,
        kind="user" if row.user is not None else "station",
        label=row.label,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        current=row.id == principal.token_id,
    )


def _owned_by(row: ApiToken, principal: Principal) -> bool:
    if principal.kind == "user":
        return row.user_id == principal.id
    return row.station_id == principal.id


@router.get("")
def list_tokens(principal: PrincipalDep, session: SessionDep) -> list[TokenOut]:
    """List the caller's own tokens, newest first (any user or station)."""
    column = ApiToken.user_id if principal.kind == "user" else ApiToken.station_id
    rows = session.scalars(
        select(ApiToken).where(column == principal.id).order_by(ApiToken.id.desc())
    )
    return [_out(row, principal) for row in rows]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(403, 404, 422),
)
def create_token(
    body: TokenCreate, principal: PrincipalDep, session: SessionDep, hub: HubDep
) -> TokenIssued:
    """Issue a new token for the caller, or for another user or station (admin)."""
    if body.user is not None and body.station is not None:
        raise ApiError(
            422, "invalid_request", "name either a user or a station, not both"
        )
    for_other = body.user is not None or body.station is not None
    if for_other and not principal.has_role("admin"):
        raise ApiError(
            403,
            "forbidden",
            "only an admin may issue a token for another user or station; leave "
            "user and station out to issue one for yourself",
            needed="role admin",
        )
    user: User | None = None
    station: Station | None = None
    if body.user is not None:
        user = session.scalar(select(User).where(User.name == body.user))
        if user is None:
            raise ApiError(404, "not_found", f"user {body.user!r} not found")
    elif body.station is not None:
        station = session.scalar(select(Station).where(Station.name == body.station))
        if station is None:
            raise ApiError(404, "not_found", f"station {body.station!r} not found")
    elif principal.kind == "user":
        user = session.get_one(User, principal.id)
    else:
        station = session.get_one(Station, principal.id)

    maximum = (
        hub.settings.user_token_days
        if user is not None
        else hub.settings.station_token_days
    )
    lifetime = body.lifetime_days or maximum
    if maximum is not None and lifetime is not None and lifetime > maximum:
        raise ApiError(
            422,
            "invalid_request",
            f"lifetime_days {lifetime:g} exceeds this hub's maximum of {maximum:g} "
            "days; ask for a shorter lifetime",
        )
    token, row = issue_token(
        session, user=user, station=station, lifetime_days=lifetime, label=body.label
    )
    session.flush()
    record(
        session,
        hub,
        "token.issued",
        principal.as_actor(),
        "created",
        details={
            "token_id": row.id,
            "owner": user.name if user is not None else station.name,  # type: ignore[union-attr]
            "kind": "user" if user is not None else "station",
            "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        },
    )
    metadata = _out(row, principal)
    return TokenIssued(**metadata.model_dump(), token=token)


@router.delete("/{token_id}", responses=error_responses(404, 422))
def revoke_token(
    token_id: RowIdPath, principal: PrincipalDep, session: SessionDep, hub: HubDep
) -> TokenOut:
    """Revoke a token: the caller's own, or any token (admin). It stops at once."""
    row = session.get(ApiToken, token_id)
    visible = row is not None and (
        _owned_by(row, principal) or principal.has_role("admin")
    )
    if row is None or not visible:
        raise ApiError(
            404,
            "not_found",
            f"token {token_id} not found among your tokens; GET /tokens lists them",
        )
    if row.revoked_at is None:
        row.revoked_at = utc_now()
        record(
            session,
            hub,
            "token.revoked",
            principal.as_actor(),
            "revoked",
            details={"token_id": row.id},
        )
    return _out(row, principal)


__all__ = ["router"]

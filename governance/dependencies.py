"""Dependencies every router shares: the hub, a database session, the caller.

A session lives for one endpoint call. It commits when the endpoint returns
and rolls back when it raises. Because its dependency scope is "function",
both happen before the response is sent, so the client's next call reads the
committed change. Endpoints
therefore return Pydantic models built while the session is open.

Authentication and role checks write each failure to the audit log
(``auth.failed``, ``auth.forbidden``) before answering 401 or 403.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from governance.audit_trail import audited_error
from governance.context import Hub
from governance.errors import ApiError
from governance.principals import ANONYMOUS_ACTOR, Principal, Role, authenticate

logger = logging.getLogger("linksight.hub")

WWW_AUTHENTICATE = 'Bearer realm="linksight-hub"'

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="The token shown once when your user or station was created.",
)


def get_hub(request: Request) -> Hub:
    """Return the hub that `create_app` attached to the application."""
    return request.app.state.hub


HubDep = Annotated[Hub, Depends(get_hub)]


def get_session(hub: HubDep) -> Iterator[Session]:
    """Yield a session that commits if the endpoint returns normally."""
    session = hub.database.session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def _client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def current_principal(
    request: Request,
    session: SessionDep,
    hub: HubDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """Return the caller identified by its bearer token, or raise 401 or 429.

    A client address with too many recent failures gets 429 before its
    token is even looked up, so that tokens cannot be guessed at speed.
    """
    address = _client_address(request)
    details = {"method": request.method, "path": request.url.path, "client": address}
    retry_after = hub.failure_limiter.retry_after(address)
    if retry_after is not None:
        seconds = max(1, round(retry_after))
        error = ApiError(
            429,
            "too_many_failures",
            f"too many failed authentications from {address}: try again in "
            f"{seconds} s with a valid token",
            headers={"Retry-After": str(seconds)},
        )
        logger.warning(
            "rejected %s %s from %s: rate limited",
            request.method,
            request.url.path,
            address,
        )
        raise error
    if credentials is not None:
        outcome = authenticate(session, credentials.credentials)
        if outcome.principal is not None:
            request.state.principal = outcome.principal
            return outcome.principal
        reason = f"{outcome.reason} token"
        details["token_id"] = outcome.token_id
        if outcome.reason == "expired" and outcome.expired_at is not None:
            message = (
                f"expired token: it expired at {outcome.expired_at.isoformat()}; "
                "ask the hub admin for a new one, and rotate tokens with "
                "POST /tokens before they expire"
            )
        elif outcome.reason == "revoked":
            message = (
                "revoked token: it was revoked and no longer works; use a newer "
                "token or ask the hub admin for one"
            )
        else:
            message = (
                "invalid token: it belongs to no user or station of this hub; "
                "ask the hub admin for a new one"
            )
    else:
        reason = "missing bearer token"
        message = (
            "missing token: send the header 'Authorization: Bearer <token>' "
            "with the token shown when your user or station was created"
        )
    failures = hub.failure_limiter.record_failure(address)
    details["reason"] = reason
    details["failures_in_window"] = failures
    error = ApiError(
        401, "unauthenticated", message, headers={"WWW-Authenticate": WWW_AUTHENTICATE}
    )
    raise audited_error(
        session,
        hub,
        error,
        "auth.failed",
        ANONYMOUS_ACTOR,
        details=details,
    )


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def forbidden(
    session: Session,
    hub: Hub,
    request: Request,
    principal: Principal,
    needed: str,
    message: str,
) -> ApiError:
    """Record that `principal` lacks `needed` and return the 403 error to raise."""
    return audited_error(
        session,
        hub,
        ApiError(403, "forbidden", message, needed=needed),
        "auth.forbidden",
        principal.as_actor(),
        details={
            "needed": needed,
            "method": request.method,
            "path": request.url.path,
        },
    )


def require_role(*roles: Role) -> Callable[..., Principal]:
    """Return a dependency that lets through users with any of `roles`."""
    needed = " or ".join(roles)

    def check_role(
        request: Request, principal: PrincipalDep, session: SessionDep, hub: HubDep
    ) -> Principal:
        if principal.kind == "user" and principal.roles.intersection(roles):
            return principal
        if principal.kind == "station":
            message = (
                f"this endpoint needs a user with the {needed} role; "
                f"{principal.describe()} cannot call it"
            )
        else:
            held_roles = ", ".join(sorted(principal.roles)) or "none"
            message = (
                f"this endpoint needs the {needed} role, but "
                f"{principal.describe()} has the roles: {held_roles}; ask the hub "
                "admin for the role"
            )
        raise forbidden(session, hub, request, principal, f"role {needed}", message)

    check_role.__name__ = "require_" + "_or_".join(roles)
    return check_role


def require_station(
    request: Request, principal: PrincipalDep, session: SessionDep, hub: HubDep
) -> Principal:
    """Let through stations only."""
    if principal.kind == "station":
        return principal
    message = (
        f"this endpoint is for stations, and {principal.describe()} is a user; "
        "call it with the station's token"
    )
    raise forbidden(session, hub, request, principal, "station", message)


AdminDep = Annotated[Principal, Depends(require_role("admin"))]
StewardDep = Annotated[Principal, Depends(require_role("steward"))]
ScientistDep = Annotated[Principal, Depends(require_role("scientist"))]
AuditReaderDep = Annotated[Principal, Depends(require_role("admin", "steward"))]
UserDep = Annotated[Principal, Depends(require_role("admin", "steward", "scientist"))]
StationDep = Annotated[Principal, Depends(require_station)]

# Ids and version numbers in URLs are SQLite integers, signed 64-bit. A
# larger number would make the lookup raise OverflowError (a 500) instead of
# matching nothing.
MAX_ROW_ID = 2**63 - 1
RowIdPath = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
RowIdQuery = Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)]
VersionPath = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]

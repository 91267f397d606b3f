"""State changes of a request, each logged and written to the audit log."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit_trail import record
from governance.context import Hub
from governance.models import QueryRequest, utc_now
from governance.principals import HUB_ACTOR, Actor
from governance.states import NOT_STARTED, RequestState

logger = logging.getLogger("linksight.hub")


def change_state(
    session: Session,
    hub: Hub,
    request: QueryRequest,
    state: RequestState,
    actor: Actor,
    *,
    error: str | None = None,
    rejection: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Move `request` to `state`, storing `error` or `rejection` if given."""
    previous = request.state
    request.state = state
    request.updated_at = utc_now()
    if error is not None:
        request.error = error
    if rejection is not None:
        request.rejection = rejection
    change: dict[str, Any] = {"from": previous, "to": str(state)}
    if error is not None:
        change["error"] = error
    if rejection is not None:
        change["rejection"] = rejection
    record(
        session,
        hub,
        "request.state_changed",
        actor,
        str(state),
        request=request,
        details={**change, **(details or {})},
    )
    logger.info("request %s: %s -> %s by %s", request.id, previous, state, actor.user)


def expire_if_due(
    session: Session, hub: Hub, request: QueryRequest, now: datetime | None = None
) -> bool:
    """Expire `request` if it has not started and its deadline has passed.

    Returns whether the request was expired by this call.
    """
    now = now or utc_now()
    if request.state not in NOT_STARTED or request.expires_at > now:
        return False
    change_state(
        session,
        hub,
        request,
        RequestState.EXPIRED,
        HUB_ACTOR,
        details={"expires_at": request.expires_at.isoformat()},
    )
    return True


def expire_due_requests(session: Session, hub: Hub) -> int:
    """Expire every request past its deadline and return how many there were."""
    now = utc_now()
    due = session.scalars(
        select(QueryRequest)
        .where(QueryRequest.state.in_([str(state) for state in NOT_STARTED]))
        .where(QueryRequest.expires_at <= now)
        .order_by(QueryRequest.id)
    ).all()
    for request in due:
        expire_if_due(session, hub, request, now)
    return len(due)

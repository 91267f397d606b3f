"""Writing the hub's actions to the hash-chained audit log.

Each record is appended in the same transaction as the change it records,
so both commit together or not at all. A record names the actor
(organisation, user, role), the purpose of the request involved, the
objects touched (collaboration, dataset, request) and the outcome. Details
never contain a token or a record value.

Event names used by the hub:

- ``auth.failed``, ``auth.forbidden``: a call without a valid token, or
  without the role or relation an endpoint needs.
- ``organisation.created``, ``user.created``, ``station.created``,
  ``collaboration.created``: administration.
- ``station.endpoint_registered``, ``dataset.registered``: registrations.
- ``request.submitted``, ``request.approved``, ``request.rejected``,
  ``request.revoked``: decisions, with the request's purpose.
- ``request.state_changed``: every state change, with ``from`` and ``to``.
- ``task.issued``, ``task.event``, ``request.result``: the signed task,
  each station report, and the released result's hash and checks.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from governance.context import Hub
from governance.errors import ApiError
from governance.models import QueryRequest
from governance.principals import Actor

logger = logging.getLogger("linksight.hub")


def _objects(
    request: QueryRequest | None, collaboration: str | None, dataset: str | None
) -> dict[str, Any]:
    if request is not None:
        return {
            "collaboration": request.collaboration.name,
            "dataset": request.dataset,
            "request": request.id,
        }
    objects: dict[str, Any] = {}
    if collaboration is not None:
        objects["collaboration"] = collaboration
    if dataset is not None:
        objects["dataset"] = dataset
    return objects


def record(
    session: Session,
    hub: Hub,
    event: str,
    actor: Actor,
    outcome: str,
    *,
    request: QueryRequest | None = None,
    collaboration: str | None = None,
    dataset: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append an audit record in `session`'s transaction and return it.

    With `request`, the record's purpose and objects come from the request;
    otherwise `collaboration` and `dataset` name the objects.
    """
    session.flush()
    return hub.database.audit_log.append(
        event,
        organisation=actor.organisation,
        user=actor.user,
        role=actor.role,
        outcome=outcome,
        purpose=request.purpose if request is not None else "",
        objects=_objects(request, collaboration, dataset),
        details=details or {},
        connection=session.connection(),
    )


def audited_error(
    session: Session,
    hub: Hub,
    error: ApiError,
    event: str,
    actor: Actor,
    *,
    request: QueryRequest | None = None,
    collaboration: str | None = None,
    dataset: str | None = None,
    details: dict[str, Any] | None = None,
) -> ApiError:
    """Record a denied or invalid call, commit, and return `error` to raise.

    The commit also keeps what `session` changed before, such as a request
    that expired on reading, so callers check a call before changing
    anything on its behalf.
    """
    record(
        session,
        hub,
        event,
        actor,
        error.code,
        request=request,
        collaboration=collaboration,
        dataset=dataset,
        details={"message": error.message, **(details or {})},
    )
    session.commit()
    logger.info(
        "%s denied for %s: %s (%s)",
        event,
        actor.user or "an unauthenticated caller",
        error.code,
        error.message,
    )
    return error

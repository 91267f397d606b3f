"""Stewards approving or rejecting requests, and revoking requests.

Each organisation whose station has the queried dataset decides once,
through one of its stewards. A request is never decided by the person who
submitted it, even if they are also a steward. One rejection rejects the
request; when every such organisation has approved, the hub signs the task.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.orm import Session

from governance.audit_trail import audited_error, record
from governance.context import Hub
from governance.errors import ApiError
from governance.lifecycle import change_state, expire_if_due
from governance.lookups import find_request
from governance.models import Approval, QueryRequest, utc_now
from governance.principals import Principal
from governance.states import NOT_STARTED, RequestState
from governance.task_issue import issue_task
from governance.visibility import touched_organisations, touches

Decision = Literal["approved", "rejected"]


def decide(
    session: Session,
    hub: Hub,
    steward: Principal,
    request_id: int,
    decision: Decision,
    reason: str,
) -> QueryRequest:
    """Record `steward`'s decision for their organisation on a request.

    Raises
    ------
    ApiError
        404 if the request does not exist; 403 ``own_request`` if the steward
        submitted it; 403 ``not_touched`` if it queries no station of the
        steward's organisation; 409 ``invalid_state`` unless it awaits
        approval; 409 ``already_decided`` if the organisation decided before.
    """
    request = find_request(session, request_id)
    event = f"request.{decision}"
    actor = steward.as_actor("steward")
    verb = "approved" if decision == "approved" else "rejected"

    if request.submitter_id == steward.id:
        fix = (
            f"another steward of {steward.organisation!r} must decide"
            if decision == "approved"
            else f"withdraw it instead with `linksight revoke {request.id}`"
        )
        error = ApiError(
            403,
            "own_request",
            f"a request is never {verb} by the person who submitted it; {fix}",
        )
        raise audited_error(session, hub, error, event, actor, request=request)

    if not touches(request, steward.organisation_id):
        deciders = ", ".join(touched_organisations(request)) or "none"
        error = ApiError(
            403,
            "not_touched",
            f"request {request.id} queries no station of {steward.organisation!r}; "
            f"only stewards of these organisations decide on it: {deciders}",
        )
        raise audited_error(session, hub, error, event, actor, request=request)

    if expire_if_due(session, hub, request):
        session.commit()
    if request.state != RequestState.AWAITING_APPROVAL:
        error = ApiError(
            409,
            "invalid_state",
            f"request {request.id} is {request.state}; stewards decide only on "
            "requests in state awaiting_approval",
            state=request.state,
        )
        raise audited_error(session, hub, error, event, actor, request=request)

    for approval in request.approvals:
        if approval.organisation_id == steward.organisation_id:
            error = ApiError(
                409,
                "already_decided",
                f"{steward.organisation!r} already {approval.decision} request "
                f"{request.id} (steward {approval.steward.name!r}); each "
                "organisation decides once",
            )
            raise audited_error(session, hub, error, event, actor, request=request)

    request.approvals.append(
        Approval(
            organisation_id=steward.organisation_id,
            steward_id=steward.id,
            decision=decision,
            reason=reason,
            time=utc_now(),
        )
    )
    record(
        session,
        hub,
        event,
        actor,
        decision,
        request=request,
        details={"reason": reason},
    )

    if decision == "rejected":
        rejection = {
            "rule": "steward_rejection",
            "message": f"steward {steward.name!r} of {steward.organisation!r} "
            f"rejected the request: {reason}",
        }
        change_state(
            session, hub, request, RequestState.REJECTED, actor, rejection=rejection
        )
        return request

    approved = {a.organisation_id for a in request.approvals if a.decision == decision}
    touched = {party.station.organisation_id for party in request.parties}
    if touched <= approved:
        change_state(session, hub, request, RequestState.APPROVED, actor)
        issue_task(session, hub, request, actor)
    return request


def revoke(
    session: Session, hub: Hub, user: Principal, request_id: int, reason: str
) -> QueryRequest:
    """Withdraw a request that awaits approval or is approved but not started.

    Only its submitter or a steward of an organisation it touches may revoke
    it.

    Raises
    ------
    ApiError
        404 if the request does not exist, 403 ``forbidden`` for anyone
        else, 409 ``invalid_state`` once it runs or has ended.
    """
    request = find_request(session, request_id)
    is_submitter = request.submitter_id == user.id
    role = "scientist" if is_submitter else "steward"
    actor = user.as_actor(role)
    event = "request.revoked"

    if not is_submitter and not (
        user.has_role("steward") and touches(request, user.organisation_id)
    ):
        error = ApiError(
            403,
            "forbidden",
            f"only the submitter of request {request.id} or a steward of an "
            "organisation it queries may revoke it: "
            f"{', '.join(touched_organisations(request))}",
        )
        raise audited_error(session, hub, error, event, actor, request=request)

    if expire_if_due(session, hub, request):
        session.commit()
    if request.state not in NOT_STARTED:
        error = ApiError(
            409,
            "invalid_state",
            f"request {request.id} is {request.state}; only a request in state "
            "awaiting_approval or approved (not yet running) can be revoked",
            state=request.state,
        )
        raise audited_error(session, hub, error, event, actor, request=request)

    record(
        session,
        hub,
        event,
        actor,
        "revoked",
        request=request,
        details={"reason": reason},
    )
    change_state(
        session, hub, request, RequestState.REVOKED, actor, details={"reason": reason}
    )
    return request

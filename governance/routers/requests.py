"""Requests: submission, reading, decisions, revocation and results."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from governance.api_models import (
    ApproveBody,
    RejectBody,
    RelayedResult,
    RequestCreate,
    RequestOut,
    ResultOut,
    RevokeBody,
)
from governance.decisions import decide, revoke
from governance.dependencies import (
    HubDep,
    RowIdPath,
    ScientistDep,
    SessionDep,
    StewardDep,
    UserDep,
    forbidden,
)
from governance.errors import ApiError, error_responses
from governance.lifecycle import expire_due_requests, expire_if_due
from governance.models import QueryRequest
from governance.states import FINISHED_WITH_RESULT, RequestState
from governance.submission import submit_request
from governance.views import request_out
from governance.visibility import find_visible_request, visible_requests

router = APIRouter(
    prefix="/requests", tags=["requests"], responses=error_responses(401, 403, 429)
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(404, 409, 422),
)
def create_request(
    body: RequestCreate, scientist: ScientistDep, session: SessionDep, hub: HubDep
) -> RequestOut:
    """Submit a query (scientist).

    A query that breaks a collaboration rule is stored as `rejected`, with
    the rule's name and how to fix the query in `rejection`, and still
    returned with status 201. A query that does not parse gets 422
    ``invalid_query`` with the `position` of the offending text. A scientist
    without a registered result key gets 409 ``no_result_key``.
    """
    return request_out(submit_request(session, hub, scientist, body))


@router.get("", responses=error_responses(422))
def list_requests(
    user: UserDep,
    session: SessionDep,
    hub: HubDep,
    state: RequestState | None = None,
) -> list[RequestOut]:
    """List the requests the caller may see, optionally in one state.

    A scientist lists their own requests, a steward those touching their
    organisation, an admin all.
    """
    expire_due_requests(session, hub)
    query = visible_requests(user)
    if state is not None:
        query = query.where(QueryRequest.state == state)
    return [request_out(request) for request in session.scalars(query)]


@router.get("/{request_id}", responses=error_responses(404, 422))
def get_request(
    request_id: RowIdPath, user: UserDep, session: SessionDep, hub: HubDep
) -> RequestOut:
    """Return one request, if the caller may see it (else 404)."""
    request = find_visible_request(session, user, request_id)
    expire_if_due(session, hub, request)
    return request_out(request)


@router.post("/{request_id}/approve", responses=error_responses(404, 409, 422))
def approve_request(
    request_id: RowIdPath,
    steward: StewardDep,
    session: SessionDep,
    hub: HubDep,
    body: ApproveBody | None = None,
) -> RequestOut:
    """Approve a request for the steward's organisation (steward).

    When every organisation it touches has approved, the request becomes
    `approved` and the hub signs its task.
    """
    reason = body.reason if body is not None else ""
    return request_out(decide(session, hub, steward, request_id, "approved", reason))


@router.post("/{request_id}/reject", responses=error_responses(404, 409, 422))
def reject_request(
    request_id: RowIdPath,
    body: RejectBody,
    steward: StewardDep,
    session: SessionDep,
    hub: HubDep,
) -> RequestOut:
    """Reject a request for the steward's organisation, with a reason (steward)."""
    return request_out(
        decide(session, hub, steward, request_id, "rejected", body.reason)
    )


@router.post("/{request_id}/revoke", responses=error_responses(404, 409, 422))
def revoke_request(
    request_id: RowIdPath,
    user: UserDep,
    session: SessionDep,
    hub: HubDep,
    body: RevokeBody | None = None,
) -> RequestOut:
    """Revoke a request that has not started (its submitter or a touched steward)."""
    reason = body.reason if body is not None else ""
    return request_out(revoke(session, hub, user, request_id, reason))


@router.get("/{request_id}/result", responses=error_responses(404, 409, 422))
def get_result(
    request_id: RowIdPath,
    http_request: Request,
    user: UserDep,
    session: SessionDep,
    hub: HubDep,
) -> ResultOut:
    """Return the released result, sealed to its submitter (submitter, admin).

    The figures are in ``ciphertexts``, one sealed copy per station, which
    only the submitter's private result key opens.

    Returns 409 ``not_ready`` until the request is completed or blocked by
    disclosure control.
    """
    request = find_visible_request(session, user, request_id)
    if request.submitter_id != user.id and not user.has_role("admin"):
        message = (
            f"only the submitter of request {request.id} "
            f"({request.submitter.name!r}) or an admin may read its result"
        )
        raise forbidden(session, hub, http_request, user, "submitter", message)
    expire_if_due(session, hub, request)
    if (
        request.state not in FINISHED_WITH_RESULT
        or request.result is None
        or request.result_audit_seq is None
    ):
        raise ApiError(
            409,
            "not_ready",
            f"request {request.id} is {request.state}; a result exists only "
            "once it is completed or blocked_by_disclosure_control",
            state=request.state,
        )
    return ResultOut(
        request_id=request.id,
        state=RequestState(request.state),
        result=RelayedResult.model_validate(request.result),
        audit_seq=request.result_audit_seq,
    )

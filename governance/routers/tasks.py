"""Tasks as stations see them: the state behind a task, and their reports."""

from __future__ import annotations

from fastapi import APIRouter

from governance.api_models import TaskEventBody, TaskStatus
from governance.dependencies import HubDep, SessionDep, StationDep
from governance.errors import error_responses
from governance.lifecycle import expire_if_due
from governance.models import QueryRequest
from governance.states import RequestState
from governance.task_events import apply_event, find_task

router = APIRouter(
    prefix="/tasks", tags=["tasks"], responses=error_responses(401, 403, 429)
)


def task_status(task_id: str, request: QueryRequest) -> TaskStatus:
    """Return what a station may know of the request behind `task_id`."""
    return TaskStatus(
        task_id=task_id,
        request_id=request.id,
        state=RequestState(request.state),
        error=request.error,
    )


@router.get("/{task_id}", responses=error_responses(404, 422))
def get_task(
    task_id: str, station: StationDep, session: SessionDep, hub: HubDep
) -> TaskStatus:
    """Return the state of the request behind a task (a station that is a party).

    Stations poll this while they run, to stop when another party failed or
    the request was revoked.
    """
    request, _party = find_task(session, hub, station, task_id)
    expire_if_due(session, hub, request)
    return task_status(task_id, request)


@router.post("/{task_id}/events", responses=error_responses(404, 422))
def post_event(
    task_id: str,
    body: TaskEventBody,
    station: StationDep,
    session: SessionDep,
    hub: HubDep,
) -> TaskStatus:
    """Report started, completed (with the result), failed or refused (with why).

    Repeated or late reports change nothing but are written to the audit
    log. During a training run, "progress" (with the round) updates the
    round shown to the requester and is not audited. The response always
    contains the request's current state.
    """
    request = apply_event(session, hub, station, task_id, body)
    return task_status(task_id, request)

"""Stations reporting on their tasks, and the release of the result.

Each party reports ``started``, then ``completed`` with its result, or
``failed`` or ``refused`` with an error. The first failure or refusal fails
the request. Once every party has completed, the hub compares their results:
every party reveals the same output of the same secure computation, so
results that differ mean that a party misbehaved or the run went wrong, and
the request fails. Otherwise the result is released to the submitter.

A result arrives sealed to the requester's X25519 key
(:class:`governance.api_models.SealedResult`), so the hub cannot read its
figures. In the clear it has only ``status`` ("released" or "blocked"),
``blocked_rule``, and ``checks`` with each check's ``rule`` and
``passed``. Each station's seal uses a new ephemeral key, so the hub
compares these plain fields and the recipient key, not the ciphertexts;
the client checks that every station's document is the same when it
opens them. The audit log records each check's pass or fail and the
SHA-256 of the relayed (sealed) result, never the result itself.

A report changes nothing if its station already reported ``completed``,
``failed`` or ``refused``, or if the request is no longer approved or
running. Such a report is still written to the audit log.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.api_models import TaskEventBody
from governance.audit_trail import audited_error, record
from governance.context import Hub
from governance.errors import ApiError
from governance.lifecycle import change_state, expire_if_due
from governance.models import PartyProgress, QueryRequest, RequestParty, utc_now
from governance.principals import HUB_ACTOR, Principal
from governance.states import (
    ACTIVE,
    FINAL_PARTY_STATUSES,
    PartyStatus,
    RequestState,
)
from linksight.result_encryption import ResultKeyError, fingerprint
from linksight.signing import canonical_json

EVENT = "task.event"

logger = logging.getLogger("linksight.hub")


def result_digest(result: dict[str, Any]) -> str:
    """Return the hex SHA-256 of the canonical JSON of `result`."""
    return hashlib.sha256(canonical_json(result)).hexdigest()


def disclosure_checks(result: dict[str, Any]) -> list[dict[str, str]]:
    """Return each disclosure check of `result` as ``{"rule", "outcome"}``.

    The outcome is "pass" or "fail". Entries without ``rule`` and ``passed``
    are skipped, and no other field of a check is copied, so no value of
    the result reaches the audit log.
    """
    checks = result.get("checks")
    if not isinstance(checks, list):
        return []
    summary = []
    for check in checks:
        if isinstance(check, dict) and "rule" in check and "passed" in check:
            outcome = "pass" if check["passed"] is True else "fail"
            summary.append({"rule": str(check["rule"]), "outcome": outcome})
    return summary


def find_task(
    session: Session, hub: Hub, station: Principal, task_id: str
) -> tuple[QueryRequest, RequestParty]:
    """Return the request behind `task_id` and `station`'s place in it.

    Raises
    ------
    ApiError
        404 if no request has this task, 403 ``not_party`` if `station` is
        not one of its parties.
    """
    request = session.scalar(
        select(QueryRequest).where(QueryRequest.task_id == task_id)
    )
    if request is None:
        raise ApiError(404, "not_found", f"task {task_id!r} not found")
    for party in request.parties:
        if party.station_id == station.id:
            return request, party
    error = ApiError(
        403,
        "not_party",
        f"station {station.name!r} is not a party to task {task_id!r}; only "
        "the stations listed in the task may read or report on it",
    )
    raise audited_error(
        session,
        hub,
        error,
        EVENT,
        station.as_actor(),
        request=request,
        details={"task_id": task_id},
    )


def apply_event(
    session: Session, hub: Hub, station: Principal, task_id: str, body: TaskEventBody
) -> QueryRequest:
    """Apply `station`'s report on task `task_id` and return its request.

    Raises
    ------
    ApiError
        As :func:`find_task`; 422 ``missing_result`` for ``completed``
        without a result, 422 ``missing_error`` for ``failed`` or
        ``refused`` without an error.
    """
    request, party = find_task(session, hub, station, task_id)
    if body.event == "progress":
        return apply_progress(session, request, party, station, task_id, body)
    actor = station.as_actor()
    details: dict[str, Any] = {"task_id": task_id, "event": body.event}

    if body.event == "completed" and body.result is None:
        error = ApiError(
            422,
            "missing_result",
            "a completed event needs the result object in the field 'result'",
        )
        raise audited_error(
            session, hub, error, EVENT, actor, request=request, details=details
        )
    expected_key = (request.signed_task or {}).get("task", {}).get("requester_key")
    if body.result is not None and body.result.recipient_key != expected_key:
        error = ApiError(
            422,
            "wrong_recipient",
            f"the result is sealed to a key with fingerprint "
            f"{key_fingerprint(body.result.recipient_key)}, but task {task_id} "
            f"names the requester's key {key_fingerprint(expected_key)}; seal "
            "the result to the task's requester_key",
        )
        raise audited_error(
            session, hub, error, EVENT, actor, request=request, details=details
        )
    if body.event in ("failed", "refused") and not body.error:
        error = ApiError(
            422,
            "missing_error",
            f"a {body.event} event needs the reason in the field 'error'",
        )
        raise audited_error(
            session, hub, error, EVENT, actor, request=request, details=details
        )

    expire_if_due(session, hub, request)
    if party.status in FINAL_PARTY_STATUSES:
        reason = f"station already reported {party.status}"
    elif request.state not in ACTIVE:
        reason = f"request is {request.state}"
    elif body.event == "started" and party.status == PartyStatus.STARTED:
        reason = "station already reported started"
    else:
        reason = ""
    if reason:
        logger.info(
            "task %s: ignored %s from station %s because the %s",
            task_id,
            body.event,
            station.name,
            reason,
        )
        record(
            session,
            hub,
            EVENT,
            actor,
            "ignored",
            request=request,
            details={**details, "reason": reason},
        )
        return request

    party.status = PartyStatus(body.event)
    party.reported_at = utc_now()
    if body.event == "completed" and body.result is not None:
        party.result = body.result.model_dump(mode="json")
        details["result_sha256"] = result_digest(party.result)
    if body.event in ("failed", "refused"):
        party.error = body.error
        details["error"] = body.error
    record(session, hub, EVENT, actor, "accepted", request=request, details=details)

    if body.event in ("failed", "refused"):
        change_state(
            session,
            hub,
            request,
            RequestState.FAILED,
            actor,
            error=f"station {station.name}: {body.error}",
        )
        return request
    if request.state == RequestState.APPROVED:
        change_state(session, hub, request, RequestState.RUNNING, actor)
    if all(p.status == PartyStatus.COMPLETED for p in request.parties):
        release_result(session, hub, request)
    return request


def apply_progress(
    session: Session,
    request: QueryRequest,
    party: RequestParty,
    station: Principal,
    task_id: str,
    body: TaskEventBody,
) -> QueryRequest:
    """Store the training round `station` reports; return the request.

    Progress is shown to the requester but not written to the audit log,
    which records the task's start and end. A report on a request that is
    no longer active, or from a station that already finished, is ignored.

    Raises
    ------
    ApiError
        422 ``missing_progress`` when the body has no ``progress``.
    """
    if body.progress is None:
        raise ApiError(
            422,
            "missing_progress",
            "a progress event needs the round in the field 'progress', as in "
            '{"round": 3, "rounds": 10}',
        )
    if request.state not in ACTIVE or party.status in FINAL_PARTY_STATUSES:
        logger.info(
            "task %s: ignored progress from station %s: request %s, station %s",
            task_id,
            station.name,
            request.state,
            party.status,
        )
        return request
    if party.progress is None:
        party.progress = PartyProgress(
            round=body.progress.round,
            rounds=body.progress.rounds,
            reported_at=utc_now(),
        )
    else:
        party.progress.round = body.progress.round
        party.progress.rounds = body.progress.rounds
        party.progress.reported_at = utc_now()
    session.flush()
    return request


def key_fingerprint(public_key: Any) -> str:
    """Return the fingerprint of a base64 public key, or say that it is invalid."""
    try:
        return fingerprint(str(public_key))
    except ResultKeyError:
        return "(none or invalid)"


def release_result(session: Session, hub: Hub, request: QueryRequest) -> None:
    """Compare the parties' plain result fields and release the result if they
    agree.

    The released result keeps every station's ciphertext, so that the
    client can check that the sealed documents agree as well.
    """
    plain_fields = ("scheme", "recipient_key", "status", "blocked_rule", "checks")
    sealed = {party.station.name: party.result or {} for party in request.parties}
    digests = {
        station: result_digest({k: result.get(k) for k in plain_fields})
        for station, result in sealed.items()
    }
    if len(set(digests.values())) != 1:
        change_state(
            session,
            hub,
            request,
            RequestState.FAILED,
            HUB_ACTOR,
            error="stations returned different results",
            details={"result_sha256": digests},
        )
        return

    first = next(iter(sealed.values()))
    result: dict[str, Any] = {k: first.get(k) for k in plain_fields}
    result["ciphertexts"] = {
        station: str(item.get("ciphertext", "")) for station, item in sealed.items()
    }
    if result.get("status") == "blocked":
        state = RequestState.BLOCKED_BY_DISCLOSURE_CONTROL
    else:
        state = RequestState.COMPLETED
    request.result = result
    entry = record(
        session,
        hub,
        "request.result",
        HUB_ACTOR,
        str(state),
        request=request,
        details={
            "result_sha256": result_digest(result),
            "status": str(result.get("status", "")),
            "blocked_rule": result.get("blocked_rule"),
            "recipient_key": key_fingerprint(result.get("recipient_key")),
            "disclosure_checks": disclosure_checks(result),
        },
    )
    request.result_audit_seq = entry["seq"]
    change_state(session, hub, request, state, HUB_ACTOR)

"""Building and signing the task of an approved request.

The task names every party of the secure computation in a fixed order (by
station name), so that every station assigns the same MPC party ids. The
hub signs the task's canonical JSON with its Ed25519 key, and stations
verify that signature with the hub's public key from their own
configuration before acting on it. The task carries the submitter's
result key as registered when the task is signed; the stations seal the
result to it.
"""

from __future__ import annotations

import uuid

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit_trail import record
from governance.context import Hub
from governance.lifecycle import change_state
from governance.models import DatasetRegistration, QueryRequest, ResultKey, utc_now
from governance.principals import Actor
from governance.states import RequestState
from linksight.query import QuerySpec, format_query
from linksight.result_encryption import fingerprint
from linksight.rules import CollaborationRules
from linksight.schema import DatasetSchema
from linksight.signing import sign
from linksight.tasks import (
    DisclosureSettings,
    EarlierQuery,
    JoinPlacement,
    Party,
    SignedTask,
    TaskSpec,
)


def released_history(
    session: Session, request: QueryRequest, limit: int
) -> list[EarlierQuery]:
    """Return the newest `limit` aggregate queries released on the same dataset.

    Their filters and groupings are public (the scientists wrote them); the
    stations use them to check that the new query's population does not
    differ from an earlier one by fewer than the minimum count.
    """
    if limit == 0 or request.query_spec.get("kind") not in ("aggregate", "crosstab"):
        return []
    # NOTE: joined queries are not checked for differencing yet, so a join
    # neither gets a history nor enters one of a query on one dataset.
    if request.query_spec.get("joins"):
        return []
    earlier = session.scalars(
        select(QueryRequest)
        .where(QueryRequest.collaboration_id == request.collaboration_id)
        .where(QueryRequest.dataset == request.dataset)
        .where(QueryRequest.state == RequestState.COMPLETED.value)
        .where(QueryRequest.id != request.id)
        .order_by(QueryRequest.id.desc())
        .limit(limit)
    )
    history = []
    for row in earlier:
        spec = QuerySpec.model_validate(row.query_spec)
        if spec.kind not in ("aggregate", "crosstab") or spec.joins:
            continue
        history.append(
            EarlierQuery(
                request_id=str(row.id), where=spec.where, group_by=spec.group_by
            )
        )
    return history


def join_placement(
    session: Session, request: QueryRequest, spec: QuerySpec
) -> JoinPlacement:
    """Return the station and the registered schema of each joined dataset.

    Raises ValueError if a dataset is no longer registered by exactly one
    of the request's parties.
    """
    station_ids = [party.station_id for party in request.parties]
    registrations = session.scalars(
        select(DatasetRegistration)
        .where(DatasetRegistration.collaboration_id == request.collaboration_id)
        .where(DatasetRegistration.name.in_(spec.datasets))
        .where(DatasetRegistration.station_id.in_(station_ids))
    ).all()
    stations: dict[str, str] = {}
    schemas: dict[str, DatasetSchema] = {}
    for dataset in spec.datasets:
        found = [r for r in registrations if r.name == dataset]
        if len(found) != 1:
            raise ValueError(
                f"dataset {dataset!r} is registered by {len(found)} of the "
                "request's stations, but a join needs it at exactly one; "
                "submit the query again"
            )
        stations[dataset] = found[0].station.name
        schemas[dataset] = DatasetSchema.model_validate(found[0].schema)
    return JoinPlacement(stations=stations, schemas=schemas)


def issue_task(session: Session, hub: Hub, request: QueryRequest, actor: Actor) -> None:
    """Sign the task of the approved `request` and store it.

    If a party has not registered its MPC endpoint yet, or the task is
    otherwise invalid, the request fails with an error that names the cause.
    """
    endpoints: list[Party] = []
    unregistered: list[str] = []
    for party in sorted(request.parties, key=lambda party: party.station.name):
        station = party.station
        if station.mpc_host is None or station.mpc_port is None:
            unregistered.append(station.name)
            continue
        endpoints.append(
            Party(
                station=station.name,
                organisation=station.organisation.name,
                host=station.mpc_host,
                port=station.mpc_port,
            )
        )
    if unregistered:
        error = (
            f"cannot issue the task: station(s) {', '.join(unregistered)} have "
            "not registered an MPC endpoint; each station registers it when its "
            "daemon starts (PUT /stations/me), then submit the query again"
        )
        change_state(session, hub, request, RequestState.FAILED, actor, error=error)
        return

    result_key = session.get(ResultKey, request.submitter_id)
    if result_key is None:
        error = (
            f"cannot issue the task: the submitter {request.submitter.name!r} has "
            "no result key, so the stations could not seal the result; register "
            "one with PUT /users/me/result-key (the clients do so on first use), "
            "then submit the query again"
        )
        change_state(session, hub, request, RequestState.FAILED, actor, error=error)
        return

    rules = CollaborationRules.model_validate(request.collaboration.rules)
    spec = QuerySpec.model_validate(request.query_spec)
    try:
        join = join_placement(session, request, spec) if spec.joins else None
    except ValueError as exc:
        error = f"cannot issue the task: {exc}"
        change_state(session, hub, request, RequestState.FAILED, actor, error=error)
        return
    try:
        task = TaskSpec(
            task_id=uuid.uuid4().hex,
            request_id=str(request.id),
            collaboration=request.collaboration.name,
            query=spec,
            query_text=format_query(spec),
            parties=endpoints,
            requester=request.submitter.name,
            requester_organisation=request.submitter.organisation.name,
            requester_key=result_key.public_key,
            purpose=request.purpose,
            disclosure=DisclosureSettings(
                min_count=rules.min_count,
                min_residual_df=rules.min_residual_df,
                max_parameter_fraction=rules.max_parameter_fraction,
                min_level_count=rules.min_level_count,
                dominance_n=rules.dominance_n,
                dominance_k=rules.dominance_k,
                p_percent=rules.p_percent,
                overlapping_filters_window=rules.overlapping_filters_window,
            ),
            history=released_history(session, request, rules.differencing_window),
            mpc_timeout_seconds=hub.settings.task_timeout_seconds,
            issued_at=utc_now().isoformat(),
            join=join,
        )
    except ValidationError as exc:
        error = f"cannot issue the task: {exc}"
        change_state(session, hub, request, RequestState.FAILED, actor, error=error)
        return

    payload = task.model_dump(mode="json")
    signed = SignedTask(task=task, signature=sign(hub.private_key, payload))
    request.task_id = task.task_id
    request.signed_task = signed.model_dump(mode="json")
    record(
        session,
        hub,
        "task.issued",
        actor,
        "signed",
        request=request,
        details={
            "task_id": task.task_id,
            "parties": [party.station for party in task.parties],
            "recipient_key": fingerprint(result_key.public_key),
        },
    )

"""Conversions from database rows to response bodies."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.api_models import (
    ApprovalOut,
    DatasetOut,
    PartyOut,
    RequestOut,
    StationOut,
    TrainingProgress,
)
from governance.models import DatasetRegistration, QueryRequest, Station
from governance.states import PartyStatus, RequestState
from governance.visibility import touched_organisations
from linksight.schema import DatasetSchema


def request_out(request: QueryRequest) -> RequestOut:
    """Return the response body of `request`."""
    return RequestOut(
        id=request.id,
        collaboration=request.collaboration.name,
        dataset=request.dataset,
        query=request.query,
        purpose=request.purpose,
        submitter=request.submitter.name,
        submitter_organisation=request.submitter.organisation.name,
        state=RequestState(request.state),
        approvals=[
            ApprovalOut(
                organisation=approval.organisation.name,
                steward=approval.steward.name,
                decision=approval.decision,  # type: ignore[arg-type]
                reason=approval.reason,
                time=approval.time,
            )
            for approval in request.approvals
        ],
        touched_organisations=touched_organisations(request),
        rejection=request.rejection,
        error=request.error,
        created_at=request.created_at,
        updated_at=request.updated_at,
        expires_at=request.expires_at,
        task_id=request.task_id,
        parties=[
            PartyOut(
                station=party.station.name,
                organisation=party.station.organisation.name,
                status=PartyStatus(party.status),
                reported_at=party.reported_at,
                progress=(
                    None
                    if party.progress is None
                    else TrainingProgress(
                        round=party.progress.round, rounds=party.progress.rounds
                    )
                ),
            )
            for party in sorted(request.parties, key=lambda p: p.station.name)
        ],
    )


def station_out(station: Station) -> StationOut:
    """Return the response body of `station`."""
    return StationOut(
        name=station.name,
        organisation=station.organisation.name,
        mpc_host=station.mpc_host,
        mpc_port=station.mpc_port,
        version=station.version,
        last_seen=station.last_seen,
    )


def datasets_out(session: Session, collaboration_id: int) -> list[DatasetOut]:
    """Return the datasets registered in a collaboration, by name.

    Registration makes all stations of a dataset agree on its columns, so
    the schema shown is that of the first station by name. Only the
    descriptions may differ between stations.
    """
    registrations = session.scalars(
        select(DatasetRegistration)
        .join(DatasetRegistration.station)
        .where(DatasetRegistration.collaboration_id == collaboration_id)
        .order_by(DatasetRegistration.name, Station.name)
    ).all()
    datasets: dict[str, DatasetOut] = {}
    for registration in registrations:
        if registration.name not in datasets:
            datasets[registration.name] = DatasetOut(
                name=registration.name,
                dataset_schema=DatasetSchema.model_validate(registration.schema),
                stations=[],
            )
        datasets[registration.name].stations.append(registration.station.name)
    return list(datasets.values())

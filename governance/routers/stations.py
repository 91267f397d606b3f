"""Stations: creation, endpoint registration (heartbeat) and task pick-up."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from sqlalchemy import select

from governance.api_models import (
    StationCreate,
    StationCreated,
    StationEndpoint,
    StationOut,
)
from governance.audit_trail import record
from governance.dependencies import AdminDep, HubDep, SessionDep, StationDep
from governance.errors import ApiError, error_responses
from governance.lifecycle import expire_due_requests
from governance.lookups import find_organisation
from governance.models import QueryRequest, RequestParty, Station, utc_now
from governance.states import ACTIVE, PartyStatus
from governance.tokens import issue_token
from governance.views import station_out
from linksight.tasks import SignedTask

router = APIRouter(
    prefix="/stations", tags=["stations"], responses=error_responses(401, 403, 429)
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(404, 409, 422),
)
def create_station(
    body: StationCreate, admin: AdminDep, session: SessionDep, hub: HubDep
) -> StationCreated:
    """Create a station (admin). Only this response contains its token."""
    if session.scalar(select(Station).where(Station.name == body.name)) is not None:
        raise ApiError(409, "already_exists", f"station {body.name!r} already exists")
    organisation = find_organisation(session, body.organisation)
    station = Station(
        name=body.name,
        organisation=organisation,
        created_at=utc_now(),
    )
    session.add(station)
    token, _ = issue_token(
        session,
        station=station,
        lifetime_days=hub.settings.station_token_days,
        label="issued at creation",
    )
    record(
        session,
        hub,
        "station.created",
        admin.as_actor("admin"),
        "created",
        details={"station": body.name, "organisation": organisation.name},
    )
    return StationCreated(
        name=station.name, organisation=organisation.name, token=token
    )


@router.put("/me", responses=error_responses(422))
def register_endpoint(
    body: StationEndpoint, principal: StationDep, session: SessionDep, hub: HubDep
) -> StationOut:
    """Register the station's MPC endpoint and version, and mark it as seen.

    Stations call this when they start and then periodically as a heartbeat.
    Only a change of endpoint or version is written to the audit log.
    """
    station = session.get_one(Station, principal.id)
    endpoint = (body.mpc_host, body.mpc_port, body.version)
    changed = endpoint != (station.mpc_host, station.mpc_port, station.version)
    station.mpc_host, station.mpc_port, station.version = endpoint
    station.last_seen = utc_now()
    if changed:
        record(
            session,
            hub,
            "station.endpoint_registered",
            principal.as_actor(),
            "registered",
            details={
                "station": station.name,
                "mpc_host": body.mpc_host,
                "mpc_port": body.mpc_port,
                "version": body.version,
            },
        )
    return station_out(station)


@router.get("/me/tasks", response_model=list[SignedTask])
def pending_tasks(principal: StationDep, session: SessionDep, hub: HubDep) -> Any:
    """List the signed tasks this station still has to run or finish.

    These are the tasks of approved or running requests on which the
    station has not yet reported completed, failed or refused.
    """
    expire_due_requests(session, hub)
    requests = session.scalars(
        select(QueryRequest)
        .where(QueryRequest.state.in_([str(state) for state in ACTIVE]))
        .where(
            QueryRequest.parties.any(
                (RequestParty.station_id == principal.id)
                & RequestParty.status.in_([PartyStatus.PENDING, PartyStatus.STARTED])
            )
        )
        .order_by(QueryRequest.id)
    ).all()
    # The stored JSON is sent as it is: validating it again into a
    # SignedTask could add fields with defaults and break the signature.
    return JSONResponse([request.signed_task for request in requests])

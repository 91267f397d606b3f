"""Submitting a query: parse it, check it against the rules, store it.

The query is parsed against the schemas of the datasets registered in the
collaboration. The stations holding the queried dataset at this moment
become the request's parties, and their organisations are the ones whose
stewards decide on it. For a join, the parties are the one station holding
each joined dataset, plus helper stations of the collaboration (in name
order) until there are ``min_stations``; the helpers' stewards decide too.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.api_models import RequestCreate
from governance.audit_trail import audited_error, record
from governance.budget import budget_of, check_budget
from governance.context import Hub
from governance.errors import ApiError
from governance.lifecycle import change_state
from governance.lookups import find_collaboration, require_member
from governance.models import (
    DatasetRegistration,
    QueryRequest,
    RequestParty,
    ResultKey,
    Station,
    User,
    utc_now,
)
from governance.principals import Principal
from governance.states import RequestState
from governance.task_issue import issue_task
from linksight.joins import joined_schema
from linksight.query import QueryError, QuerySpec, parse_query
from linksight.rules import CollaborationRules, RuleViolation, check_query
from linksight.schema import DatasetSchema

EVENT = "request.submitted"


def submit_request(
    session: Session, hub: Hub, scientist: Principal, body: RequestCreate
) -> QueryRequest:
    """Store a new request and move it to its first state after the rule check.

    Raises
    ------
    ApiError
        404 if the collaboration does not exist, 403 ``not_member`` if the
        scientist's organisation is not a member, 409 ``no_result_key`` if
        the scientist has registered no result key, 422 ``invalid_query`` with
        the ``position`` of the offending text if the query does not parse
        or does not fit the dataset's schema.
    """
    collaboration = find_collaboration(session, body.collaboration)
    require_member(session, hub, scientist, collaboration, EVENT)
    actor = scientist.as_actor("scientist")
    if session.get(ResultKey, scientist.id) is None:
        error = ApiError(
            409,
            "no_result_key",
            f"user {scientist.name!r} has no result key, so no station could "
            "seal a result to you; register your X25519 public key with PUT "
            "/users/me/result-key (the Python and R clients do this on first "
            "use), then submit again",
        )
        raise audited_error(
            session,
            hub,
            error,
            EVENT,
            actor,
            collaboration=collaboration.name,
            details={"purpose": body.purpose},
        )

    registrations = session.scalars(
        select(DatasetRegistration)
        .join(DatasetRegistration.station)
        .where(DatasetRegistration.collaboration_id == collaboration.id)
        .order_by(DatasetRegistration.name, Station.name)
    ).all()
    schemas: dict[str, DatasetSchema] = {}
    holders: dict[str, list[Station]] = {}
    for registration in registrations:
        if registration.name not in schemas:
            schemas[registration.name] = DatasetSchema.model_validate(
                registration.schema
            )
        holders.setdefault(registration.name, []).append(registration.station)

    try:
        spec = parse_query(body.query, schemas)
    except QueryError as exc:
        error = ApiError(
            422,
            "invalid_query",
            exc.message,
            position=exc.position,
            query=exc.query,
        )
        raise audited_error(
            session,
            hub,
            error,
            EVENT,
            actor,
            collaboration=collaboration.name,
            details={"query": body.query, "purpose": body.purpose},
        ) from exc

    now = utc_now()
    # Counted before the new request is added, which would count itself.
    budget = budget_of(session, collaboration, scientist.id, now)
    rules = CollaborationRules.model_validate(collaboration.rules)
    placement: RuleViolation | None = None
    if spec.joins:
        stations, placement = join_parties(spec, holders, rules.min_stations)
        schema = joined_schema(spec, schemas)
    else:
        stations = holders[spec.dataset]
        schema = schemas[spec.dataset]
    request = QueryRequest(
        collaboration=collaboration,
        dataset=spec.dataset,
        query=body.query,
        query_spec=spec.model_dump(mode="json"),
        purpose=body.purpose,
        submitter=session.get_one(User, scientist.id),
        state=RequestState.SUBMITTED,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(seconds=hub.settings.approval_deadline_seconds),
        parties=[RequestParty(station=station) for station in stations],
    )
    session.add(request)
    record(
        session,
        hub,
        EVENT,
        actor,
        "accepted",
        request=request,
        details={"query": body.query, "stations": [s.name for s in stations]},
    )

    violation = placement or check_query(
        spec,
        schema,
        rules,
        len(stations),
        [station.name for station in stations],
    )
    if violation is None:
        violation = check_budget(budget, collaboration.name)
    if violation is not None:
        change_state(
            session,
            hub,
            request,
            RequestState.REJECTED,
            actor,
            rejection=violation.as_dict(),
        )
    elif rules.requires_approval:
        change_state(session, hub, request, RequestState.AWAITING_APPROVAL, actor)
    else:
        change_state(
            session,
            hub,
            request,
            RequestState.APPROVED,
            actor,
            details={"reason": "the collaboration's rules require no approval"},
        )
        issue_task(session, hub, request, actor)
    return request


def join_parties(
    spec: QuerySpec, holders: dict[str, list[Station]], min_stations: int
) -> tuple[list[Station], RuleViolation | None]:
    """Return the parties of a join: each dataset's station, then helpers.

    A joined dataset must be at exactly one station, and no station may
    hold two of the joined datasets, because each party contributes the
    rows of at most one dataset. A violation of either returns the stations
    found so far with the rule ``join_placement``.
    """
    owners: list[Station] = []
    for dataset in spec.datasets:
        held = holders[dataset]
        if len(held) > 1:
            names = ", ".join(station.name for station in held)
            return held, RuleViolation(
                "join_placement",
                f"dataset {dataset!r} is held by stations {names}, but a join "
                "reads each dataset from one station; join datasets that one "
                "station each holds",
            )
        station = held[0]
        if station in owners:
            other = spec.datasets[owners.index(station)]
            return owners, RuleViolation(
                "join_placement",
                f"datasets {other!r} and {dataset!r} are both at station "
                f"{station.name!r}, but each station contributes one dataset of "
                "a join; join datasets held by different stations",
            )
        owners.append(station)
    others = {
        station.name: station
        for group in holders.values()
        for station in group
        if station not in owners
    }
    needed = max(0, min_stations - len(owners))
    helpers = [others[name] for name in sorted(others)[:needed]]
    return owners + helpers, None

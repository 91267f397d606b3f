"""Stations registering the datasets they hold in a collaboration.

Every station that has a dataset of the same name in one collaboration
must declare the same columns: names, types, roles, ranges and levels, in
the same order. The stations compute the same query on their parts and add
the results under MPC, which needs identical layouts. Only descriptions may
differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit_trail import audited_error, record
from governance.context import Hub
from governance.errors import ApiError
from governance.lookups import find_collaboration, require_member
from governance.models import DatasetRegistration, Station, utc_now
from governance.principals import Principal
from linksight.schema import ColumnSchema, DatasetSchema

EVENT = "dataset.registered"


@dataclass(frozen=True)
class SchemaDifference:
    """The first column on which two schemas disagree, and how."""

    column: str
    message: str


def _public_fields(column: ColumnSchema) -> dict[str, Any]:
    return column.model_dump(exclude={"description"})


def first_difference(
    mine: DatasetSchema, theirs: DatasetSchema, other: str
) -> SchemaDifference | None:
    """Return the first column where `mine` and `theirs` differ, or None.

    Descriptions are ignored, as in :meth:`DatasetSchema.public_equal`.
    `other` names the holder of `theirs` in the message.
    """
    pairs = zip(mine.columns, theirs.columns, strict=False)
    for position, (own, their) in enumerate(pairs, start=1):
        own_fields = _public_fields(own)
        their_fields = _public_fields(their)
        if own_fields == their_fields:
            continue
        if own.name != their.name:
            return SchemaDifference(
                own.name,
                f"column {position} is {own.name!r} in this schema but "
                f"{their.name!r} at {other}",
            )
        differing = ", ".join(
            f"{field} {own_fields[field]!r} here but {their_fields[field]!r} at {other}"
            for field in own_fields
            if own_fields[field] != their_fields[field]
        )
        return SchemaDifference(own.name, f"column {own.name!r} has {differing}")
    if len(mine.columns) > len(theirs.columns):
        extra = mine.columns[len(theirs.columns)]
        return SchemaDifference(
            extra.name, f"column {extra.name!r} is in this schema but not at {other}"
        )
    if len(theirs.columns) > len(mine.columns):
        missing = theirs.columns[len(mine.columns)]
        return SchemaDifference(
            missing.name,
            f"column {missing.name!r} is at {other} but missing from this schema",
        )
    return None


def register_dataset(
    session: Session,
    hub: Hub,
    station: Principal,
    collaboration_name: str,
    dataset: str,
    schema: DatasetSchema,
) -> DatasetRegistration:
    """Record that `station` has `dataset` with `schema`, replacing any earlier one.

    Registering the same schema again changes nothing and writes no audit
    record.

    Raises
    ------
    ApiError
        404 if the collaboration does not exist, 403 ``not_member`` if the
        station's organisation is not a member, 422 ``name_mismatch`` if the
        schema has another name than `dataset`, 409 ``schema_mismatch`` if
        another station registered the dataset with different columns.
    """
    collaboration = find_collaboration(session, collaboration_name)
    require_member(session, hub, station, collaboration, EVENT)
    actor = station.as_actor()

    if schema.name != dataset:
        error = ApiError(
            422,
            "name_mismatch",
            f"the path names dataset {dataset!r} but the schema is named "
            f"{schema.name!r}; use the same name in both",
        )
        raise audited_error(
            session,
            hub,
            error,
            EVENT,
            actor,
            collaboration=collaboration.name,
            dataset=dataset,
        )

    registrations = session.scalars(
        select(DatasetRegistration)
        .join(DatasetRegistration.station)
        .where(DatasetRegistration.collaboration_id == collaboration.id)
        .where(DatasetRegistration.name == dataset)
        .order_by(Station.name)
    ).all()
    own = None
    for registration in registrations:
        if registration.station_id == station.id:
            own = registration
            continue
        theirs = DatasetSchema.model_validate(registration.schema)
        if schema.public_equal(theirs):
            continue
        holder = f"station {registration.station.name!r}"
        difference = first_difference(schema, theirs, holder)
        column = difference.column if difference else ""
        reason = difference.message if difference else "the columns differ"
        error = ApiError(
            409,
            "schema_mismatch",
            f"dataset {dataset!r} in collaboration {collaboration.name!r} does "
            f"not match the schema {holder} registered: {reason}. Stations "
            "holding one dataset must declare the same columns (descriptions "
            "may differ); align the schema files and register again",
            column=column,
            station=registration.station.name,
        )
        raise audited_error(
            session,
            hub,
            error,
            EVENT,
            actor,
            collaboration=collaboration.name,
            dataset=dataset,
            details={"column": column, "other_station": registration.station.name},
        )

    dumped = schema.model_dump(mode="json")
    if own is not None and own.schema == dumped:
        # Stations register their datasets again at every start and every
        # few seconds after; an unchanged schema is no new event to audit.
        return own

    now = utc_now()
    replaced = own is not None
    if own is None:
        own = DatasetRegistration(
            collaboration_id=collaboration.id,
            station_id=station.id,
            name=dataset,
            schema=dumped,
            registered_at=now,
        )
        session.add(own)
    else:
        own.schema = dumped
        own.registered_at = now
    record(
        session,
        hub,
        EVENT,
        actor,
        "replaced" if replaced else "registered",
        collaboration=collaboration.name,
        dataset=dataset,
        details={"station": station.name, "columns": schema.column_names},
    )
    return own

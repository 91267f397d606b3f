"""A station's own lists for an overlap query, before anything is blinded.

The station reads the identifier column and the group-by columns of the
rows that pass the query's filter and normalises the identifiers by the
schema's rules. Per cell (one combination of group-by levels) it keeps the
distinct valid identifiers and the number of invalid ones. Rows whose
group-by value is missing belong to no cell, as in pandas' groupby.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from linksight.identifiers import normalise_identifiers
from linksight.query import QuerySpec
from linksight.schema import DatasetSchema
from station.aggregates import compile_filter

__all__ = ["OverlapLists", "cell_name", "compute_overlap_lists"]


@dataclass(frozen=True)
class OverlapLists:
    """One station's distinct valid identifiers and invalid counts per cell."""

    group_by: list[str]
    cells: list[tuple[Any, ...]]
    identifiers: list[list[str]]
    invalid: list[int]

    @property
    def cell_names(self) -> list[str]:
        """The cells as text, such as ``result=negative``, in layout order."""
        return [cell_name(self.group_by, cell) for cell in self.cells]


def cell_name(group_by: list[str], cell: tuple[Any, ...]) -> str:
    """Return a cell as ``col=value,col=value``; empty without grouping."""
    return ",".join(f"{c}={v}" for c, v in zip(group_by, cell, strict=True))


def overlap_cells(spec: QuerySpec, schema: DatasetSchema) -> list[tuple[Any, ...]]:
    """Return every combination of the group-by columns' declared levels."""
    levels = [list(schema.column(c).levels or []) for c in spec.group_by]
    return [tuple(combination) for combination in itertools.product(*levels)]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def compute_overlap_lists(
    spec: QuerySpec, schema: DatasetSchema, parquet_path: Path
) -> OverlapLists:
    """Read, filter, normalise and deduplicate this station's identifiers."""
    if spec.identifier is None:
        raise ValueError("an overlap query needs an identifier column")
    rules = schema.column(spec.identifier).normalise
    parameters: list[Any] = []
    conditions = [f"{_quote(c)} IS NOT NULL" for c in spec.group_by]
    if spec.where is not None:
        conditions.append(compile_filter(spec.where, parameters))
    columns = [_quote(spec.identifier)] + [_quote(c) for c in spec.group_by]
    sql = f"SELECT {', '.join(columns)} FROM read_parquet(?)"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    with duckdb.connect(":memory:") as connection:
        frame = connection.execute(sql, [str(parquet_path), *parameters]).df()

    text, valid = normalise_identifiers(frame[spec.identifier], rules)
    cells = overlap_cells(spec, schema)
    index = {_cell_key(cell): position for position, cell in enumerate(cells)}
    identifiers: list[list[str]] = [[] for _ in cells]
    invalid = [0] * len(cells)
    frame = frame.assign(_id=text, _valid=valid)
    if spec.group_by:
        groups = frame.groupby(spec.group_by, sort=False, dropna=True)
        parts = [
            (key if isinstance(key, tuple) else (key,), part) for key, part in groups
        ]
    else:
        parts = [((), frame)]
    for key, part in parts:
        position = index.get(_cell_key(key))
        if position is None:
            raise ValueError(
                f"group value {key!r} is not a declared level of {spec.group_by}; "
                "re-import the dataset against its schema"
            )
        invalid[position] = int((~part["_valid"]).sum())
        identifiers[position] = part.loc[part["_valid"], "_id"].unique().tolist()
    return OverlapLists(list(spec.group_by), cells, identifiers, invalid)


def _cell_key(values: tuple[Any, ...]) -> tuple[str, ...]:
    # Parquet may return 1.0 for a level declared as 1; compare as text.
    return tuple(
        str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
        for v in values
    )

"""Local aggregates: what a station computes on its own rows for a query.

For every output cell (one combination of the group-by levels) the station
computes the row count and, for each column that a statistic reads, the
number of non-missing values, their sum and their sum of squares. These
numbers are laid out in one flat vector, in the same order at every station,
so that the secure computation can add the stations' vectors slot by slot.

The computation runs in DuckDB directly on the station's Parquet file, with
the query's filter compiled to SQL with bound parameters.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from linksight.query import (
    And,
    Comparison,
    Filter,
    InList,
    IsNull,
    Not,
    Or,
    QuerySpec,
)
from linksight.schema import DatasetSchema
from station.filter_triples import REGION_COUNT, earlier_pairs

# Upper bound on one station's row count used to size secure numbers. Every
# party must use the same number types, so the bound is a protocol constant
# and not each station's own declared maximum.
MAX_ROWS_PER_STATION = 2**32


@dataclass(frozen=True)
class OutputSpec:
    """One released figure: a statistic in one cell, and the slots it reads."""

    cell: int
    label: str
    func: str
    n_slot: int
    sum_slot: int | None = None
    square_slot: int | None = None


@dataclass
class Layout:
    """The order of the aggregate vector, identical at every station."""

    group_by: list[str]
    cells: list[tuple[Any, ...]]
    columns: list[str]
    outputs: list[OutputSpec] = field(default_factory=list)

    @property
    def width(self) -> int:
        """The number of slots in the vector."""
        return len(self.cells) * (1 + 3 * len(self.columns))

    def rows_slot(self, cell: int) -> int:
        """Return the slot of the row count of `cell`."""
        return cell * (1 + 3 * len(self.columns))

    def column_slot(self, cell: int, column: str, part: int) -> int:
        """Return the slot of `part` (0 n, 1 sum, 2 sum of squares) of `column`."""
        base = self.rows_slot(cell) + 1
        return base + 3 * self.columns.index(column) + part

    def cell_labels(self, cell: int) -> dict[str, Any]:
        """Return the group-by values of `cell` by column name."""
        return dict(zip(self.group_by, self.cells[cell], strict=True))


def build_layout(spec: QuerySpec, schema: DatasetSchema) -> Layout:
    """Lay out the aggregate vector and the released outputs for `spec`."""
    levels = [list(schema.column(c).levels or []) for c in spec.group_by]
    cells = [tuple(combination) for combination in itertools.product(*levels)]
    columns: list[str] = []
    for aggregate in spec.aggregates:
        if aggregate.column is not None and aggregate.column not in columns:
            columns.append(aggregate.column)
    layout = Layout(list(spec.group_by), cells, columns)
    for cell in range(len(cells)):
        for aggregate in spec.aggregates:
            if aggregate.column is None:
                n_slot = layout.rows_slot(cell)
                layout.outputs.append(
                    OutputSpec(cell, aggregate.label, "count", n_slot)
                )
                continue
            column = aggregate.column
            layout.outputs.append(
                OutputSpec(
                    cell,
                    aggregate.label,
                    aggregate.func,
                    n_slot=layout.column_slot(cell, column, 0),
                    sum_slot=layout.column_slot(cell, column, 1),
                    square_slot=layout.column_slot(cell, column, 2),
                )
            )
    return layout


def fixed_point_size(spec: QuerySpec, schema: DatasetSchema, parties: int) -> int:
    """Return the fractional bits f for secure fixed-point numbers of l = 2f bits.

    The largest value entering or produced by the computation is a pooled
    sum of squares, at most parties * MAX_ROWS_PER_STATION * max|x|^2. MPyC's
    division is accurate when l = 2f, so the integer part has f - 1 bits; f
    leaves 32 bits of headroom above the largest value for the fraction.
    """
    largest = float(parties * MAX_ROWS_PER_STATION)
    for aggregate in spec.aggregates:
        if aggregate.column is not None:
            bound = schema.column(aggregate.column).max_abs
            largest = max(largest, parties * MAX_ROWS_PER_STATION * bound * bound)
    integer_bits = math.ceil(math.log2(largest + 1)) + 1
    fraction_bits = max(32, integer_bits + 32)
    return fraction_bits + (-fraction_bits) % 8


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def compile_filter(node: Filter, parameters: list[Any]) -> str:
    """Compile a filter tree to a SQL condition, appending its values to `parameters`.

    SQL's three-valued logic applies: a comparison with a missing value is
    unknown, and a row is kept only when the whole condition is true.
    """
    if isinstance(node, Comparison):
        operator = {"==": "=", "!=": "<>"}.get(node.op, node.op)
        parameters.append(node.value)
        return f"{_quote(node.column)} {operator} ?"
    if isinstance(node, InList):
        parameters.extend(node.values)
        marks = ", ".join("?" for _ in node.values)
        return f"{_quote(node.column)} IN ({marks})"
    if isinstance(node, IsNull):
        return f"{_quote(node.column)} IS {'NOT ' if node.negated else ''}NULL"
    if isinstance(node, Not):
        return f"NOT ({compile_filter(node.item, parameters)})"
    joiner = " AND " if isinstance(node, And) else " OR "
    assert isinstance(node, (And, Or))
    return "(" + joiner.join(compile_filter(i, parameters) for i in node.items) + ")"


def compute_local_vector(
    spec: QuerySpec, layout: Layout, parquet_path: Path
) -> list[float]:
    """Compute this station's aggregate vector for `spec` from its Parquet file.

    Rows whose group-by value is missing belong to no cell, as in pandas'
    groupby. Cells with no rows contribute zeros.
    """
    parameters: list[Any] = []
    conditions = [f"{_quote(c)} IS NOT NULL" for c in layout.group_by]
    if spec.where is not None:
        conditions.append(compile_filter(spec.where, parameters))
    selects = [_quote(c) for c in layout.group_by] + ["count(*)"]
    for column in layout.columns:
        value = f"CAST({_quote(column)} AS DOUBLE)"
        selects += [
            f"count({_quote(column)})",
            f"coalesce(sum({value}), 0)",
            f"coalesce(sum({value} * {value}), 0)",
        ]
    sql = f"SELECT {', '.join(selects)} FROM read_parquet(?)"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    if layout.group_by:
        sql += " GROUP BY " + ", ".join(_quote(c) for c in layout.group_by)
    with duckdb.connect(":memory:") as connection:
        rows = connection.execute(sql, [str(parquet_path), *parameters]).fetchall()

    cell_index = {_cell_key(cell): i for i, cell in enumerate(layout.cells)}
    vector = [0.0] * layout.width
    groups = len(layout.group_by)
    for row in rows:
        key = _cell_key(tuple(row[:groups]))
        if key not in cell_index:
            raise ValueError(
                f"group value {row[:groups]!r} is not a declared level of "
                f"{layout.group_by}; re-import the dataset against its schema"
            )
        cell = cell_index[key]
        values = row[groups:]
        if values[0] == 0:
            continue  # an ungrouped query over no rows still returns one row
        vector[layout.rows_slot(cell)] = float(values[0])
        for position, column in enumerate(layout.columns):
            n, total, squares = values[1 + 3 * position : 4 + 3 * position]
            vector[layout.column_slot(cell, column, 0)] = float(n)
            vector[layout.column_slot(cell, column, 1)] = float(total)
            vector[layout.column_slot(cell, column, 2)] = float(squares)
    return vector


# Statistics whose value rests on a column's sum, so a few large values can
# dominate it: the dominance and p% rules apply to them.
MAGNITUDE_FUNCTIONS = ("sum", "mean", "var")


def magnitude_column(layout: Layout, output: OutputSpec) -> str | None:
    """Return the column whose sum `output` rests on, or None for a count."""
    if output.func not in MAGNITUDE_FUNCTIONS:
        return None
    position = (output.n_slot - layout.rows_slot(output.cell) - 1) // 3
    return layout.columns[position]


def magnitude_groups(layout: Layout) -> list[tuple[int, str]]:
    """Return the (cell, column) pairs whose sum a released statistic rests on."""
    groups: list[tuple[int, str]] = []
    for output in layout.outputs:
        column = magnitude_column(layout, output)
        if column is not None and (output.cell, column) not in groups:
            groups.append((output.cell, column))
    return groups


def dominance_bit_length(
    schema: DatasetSchema, columns: list[str], parties: int
) -> int:
    """Return the bits of the secure fixed-point numbers in the dominance check.

    The largest number compared is about twice a pooled sum of absolute
    values, at most parties * MAX_ROWS_PER_STATION * max|x|, and 16 bits
    hold the fraction.
    """
    bound = max([1.0] + [schema.column(c).max_abs for c in columns])
    largest = 2.0 * parties * MAX_ROWS_PER_STATION * bound
    return math.ceil(math.log2(largest + 1)) + 2 + 16


def compute_largest_contributions(
    spec: QuerySpec, layout: Layout, largest: int, parquet_path: Path
) -> list[float]:
    """Return, per magnitude group, the sum of absolute values and the
    `largest` largest absolute values (zeros where there are fewer rows).

    The dominance and p% rules compare the largest contributions to a sum
    with its total. Absolute values make a large negative value count as
    much as a large positive one.
    """
    groups = magnitude_groups(layout)
    if not groups:
        return []
    parameters: list[Any] = []
    conditions = [f"{_quote(c)} IS NOT NULL" for c in layout.group_by]
    if spec.where is not None:
        conditions.append(compile_filter(spec.where, parameters))
    columns = sorted({column for _, column in groups}, key=layout.columns.index)
    selects = [_quote(c) for c in layout.group_by]
    for column in columns:
        value = f"abs(CAST({_quote(column)} AS DOUBLE))"
        selects += [f"coalesce(sum({value}), 0)", f"max({value}, {int(largest)})"]
    sql = f"SELECT {', '.join(selects)} FROM read_parquet(?)"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    if layout.group_by:
        sql += " GROUP BY " + ", ".join(_quote(c) for c in layout.group_by)
    with duckdb.connect(":memory:") as connection:
        rows = connection.execute(sql, [str(parquet_path), *parameters]).fetchall()
    found: dict[tuple[int, str], list[float]] = {}
    cell_index = {_cell_key(cell): i for i, cell in enumerate(layout.cells)}
    width = len(layout.group_by)
    for row in rows:
        cell = cell_index.get(_cell_key(tuple(row[:width])))
        if cell is None:
            continue  # compute_local_vector rejects undeclared levels
        for position, column in enumerate(columns):
            total, values = row[width + 2 * position : width + 2 * position + 2]
            top = [float(v) for v in (values or [])][:largest]
            found[(cell, column)] = [float(total)] + top + [0.0] * (largest - len(top))
    vector: list[float] = []
    for group in groups:
        vector += found.get(group, [0.0] * (largest + 1))
    return vector


@dataclass(frozen=True)
class DifferenceCount:
    """Rows in exactly one of two queries' populations, at this station.

    `column` is None for the rows themselves, or a column whose non-missing
    values a statistic of the new query reads.
    """

    request_id: str
    column: str | None
    count: float

    def as_dict(self) -> dict[str, Any]:
        """Return the count as JSON-ready fields."""
        return {
            "request_id": self.request_id,
            "column": self.column,
            "count": self.count,
        }


def _population(
    where: Filter | None, group_by: list[str], column: str | None, parameters: list[Any]
) -> str:
    conditions = [f"{_quote(c)} IS NOT NULL" for c in group_by]
    if column is not None:
        conditions.append(f"{_quote(column)} IS NOT NULL")
    if where is not None:
        conditions.append(compile_filter(where, parameters))
    return " AND ".join(conditions) if conditions else "TRUE"


def compute_difference_counts(
    spec: QuerySpec, layout: Layout, history: list[Any], parquet_path: Path
) -> list[DifferenceCount]:
    """Count, per earlier query, the rows in exactly one of the two populations.

    A population is the rows a query's figures rest on: its filter holds and
    its group-by columns are present, and for a statistic of a column, that
    column is present too. If two released queries' populations differ by
    1 to 9 persons, subtracting their results singles those persons out;
    the pooled counts are checked in MPC, so only pass or fail is opened.
    """
    columns: list[str | None] = [None, *layout.columns]
    counts: list[DifferenceCount] = []
    with duckdb.connect(":memory:") as connection:
        for earlier in history:
            parameters: list[Any] = []
            sums = []
            for column in columns:
                new = _population(spec.where, spec.group_by, column, parameters)
                old = _population(earlier.where, earlier.group_by, column, parameters)
                sums.append(
                    f"coalesce(sum(CASE WHEN coalesce(({new}), FALSE) <> "
                    f"coalesce(({old}), FALSE) THEN 1 ELSE 0 END), 0)"
                )
            sql = f"SELECT {', '.join(sums)} FROM read_parquet(?)"
            # The file path is the last parameter, after those of the filters.
            row = connection.execute(sql, [*parameters, str(parquet_path)]).fetchone()
            for column, count in zip(columns, row or (), strict=True):
                counts.append(DifferenceCount(earlier.request_id, column, float(count)))
    return counts


def compute_region_counts(
    spec: QuerySpec, layout: Layout, earlier: list[Any], parquet_path: Path
) -> list[int]:
    """Count this station's rows in the Venn regions of every triple.

    A triple is the new query's population and two of the `earlier`
    queries' populations, for the rows and for each column a statistic
    reads, as in `compute_difference_counts`. The list has 7 counts per
    triple, in the region order of `station.filter_triples.REGIONS`, for
    each column in turn (rows first) and each pair (i, j), i < j, of
    `earlier` within it.

    NOTE: the populations are whole queries, not their cells, so counts of
    single cells of grouped outputs combined across queries are not checked.
    """
    pairs = earlier_pairs(len(earlier))
    if not pairs:
        return []
    columns: list[str | None] = [None, *layout.columns]
    counts: list[int] = []
    with duckdb.connect(":memory:") as connection:
        for column in columns:
            parameters: list[Any] = []
            members = []
            for query in [spec, *earlier]:
                condition = _population(query.where, query.group_by, column, parameters)
                members.append(f"coalesce(({condition}), FALSE)")
            sql = (
                f"SELECT {', '.join(members)}, count(*) FROM read_parquet(?) "
                f"GROUP BY ALL"
            )
            # The file path is the last parameter, after those of the filters.
            rows = connection.execute(sql, [*parameters, str(parquet_path)]).fetchall()
            for first, second in pairs:
                regions = [0] * REGION_COUNT
                for row in rows:
                    code = (
                        4 * bool(row[0])
                        + 2 * bool(row[1 + first])
                        + bool(row[1 + second])
                    )
                    if code:
                        regions[code - 1] += int(row[-1])
                counts.extend(regions)
    return counts


def _cell_key(values: tuple[Any, ...]) -> tuple[str, ...]:
    # Parquet may return 1 for an integer level declared as 1; compare as text.
    return tuple(
        str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
        for v in values
    )

"""This station's side of federated training: its rows, and the task's files.

The station daemon accepts a signed ``train`` task (:mod:`station.runner`)
by writing it to ``state_dir/flower/tasks/<task_id>/task.json``. The
ClientApp that the station's SuperNode starts (:mod:`station.flower_client`)
trains only for a task accepted there, on the rows of this station's stored
dataset, and writes the round-by-round progress and the run's outcome into
the same folder, where the daemon reads them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from linksight.query import QuerySpec
from linksight.schema import DatasetSchema
from station.aggregates import compile_filter


@dataclass(frozen=True)
class TrainingDesign:
    """The design columns of a training formula, identical at every station."""

    names: list[str]
    expressions: list[tuple[str, list[Any]]]
    scales: list[float]
    # SQL for the response: 0/1 for a two-level response, else the value
    # divided by response_scale.
    response: tuple[str, list[Any]]
    response_scale: float


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _level_text(level: Any) -> str:
    if isinstance(level, float) and level.is_integer():
        return str(int(level))
    return str(level)


def build_training_design(spec: QuerySpec, schema: DatasetSchema) -> TrainingDesign:
    """Lay out the design of `spec`'s formula over `schema`.

    Numeric columns are divided by their declared maximum absolute value, as
    in :func:`station.regression.build_design`, and so is a numeric response;
    a two-level response is 1 for its second declared level and 0 for its
    first. A condition, as a term such as ``(cp == 'asymptomatic')`` or as
    the response such as ``(num > 0)``, is 1 where it holds and 0 elsewhere.
    """
    if spec.model is None:
        raise ValueError(f"a {spec.kind} query has no model to lay out")
    names = ["Intercept"]
    expressions: list[tuple[str, list[Any]]] = [("1.0", [])]
    scales = [1.0]
    for term in spec.model.terms:
        column = _quote(term.column)
        declared = schema.column(term.column)
        if term.condition is not None:
            values: list[Any] = []
            condition = compile_filter(term.condition, values)
            names.append(term.label)
            expressions.append((f"CASE WHEN {condition} THEN 1.0 ELSE 0.0 END", values))
            scales.append(1.0)
            continue
        if not term.categorical:
            if declared.min is None or declared.max is None or declared.max_abs == 0:
                raise ValueError(
                    f"column {term.column!r} has no declared range; declare min "
                    "and max in the dataset's schema to use it in a model"
                )
            names.append(term.column)
            expressions.append((f"CAST({column} AS DOUBLE)", []))
            scales.append(float(declared.max_abs))
            continue
        for level in list(declared.levels or [])[1:]:
            names.append(f"C({term.column})[T.{_level_text(level)}]")
            expressions.append(
                (f"CASE WHEN {column} = ? THEN 1.0 ELSE 0.0 END", [level])
            )
            scales.append(1.0)
    response_column = schema.column(spec.model.response)
    quoted = _quote(spec.model.response)
    response_scale = 1.0
    if spec.model.outcome is not None:
        outcome_values: list[Any] = []
        condition = compile_filter(spec.model.outcome, outcome_values)
        response = (f"CASE WHEN {condition} THEN 1.0 ELSE 0.0 END", outcome_values)
    elif response_column.type == "categorical":
        second = list(response_column.levels or [])[1]
        response = (f"CASE WHEN {quoted} = ? THEN 1.0 ELSE 0.0 END", [second])
    else:
        if response_column.min is None or response_column.max is None:
            raise ValueError(
                f"column {spec.model.response!r} has no declared range; declare "
                "min and max in the dataset's schema to use it as a response"
            )
        response_scale = float(response_column.max_abs)
        response = (f"CAST({quoted} AS DOUBLE) / {response_scale!r}", [])
    return TrainingDesign(names, expressions, scales, response, response_scale)


def load_rows(
    spec: QuerySpec, design: TrainingDesign, parquet_path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Return the scaled design matrix and the response of this station's rows.

    Rows with a missing model column, or that fail the filter, are left out.
    """
    assert spec.model is not None
    columns = [spec.model.response] + [t.column for t in spec.model.terms]
    values: list[Any] = []
    selects = []
    for (expression, parameters), scale in zip(
        design.expressions, design.scales, strict=True
    ):
        values.extend(parameters)
        selects.append(f"({expression}) / {scale!r}")
    values.extend(design.response[1])
    selects.append(design.response[0])
    conditions = [f"{_quote(c)} IS NOT NULL" for c in columns]
    filter_values: list[Any] = []
    if spec.where is not None:
        conditions.append(compile_filter(spec.where, filter_values))
    sql = (
        f"SELECT {', '.join(selects)} FROM read_parquet(?) "
        f"WHERE {' AND '.join(conditions)}"
    )
    with duckdb.connect(":memory:") as connection:
        rows = connection.execute(
            sql, [*values, str(parquet_path), *filter_values]
        ).fetchall()
    matrix = np.array(rows, dtype=float).reshape(len(rows), len(selects))
    return matrix[:, :-1], matrix[:, -1]


class TaskFolder:
    """The files of one training task in the station's state directory."""

    def __init__(self, state_dir: Path, task_id: str):
        if not task_id.replace("-", "").isalnum():
            raise ValueError(f"invalid task id {task_id!r}")
        self.path = state_dir / "flower" / "tasks" / task_id

    @property
    def task_file(self) -> Path:
        """The accepted signed task (JSON)."""
        return self.path / "task.json"

    @property
    def progress_file(self) -> Path:
        """One JSON line per exchange the ClientApp took part in."""
        return self.path / "progress.jsonl"

    @property
    def outcome_file(self) -> Path:
        """The run's outcome as the ServerApp sent it (JSON)."""
        return self.path / "outcome.json"

    def accept(self, signed: dict[str, Any]) -> None:
        """Record the signed task as accepted by this station."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.task_file.write_text(json.dumps(signed))

    def accepted(self) -> dict[str, Any] | None:
        """Return the accepted signed task, or None."""
        try:
            return json.loads(self.task_file.read_text())
        except FileNotFoundError:
            return None

    def add_progress(self, entry: dict[str, Any]) -> None:
        """Append one exchange's progress line."""
        with self.progress_file.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")

    def progress(self) -> list[dict[str, Any]]:
        """Return the progress lines written so far."""
        try:
            lines = self.progress_file.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def write_outcome(self, outcome: dict[str, Any]) -> None:
        """Store the outcome atomically, so the daemon never reads half of it."""
        partial = self.outcome_file.with_suffix(".partial")
        partial.write_text(json.dumps(outcome))
        partial.replace(self.outcome_file)

    def outcome(self) -> dict[str, Any] | None:
        """Return the outcome, or None while the run goes on."""
        try:
            return json.loads(self.outcome_file.read_text())
        except FileNotFoundError:
            return None

"""A station's part of a vertical join, before and after the MPC party.

Every party lays out the same public column names from the query and the
joined datasets' schemas in the task. Each dataset gets its filter column,
one 0/1 column per level of its GROUP BY and C() columns, and a 0/1 column
per condition term. Each numeric column gets its value, divided by the
declared maximum absolute value, and a 0/1 presence column. An owner fills
these columns from its Parquet file, with its keys normalised by the
schema's rules. It drops invalid keys and keys that occur more than once.
A party that has none of the joined datasets takes part as a helper, with
no rows.
The protocol itself is :mod:`station.secure_join`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from linksight.identifiers import normalise_identifiers
from linksight.joins import dataset_filter
from linksight.query import QuerySpec
from linksight.signing import canonical_json
from linksight.tasks import TaskSpec
from station.aggregates import MAGNITUDE_FUNCTIONS, compile_filter
from station.logistic import DEADLINE_MARGIN_SECONDS, MAX_ITERATIONS, STEP_TOLERANCE
from station.logistic import coefficient_table as logit_table
from station.regression import DesignLayout, coefficient_table, fixed_point_size
from station.result import RULE_DESCRIPTIONS

__all__ = ["JoinPlan", "build_join_result", "plan_join", "read_owner_rows"]

# Dummy rows each owner adds at most, hiding its exact row count.
PADDING_MAX = 25
# The analyses that fit a model on the joined rows.
MODEL_KINDS = ("ols", "logit")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _level_text(level: Any) -> str:
    if isinstance(level, float) and level.is_integer():
        return str(int(level))
    return str(level)


@dataclass
class OwnerColumns:
    """One dataset's layout and the SQL that fills it, in layout order."""

    dataset: str
    indicators: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)
    filtered: bool = False
    # (SQL expression, bound parameters) per indicator, then per value.
    expressions: list[tuple[str, list[Any]]] = field(default_factory=list)

    def add_indicator(self, name: str, sql: str, parameters: list[Any]) -> None:
        if name not in self.indicators:
            self.indicators.append(name)
            self.expressions.insert(len(self.indicators) - 1, (sql, parameters))

    def add_value(self, column: str, scale: float) -> None:
        if column in self.values:
            return
        self.values.append(column)
        self.scales.append(scale)
        self.expressions.append(
            (f"coalesce(CAST({_quote(column)} AS DOUBLE), 0.0) / {scale!r}", [])
        )
        self.add_indicator(f"{column}:present", f"{_quote(column)} IS NOT NULL", [])


@dataclass
class JoinPlan:
    """The columns of every owner and the analysis settings of a join."""

    owners: dict[str, OwnerColumns]
    groups: list[dict[str, Any]]
    means: list[dict[str, str]]
    # The settings of an ols or logit fit, or None for other analyses.
    model: dict[str, Any] | None
    # Design names as in statsmodels, for the result's coefficient table.
    design_names: list[str]


def _scale(task: TaskSpec, dataset: str, column: str) -> float:
    assert task.join is not None
    declared = task.join.schemas[dataset].column(column)
    if declared.min is None or declared.max is None or declared.max_abs == 0:
        raise ValueError(
            f"column {column!r} of dataset {dataset!r} has no declared range (min "
            f"{declared.min}, max {declared.max}); a join needs both to scale its "
            "values into [-1, 1]: declare min and max in the dataset's schema"
        )
    return float(declared.max_abs)


def plan_join(task: TaskSpec) -> JoinPlan:
    """Lay out every owner's columns for the task's joined query."""
    spec = task.query
    if task.join is None:
        raise ValueError("the task names no placement of the joined datasets")
    owners = {}
    for dataset in spec.datasets:
        owner = OwnerColumns(dataset)
        parameters: list[Any] = []
        condition = dataset_filter(spec, dataset)
        if condition is not None:
            owner.filtered = True
            sql = compile_filter(condition, parameters)
        else:
            sql = "TRUE"
        owner.add_indicator(f"{dataset}:where", sql, parameters)
        owners[dataset] = owner

    def owner_of(column: str) -> OwnerColumns:
        return owners[spec.sources[column]]

    groups = []
    for column in spec.group_by:
        owner = owner_of(column)
        levels = list(task.join.schemas[owner.dataset].column(column).levels or [])
        names = []
        for level in levels:
            name = f"{column}={_level_text(level)}"
            owner.add_indicator(name, f"{_quote(column)} = ?", [level])
            names.append(name)
        groups.append({"column": column, "levels": levels, "columns": names})

    means = []
    for aggregate in spec.aggregates:
        value = aggregate.column
        if value is None:
            continue
        owner_of(value).add_value(value, _scale(task, spec.sources[value], value))
        entry = {"value": value, "present": f"{value}:present"}
        if entry not in means:
            means.append(entry)

    model = None
    design_names = ["Intercept"]
    if spec.kind in MODEL_KINDS and spec.model is not None:
        model, design_names = _plan_model(task, spec, owner_of)
    return JoinPlan(owners, groups, means, model, design_names)


@dataclass
class _Design:
    """The OLS design as it is laid out: layout names, statsmodels names, factors."""

    terms: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=lambda: ["Intercept"])
    factors: list[dict[str, Any]] = field(default_factory=list)


def _add_term(task: TaskSpec, owner: OwnerColumns, term: Any, design: _Design) -> None:
    """Add one formula term's columns to its owner and to the design."""
    assert task.join is not None
    if term.condition is not None:
        parameters: list[Any] = []
        sql = compile_filter(term.condition, parameters)
        owner.add_indicator(term.label, sql, parameters)
        design.terms.append(term.label)
        design.names.append(term.label)
        # A condition is a factor with the levels true and false (reference).
        design.factors.append(
            {
                "term": term.label,
                "reference": "false",
                "levels": ["true"],
                "design_columns": [len(design.names) - 1],
            }
        )
        return

    if not term.categorical:
        owner.add_value(term.column, _scale(task, owner.dataset, term.column))
        design.terms.append(term.column)
        design.names.append(term.column)
        return

    declared = task.join.schemas[owner.dataset].column(term.column)
    levels = list(declared.levels or [])
    if len(levels) < 2:
        raise ValueError(
            f"column {term.column!r} declares {len(levels)} level(s); C() "
            "needs at least two: declare the levels in the dataset's schema"
        )
    first = len(design.names)
    for level in levels[1:]:
        name = f"{term.column}={_level_text(level)}"
        owner.add_indicator(name, f"{_quote(term.column)} = ?", [level])
        design.terms.append(name)
        design.names.append(f"C({term.column})[T.{_level_text(level)}]")
    design.factors.append(
        {
            "term": term.label,
            "reference": _level_text(levels[0]),
            "levels": [_level_text(level) for level in levels[1:]],
            "design_columns": list(range(first, len(design.names))),
        }
    )


def _plan_model(
    task: TaskSpec, spec: QuerySpec, owner_of: Any
) -> tuple[dict[str, Any], list[str]]:
    """Lay out a formula's columns, and return the fit's settings and design names."""
    assert spec.model is not None
    model = spec.model
    design = _Design()
    present: list[str] = []
    for term in model.terms:
        owner = owner_of(term.column)
        presence = f"{term.column}:present"
        owner.add_indicator(presence, f"{_quote(term.column)} IS NOT NULL", [])
        present.append(presence)
        _add_term(task, owner, term, design)

    response = model.response
    owner = owner_of(response)
    if model.outcome is not None:
        parameters: list[Any] = []
        sql = compile_filter(model.outcome, parameters)
        owner.add_indicator(model.response_label, sql, parameters)
        owner.add_indicator(
            f"{response}:present", f"{_quote(response)} IS NOT NULL", []
        )
        response_name = model.response_label
    else:
        owner.add_value(response, _scale(task, owner.dataset, response))
        response_name = response
    present.append(f"{response}:present")

    settings = {
        "response": response_name,
        "terms": design.terms,
        "present": list(dict.fromkeys(present)),
        "factors": design.factors,
        "min_residual_df": task.disclosure.min_residual_df,
        "max_parameter_fraction": task.disclosure.max_parameter_fraction,
    }
    if spec.kind == "logit":
        settings.update(
            min_level_count=task.disclosure.min_level_count,
            step_tolerance=STEP_TOLERANCE,
            max_iterations=MAX_ITERATIONS,
            deadline_margin_seconds=DEADLINE_MARGIN_SECONDS,
        )
    return settings, design.names


def comparer_index(task: TaskSpec) -> int:
    """Return the party that matches the blinded keys: the first helper, if any.

    A helper owns no list, so the comparer never receives a list of its own,
    which two other parties would have to shuffle first.
    """
    assert task.join is not None
    owners = set(task.join.stations.values())
    for index, party in enumerate(task.parties):
        if party.station not in owners:
            return index
    return 0


def read_owner_rows(
    task: TaskSpec, owner: OwnerColumns, parquet_path: Path
) -> dict[str, Any]:
    """Read this owner's keys, indicator and value columns from its Parquet file."""
    spec = task.query
    assert task.join is not None and spec.join_key is not None
    schema = task.join.schemas[owner.dataset]
    selects = [f"{_quote(spec.join_key)} AS key"]
    parameters: list[Any] = []
    for position, (sql, values) in enumerate(owner.expressions):
        if position < len(owner.indicators):
            sql = f"CASE WHEN {sql} THEN 1.0 ELSE 0.0 END"
        selects.append(f"{sql} AS c{position}")
        parameters.extend(values)
    query = f"SELECT {', '.join(selects)} FROM read_parquet(?)"
    with duckdb.connect(":memory:") as connection:
        frame = connection.execute(query, [*parameters, str(parquet_path)]).df()

    rules = schema.column(spec.join_key).normalise
    keys, valid = normalise_identifiers(frame["key"], rules)
    frame = frame.assign(key=keys)[valid]
    # Rows that share a key cannot be matched to one person, so all are dropped.
    frame = frame[~frame["key"].duplicated(keep=False)]
    count = len(owner.indicators)
    columns = [frame[f"c{i}"].astype(float).tolist() for i in range(len(selects) - 1)]
    return {
        "keys": frame["key"].tolist(),
        "indicators": columns[:count],
        "values": columns[count:],
        "dropped_keys": int(len(valid) - len(frame)),
    }


def party_input(
    task: TaskSpec, plan: JoinPlan, own_rows: dict[str, Any] | None, threads: int
) -> dict[str, Any]:
    """Return what this station's MPC party needs for the join `task`."""
    assert task.join is not None
    stations = [party.station for party in task.parties]
    layout = []
    for dataset, owner in plan.owners.items():
        layout.append(
            {
                "owner": stations.index(task.join.stations[dataset]),
                "indicators": owner.indicators,
                "values": owner.values,
                "scales": owner.scales,
                "filtered": owner.filtered,
            }
        )
    config: dict[str, Any] = {
        "analysis": "join",
        "task_id": task.task_id,
        "comparer": comparer_index(task),
        "layout": layout,
        "min_count": task.disclosure.min_count,
        "padding_max": PADDING_MAX,
        "threads": threads,
        "fraction_bits": fixed_point_size(len(task.parties)),
        "groups": [
            {"levels": g["levels"], "columns": g["columns"]} for g in plan.groups
        ],
        "means": plan.means,
    }
    if plan.model is not None:
        config[task.query.kind] = plan.model
    settings = task.disclosure
    if plan.means and (settings.dominance_k < 1 or settings.p_percent > 0):
        config["dominance"] = {
            "n": settings.dominance_n,
            "k": settings.dominance_k,
            "p": settings.p_percent,
        }
    if own_rows is not None:
        config.update(
            keys=own_rows["keys"],
            indicators=own_rows["indicators"],
            values=own_rows["values"],
        )
    return config


def build_join_result(
    task: TaskSpec, plan: JoinPlan, output: dict[str, Any]
) -> dict[str, Any]:
    """Return the result document of a join: rows or coefficients, or a block."""
    spec = task.query
    group_by = [group["column"] for group in plan.groups]
    checks = []
    for check in output["checks"]:
        if "term" in check:
            level = check["level"]
            checks.append(
                {
                    "rule": check["rule"],
                    "statistic": check["term"],
                    "cell": {} if level is None else {"level": level},
                    "passed": check["passed"],
                }
            )
            continue
        cell = dict(zip(group_by, check["cell"], strict=True)) if check["cell"] else {}
        statistic = check["statistic"]
        if "column" in check:
            # A dominance check covers every sum, mean and variance of its column.
            labels = [
                aggregate.label
                for aggregate in spec.aggregates
                if aggregate.column == check["column"]
                and aggregate.func in MAGNITUDE_FUNCTIONS
            ]
            statistic = ", ".join(labels) or statistic
        checks.append(
            {
                "rule": check["rule"],
                "statistic": statistic,
                "cell": cell,
                "passed": check["passed"],
            }
        )
    result: dict[str, Any] = {
        "query": task.query_text,
        "kind": spec.kind,
        "group_by": group_by if spec.kind not in MODEL_KINDS else [],
        "min_count": task.disclosure.min_count,
        "checks": checks,
        "stations": [party.station for party in task.parties],
        "joined": None,
    }
    if spec.kind in MODEL_KINDS:
        model = spec.model
        result["model"] = {"formula": model.formula if model else "", "n": None}
        iterations = output.get("iterations")
        if spec.kind == "logit" and iterations is not None:
            result["model"].update(iterations=iterations, converged=False)
    failed = [check for check in checks if not check["passed"]]
    if failed:
        result.update(status="blocked", columns=[], rows=[])
        result["blocked"] = _blocked_summary(failed, task)
    elif spec.kind in MODEL_KINDS:
        values = output["values"]
        design = DesignLayout(
            plan.design_names,
            [],
            [1.0] * len(plan.design_names),
            spec.model.response if spec.model else "",
            1.0,
            [],
            ("", []),
        )
        n = values["n"]
        result.update(status="released", blocked=None, joined=output["joined"])
        result["model"].update(n=n, df_resid=n - design.parameters)
        if spec.kind == "logit":
            result["model"].update(iterations=values["iterations"], converged=True)
            result["columns"], result["rows"] = logit_table(
                design, values["coefficients"], values["variances"]
            )
        else:
            result["columns"], result["rows"] = coefficient_table(
                design, values["coefficients"], values["variances"], n
            )
    else:
        result.update(status="released", blocked=None, joined=output["joined"])
        result["columns"], result["rows"] = _aggregate_rows(spec, group_by, output)
    result["sha256"] = hashlib.sha256(canonical_json(result)).hexdigest()
    return result


def _aggregate_rows(
    spec: QuerySpec, group_by: list[str], output: dict[str, Any]
) -> tuple[list[str], list[dict[str, Any]]]:
    columns = list(group_by)
    for aggregate in spec.aggregates:
        columns.append(aggregate.label)
        # A count of a column is its own n.
        if aggregate.column is not None and aggregate.func != "count":
            columns.append(f"{aggregate.label}.n")
    rows = []
    for cell in output["values"]:
        row: dict[str, Any] = dict(zip(group_by, cell["cell"], strict=True))
        for aggregate in spec.aggregates:
            if aggregate.column is None:
                row[aggregate.label] = cell["count"]
                continue
            n = cell[f"count({aggregate.column})"]
            if aggregate.func == "count":
                row[aggregate.label] = n
                continue
            mean = cell[f"mean({aggregate.column})"]
            value = {
                "sum": mean * n,
                "mean": mean,
                "var": cell[f"var({aggregate.column})"],
            }[aggregate.func]
            row[aggregate.label] = value
            row[f"{aggregate.label}.n"] = n
        rows.append(row)
    return columns, rows


def _blocked_summary(failed: list[dict[str, Any]], task: TaskSpec) -> dict[str, Any]:
    rule = failed[0]["rule"]
    same = [check for check in failed if check["rule"] == rule]
    described = []
    for check in same:
        cell = ", ".join(f"{k}={v}" for k, v in check["cell"].items()) or "all rows"
        described.append(f"{check['statistic']} for {cell}")
    message = (
        f"blocked by disclosure control, rule {rule}: {len(same)} figure(s) of "
        f"the join failed it: {'; '.join(described)}. "
    )
    if rule == "min_count":
        message += (
            f"Each figure, the joined persons and the persons the filter leaves "
            f"out must be none or at least {task.disclosure.min_count}; widen the "
            "filter, group on fewer columns, or join datasets that share more "
            "persons."
        )
    elif rule in ("dominance", "p_percent"):
        settings = task.disclosure
        description = RULE_DESCRIPTIONS[rule].format(
            dominance_n=settings.dominance_n,
            dominance_percent=round(settings.dominance_k * 100),
            p_percent=round(settings.p_percent * 100),
        )
        message += (
            f"Each failed figure rests on {description}. Widen the filter, group "
            "on fewer columns, or ask for count(*) instead."
        )
    else:
        message += "Change the formula or widen the filter."
    return {"rule": rule, "message": message, "failed": len(same)}

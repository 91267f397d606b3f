"""Local counts for Kaplan-Meier and the log-rank test, and the released result.

A survival query names an integer follow-up time column, an event condition
and at most one GROUP BY column. A station reduces its rows (those passing
the filter, with no missing time, event column or group) to a table of
(time, group, rows, events): one line per time at which some row ends. The
MPC party (``station.secure_survival``) reads every count it needs from
that table: persons at risk at a day d (time >= d), events and persons at
risk on each day, and the rows that end after a given day.

Released steps rest on at least min_count persons at risk. The released
curve stops at the cut, the last day on which every group still has
min_count persons at risk; the days after it are merged into one tail that
is used by the log-rank test inside MPC and never released. Kaplan-Meier
estimates, Greenwood variances, exponential Greenwood 95% intervals (as
lifelines computes them) and the medians are computed here, in the clear,
from the released daily counts, so every station builds the same result.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import duckdb
from scipy import stats

from linksight.query import QuerySpec
from linksight.schema import DatasetSchema
from linksight.signing import canonical_json
from linksight.tasks import TaskSpec
from station.aggregates import compile_filter

# Fractional bits of the secure fixed-point numbers (l = 2f) that carry the
# counts. The integer part (f - 1 bits) must hold counts below 2^36
# (stations x 2^32 rows); the log-rank tail uses its own, smaller numbers.
FRACTION_BITS = 48


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def group_levels(spec: QuerySpec, schema: DatasetSchema) -> list[str]:
    """Return the labels of the groups, or ``[""]`` for a query without GROUP BY."""
    if not spec.group_by:
        return [""]
    levels = schema.column(spec.group_by[0]).levels or []
    return [str(level) for level in levels]


def local_table(
    spec: QuerySpec, schema: DatasetSchema, parquet_path: Path
) -> list[list[int]]:
    """Return this station's ``[time, group, rows, events]`` lines, by time."""
    survival = spec.survival
    if survival is None:
        raise ValueError(f"a {spec.kind} query has no survival time")
    values: list[Any] = []
    event = compile_filter(survival.event, values)
    columns = [survival.time, survival.event.column, *spec.group_by]
    conditions = [f"{_quote(c)} IS NOT NULL" for c in dict.fromkeys(columns)]
    group = "0"
    if spec.group_by:
        levels = schema.column(spec.group_by[0]).levels or []
        cases = " ".join(
            f"WHEN {_quote(spec.group_by[0])} = ? THEN {index}"
            for index in range(len(levels))
        )
        group = f"CASE {cases} END"
        values.extend(levels)
    filter_values: list[Any] = []
    if spec.where is not None:
        conditions.append(compile_filter(spec.where, filter_values))
    sql = (
        f"SELECT t, g, count(*), sum(e) FROM (SELECT CAST({_quote(survival.time)} "
        f"AS BIGINT) AS t, CASE WHEN {event} THEN 1 ELSE 0 END AS e, {group} AS g "
        f"FROM read_parquet(?) WHERE {' AND '.join(conditions)}) "
        "GROUP BY t, g ORDER BY t, g"
    )
    with duckdb.connect(":memory:") as connection:
        rows = connection.execute(
            sql, [*values, str(parquet_path), *filter_values]
        ).fetchall()
    return [[int(t), int(g), int(count), int(events)] for t, g, count, events in rows]


def party_input(
    task: TaskSpec,
    schema: DatasetSchema,
    table: list[list[int]],
    mine: bool,
) -> dict[str, Any]:
    """Return what this station's MPC party needs for a survival query."""
    spec = task.query
    if spec.survival is None:
        raise ValueError(f"a {spec.kind} query has no survival time")
    time = schema.column(spec.survival.time)
    organisations = {party.organisation for party in task.parties}
    return {
        "analysis": "survival",
        "kind": spec.kind,
        "groups": len(group_levels(spec, schema)),
        "table": table,
        "mine": mine,
        "time_min": int(time.min or 0),
        "time_max": int(time.max if time.max is not None else 0),
        "min_count": task.disclosure.min_count,
        "requester_contributes": task.requester_organisation in organisations,
        "fraction_bits": FRACTION_BITS,
    }


def kaplan_meier(days: list[int], at_risk: list[int], events: list[int]) -> list[dict]:
    """Return the Kaplan-Meier steps at the days with events.

    Each step has the survival after that day, its Greenwood variance sum
    and the exponential Greenwood 95% interval, which lifelines also uses:
    log(-log S) plus or minus 1.96 standard errors, mapped back.
    """
    z = float(stats.norm.ppf(0.975))
    survival = 1.0
    greenwood = 0.0
    steps = []
    for day, n, d in zip(days, at_risk, events, strict=True):
        if d == 0:
            continue
        survival *= 1.0 - d / n
        greenwood = greenwood + d / (n * (n - d)) if n > d else math.inf
        lower = upper = survival
        if 0.0 < survival < 1.0 and math.isfinite(greenwood):
            log_survival = math.log(survival)
            spread = z * math.sqrt(greenwood / log_survival**2)
            centre = math.log(-log_survival)
            lower = math.exp(-math.exp(centre + spread))
            upper = math.exp(-math.exp(centre - spread))
        steps.append(
            {
                "time": day,
                "at_risk": n,
                "events": d,
                "survival": survival,
                "ci_lower": lower,
                "ci_upper": upper,
            }
        )
    return steps


def median_time(steps: list[dict]) -> int | None:
    """Return the first day on which survival is 0.5 or less, or None."""
    for step in steps:
        # A product of exact fractions can land a rounding error above 0.5.
        if step["survival"] <= 0.5 + 1e-12:
            return int(step["time"])
    return None


def logrank_terms(
    at_risk: list[list[float]], events: list[list[float]]
) -> tuple[list[float], list[list[float]]]:
    """Return the log-rank score U and its covariance V over the given days.

    `at_risk[g][k]` and `events[g][k]` are group g's counts on day k. U has
    observed minus expected events of groups 0 to G - 2, and V their
    hypergeometric covariance, summed over days with events.
    """
    groups = len(at_risk)
    score = [0.0] * (groups - 1)
    covariance = [[0.0] * (groups - 1) for _ in range(groups - 1)]
    for k in range(len(at_risk[0])):
        n = sum(at_risk[g][k] for g in range(groups))
        d = sum(events[g][k] for g in range(groups))
        if d == 0 or n == 0:
            continue
        factor = d * (n - d) / (n - 1) if n > 1 else 0.0
        for g in range(groups - 1):
            share = at_risk[g][k] / n
            score[g] += events[g][k] - d * share
            for h in range(groups - 1):
                delta = 1.0 if g == h else 0.0
                covariance[g][h] += factor * share * (delta - at_risk[h][k] / n)
    return score, covariance


def build_survival_result(
    task: TaskSpec, schema: DatasetSchema, output: dict[str, Any]
) -> dict[str, Any]:
    """Return the result document of a km or logrank query, or its block."""
    spec = task.query
    labels = group_levels(spec, schema)
    checks = [
        {
            "rule": check["rule"],
            "statistic": spec.kind,
            "cell": {} if check["group"] is None else {"group": labels[check["group"]]},
            "passed": check["passed"],
        }
        for check in output["checks"]
    ]
    result: dict[str, Any] = {
        "query": task.query_text,
        "kind": spec.kind,
        "group_by": list(spec.group_by),
        "min_count": task.disclosure.min_count,
        "checks": checks,
        "stations": [p.station for p in task.parties],
    }
    failed = [c for c in checks if not c["passed"]]
    if failed:
        cells = ", ".join(
            f"{spec.group_by[0]}={c['cell']['group']}" for c in failed if c["cell"]
        )
        where = f" ({cells})" if cells else ""
        result.update(
            status="blocked",
            columns=[],
            rows=[],
            survival=None,
            blocked={
                "rule": failed[0]["rule"],
                "message": (
                    "blocked by disclosure control, rule min_count: fewer than "
                    f"{task.disclosure.min_count} persons are at risk at the "
                    f"start{where}. To release the curve, widen the filter or "
                    "group on a coarser column."
                ),
                "failed": len(failed),
            },
        )
    else:
        result.update(status="released", blocked=None)
        _fill_released(result, spec, labels, output)
    result["sha256"] = hashlib.sha256(canonical_json(result)).hexdigest()
    return result


def _fill_released(
    result: dict[str, Any], spec: QuerySpec, labels: list[str], output: dict[str, Any]
) -> None:
    values = output["values"]
    days = list(range(values["first_day"], values["cut"] + 1))
    at_risk = values["at_risk"]
    events = values["events"]
    group_column = spec.group_by[0] if spec.group_by else None
    summary: dict[str, Any] = {
        "time": spec.survival.time if spec.survival else "",
        "event": spec.survival.text.split(", ", 1)[1] if spec.survival else "",
        "cut": values["cut"],
        "n": {label: count for label, count in zip(labels, values["n"], strict=True)},
    }
    if spec.kind == "logrank":
        chi_square = values["chi_square"]
        df = len(labels) - 1
        result["columns"] = ["test", "chi_square", "df", "p_value"]
        result["rows"] = [
            {
                "test": "log-rank",
                "chi_square": chi_square,
                "df": df,
                "p_value": float(stats.chi2.sf(chi_square, df)),
            }
        ]
        result["survival"] = summary
        return

    rows = []
    medians = {}
    for g, label in enumerate(labels):
        steps = kaplan_meier(days, at_risk[g], events[g])
        medians[label] = median_time(steps)
        for step in steps:
            rows.append({group_column: label, **step} if group_column else step)
    columns = ["time", "at_risk", "events", "survival", "ci_lower", "ci_upper"]
    result["columns"] = [group_column, *columns] if group_column else columns
    result["rows"] = rows
    summary["median"] = medians
    result["survival"] = summary

"""Local terms of a logistic regression's Newton steps, and the released table.

The design matrix is the one of :mod:`station.regression`: every numeric
column divided by its declared maximum absolute value, indicators for
``C(column)`` and condition terms, and a 0/1 response. At coefficients b (in
those scaled units), a station's rows contribute

* the Hessian of the negative log-likelihood, X'WX with W = diag(mu (1 - mu)),
  as its upper triangle row by row, and
* the gradient of the log-likelihood, X'(y - mu),

where mu = 1 / (1 + exp(-Xb)). Both are sums over rows, so the pooled ones
are the sums of the stations' ones. Every entry of X'WX is at most n / 4 and
every entry of X'(y - mu) at most n in absolute value, so the fixed-point
sizes of the linear regression hold here too.

Before the first step each station also contributes its counts for the
disclosure rules: n, the number of events (y = 1) and the sum of every
design column, which for an indicator is its number of ones.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb
from scipy import stats

from linksight.query import QuerySpec
from linksight.tasks import TaskSpec
from station.aggregates import MAX_ROWS_PER_STATION
from station.regression import DesignLayout, design_rows

# Newton's method stops once no coefficient (in the scaled units) moves by
# more than this, the default tolerance of statsmodels' Newton method.
STEP_TOLERANCE = 1e-8
# Newton's method converges in 4 to 8 steps on data that do not separate
# the outcome. A fit still moving after this many steps is blocked, because
# coefficients that keep growing mean that the terms separate the outcome.
# NOTE: a separated fit runs all 25 steps. At the 5 to 20 s per step seen on
# a loaded 2-core machine that exceeds the hub's default MPC deadline of
# 120 s, so the fit then ends with rule mpc_deadline instead of naming
# separation for sure. An earlier, sound test for separation would fix that.
MAX_ITERATIONS = 25
# Seconds between a party's start and the first Newton step (connecting,
# local counts, the disclosure checks) that the deadline check allows for.
DEADLINE_MARGIN_SECONDS = 10.0


def fixed_point_size(parties: int, rows: int = MAX_ROWS_PER_STATION) -> int:
    """Return the fractional bits f for secure fixed-point numbers of l = 2f bits.

    The Hessian's entries are at most N / 4 and the gradient's at most N,
    for the pooled row count N = parties * `rows`, `rows` being the bound on
    one station's rows (a vertical join passes its bound on the joined rows
    and 1 party). The integer
    part (f - 1 bits) leaves 34 bits above N for the entries of the inverse
    Hessian, and the fraction keeps entries of order 1 / N to about 34 bits
    (10 significant digits). That is far less than the linear regression's
    sizes, which must also hold y'y, and it matters here because every
    Newton step has its own elimination: one elimination of 4 parameters
    ran three times faster with l = 112 than with l = 176 (MPyC 0.11).
    """
    largest = float(parties * rows)
    fraction_bits = math.ceil(math.log2(largest + 1)) + 34
    return fraction_bits + (-fraction_bits) % 8


def count_sql(rows_sql: str, parameters: int) -> str:
    """Return SQL for n, the number of events and every design column's sum."""
    sums = ["count(*)", "coalesce(sum(y), 0)"]
    sums += [f"coalesce(sum(x{i}), 0)" for i in range(parameters)]
    return f"SELECT {', '.join(sums)} FROM ({rows_sql})"


def newton_sql(rows_sql: str, parameters: int) -> str:
    """Return SQL for X'WX (upper triangle) and X'(y - mu) at bound coefficients.

    The coefficients are bound after the design's own parameters: the SQL
    takes ``[*coefficients, *row_arguments]``.
    """
    eta = " + ".join(f"? * x{i}" for i in range(parameters))
    # Written so that exp never overflows: exp(-|eta|) is at most 1.
    mu = (
        "CASE WHEN eta >= 0 THEN 1.0 / (1.0 + exp(-eta)) "
        "ELSE exp(eta) / (1.0 + exp(eta)) END"
    )
    sums = []
    for i in range(parameters):
        for j in range(i, parameters):
            sums.append(f"coalesce(sum(mu * (1.0 - mu) * x{i} * x{j}), 0)")
    sums += [f"coalesce(sum((y - mu) * x{i}), 0)" for i in range(parameters)]
    columns = ", ".join(f"x{i}" for i in range(parameters))
    return (
        f"SELECT {', '.join(sums)} FROM (SELECT {columns}, y, {mu} AS mu FROM "
        f"(SELECT *, {eta} AS eta FROM ({rows_sql})))"
    )


def run_sql(sql: str, arguments: list[Any]) -> list[float]:
    """Run one aggregate query on this station's Parquet file."""
    with duckdb.connect(":memory:") as connection:
        row = connection.execute(sql, arguments).fetchone()
    if row is None:
        raise ValueError("the local logistic regression query returned no row")
    return [float(value) for value in row]


def newton_terms(config: dict[str, Any], coefficients: list[float]) -> list[float]:
    """Compute this station's X'WX and X'(y - mu) at `coefficients`."""
    arguments = [float(b) for b in coefficients] + list(config["row_arguments"])
    return run_sql(config["newton_sql"], arguments)


def party_input(
    task: TaskSpec,
    design: DesignLayout,
    rows: tuple[str, list[Any]],
    counts: list[float],
    mine: bool,
) -> dict[str, Any]:
    """Return what this station's MPC party needs for a logistic regression.

    `rows` is the SQL of :func:`station.regression.design_rows` with its
    arguments; the party runs :func:`newton_sql` on it at every step.
    """
    organisations = {party.organisation for party in task.parties}
    disclosure = task.disclosure
    rows_sql, row_arguments = rows
    p = design.parameters
    return {
        "analysis": "logit",
        "counts": counts,
        "own_n": counts[0] if mine else 0.0,
        "newton_sql": newton_sql(rows_sql, p),
        "row_arguments": row_arguments,
        "parameters": p,
        "names": design.names,
        "response": task.query.model.response_label if task.query.model else "",
        "factors": [
            {
                "term": factor.term,
                "reference": factor.reference,
                "levels": factor.levels,
                "design_columns": factor.design_columns,
            }
            for factor in design.factors
        ],
        "min_count": disclosure.min_count,
        "min_residual_df": disclosure.min_residual_df,
        "max_parameter_fraction": disclosure.max_parameter_fraction,
        "min_level_count": disclosure.min_level_count,
        "requester_contributes": task.requester_organisation in organisations,
        "fraction_bits": fixed_point_size(len(task.parties)),
        "step_tolerance": STEP_TOLERANCE,
        "max_iterations": MAX_ITERATIONS,
        "deadline_margin_seconds": DEADLINE_MARGIN_SECONDS,
    }


def coefficient_table(
    design: DesignLayout, scaled: list[float], variances: list[float]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Scale the opened coefficients back and add z, p-values and 95% intervals.

    As in statsmodels' Logit, z, the p-values and the intervals use the
    standard normal distribution.
    """
    quantile = float(stats.norm.ppf(0.975))
    columns = ["term", "coef", "std_err", "z", "p_value", "ci_lower", "ci_upper"]
    rows = []
    for name, value, variance, scale in zip(
        design.names, scaled, variances, design.scales, strict=True
    ):
        coefficient = value / scale
        # Rounding may leave a tiny negative variance; it is then taken as 0.
        std_err = math.sqrt(max(variance, 0.0)) / scale
        z_value = coefficient / std_err if std_err > 0 else math.inf
        rows.append(
            {
                "term": name,
                "coef": coefficient,
                "std_err": std_err,
                "z": z_value,
                "p_value": float(2 * stats.norm.sf(abs(z_value))),
                "ci_lower": coefficient - quantile * std_err,
                "ci_upper": coefficient + quantile * std_err,
            }
        )
    return columns, rows


def count_local(rows: tuple[str, list[Any]], parameters: int) -> list[float]:
    """Compute this station's n, number of events and design column sums."""
    rows_sql, arguments = rows
    return run_sql(count_sql(rows_sql, parameters), arguments)


def local_rows(
    spec: QuerySpec, design: DesignLayout, parquet_path: Path
) -> tuple[str, list[Any]]:
    """Return the design rows' SQL, checking first that the response is 0 or 1."""
    rows_sql, arguments = design_rows(spec, design, parquet_path)
    check = f"SELECT count(*) FROM ({rows_sql}) WHERE y NOT IN (0, 1)"
    (others,) = run_sql(check, arguments)
    if others:
        raise ValueError(
            f"the response of logit() takes values other than 0 and 1 in "
            f"{int(others)} row(s); write a condition as the response, as in "
            f"({design.response} > 0)"
        )
    return rows_sql, arguments

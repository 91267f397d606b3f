"""Local sufficient statistics for a linear regression, and the released table.

A station reduces its rows to the sufficient statistics of ordinary least
squares: the row count n, the cross-products X'X (upper triangle, row by
row), X'y and y'y, over the rows with no missing model column that pass the
filter. The design matrix X has an intercept, one column per numeric term
and one 0/1 indicator per level after the first of each ``C(column)`` term,
named as statsmodels names them (``Intercept``, ``age``, ``C(sex)[T.2]``),
and one 0/1 indicator per condition term, named as written
(``(cp == 'asymptomatic')``). A condition as the response, such as
``(num > 0)``, is a 0/1 response.

Every numeric column is divided by its declared maximum absolute value
before the products are formed, so that every entry of X and y lies in
[-1, 1] and every summed product is at most the pooled row count. That keeps
the fixed-point sizes independent of the columns' units and the linear
system well scaled. The scales are public, being part of the schema, so the
coefficients are scaled back after they are opened.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from scipy import stats

from linksight.query import QuerySpec
from linksight.schema import DatasetSchema
from linksight.signing import canonical_json
from linksight.tasks import TaskSpec
from station.aggregates import MAX_ROWS_PER_STATION, compile_filter


@dataclass(frozen=True)
class FactorLevels:
    """The design columns of one ``C(column)`` term, for the level-count rule."""

    term: str
    reference: str
    levels: list[str]
    design_columns: list[int]


@dataclass(frozen=True)
class DesignLayout:
    """The design matrix's columns, identical at every station."""

    names: list[str]
    # SQL expression of each design column, with its bound parameters.
    expressions: list[tuple[str, list[Any]]]
    # Public divisor of each design column and of the response.
    scales: list[float]
    response: str
    response_scale: float
    factors: list[FactorLevels]
    # SQL expression of the response, with its bound parameters.
    response_expression: tuple[str, list[Any]] = ("", [])

    @property
    def parameters(self) -> int:
        """The number of coefficients p, the intercept included."""
        return len(self.names)

    @property
    def width(self) -> int:
        """Slots of the local vector: n, X'X upper triangle, X'y, y'y."""
        p = self.parameters
        return 1 + p * (p + 1) // 2 + p + 1


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _scale(schema: DatasetSchema, column: str) -> float:
    declared = schema.column(column)
    if declared.min is None or declared.max is None or declared.max_abs == 0:
        raise ValueError(
            f"column {column!r} has no declared range (min {declared.min}, max "
            f"{declared.max}); a model needs both to size its secure numbers: "
            "declare min and max in the dataset's schema"
        )
    return float(declared.max_abs)


def _level_text(level: Any) -> str:
    if isinstance(level, float) and level.is_integer():
        return str(int(level))
    return str(level)


def build_design(spec: QuerySpec, schema: DatasetSchema) -> DesignLayout:
    """Lay out the design matrix of `spec`'s formula over `schema`."""
    if spec.model is None:
        raise ValueError(f"a {spec.kind} query has no model to lay out")
    names = ["Intercept"]
    expressions: list[tuple[str, list[Any]]] = [("1.0", [])]
    scales = [1.0]
    factors = []
    for term in spec.model.terms:
        column = _quote(term.column)
        if term.condition is not None:
            values: list[Any] = []
            condition = compile_filter(term.condition, values)
            names.append(term.label)
            expressions.append((f"CASE WHEN {condition} THEN 1.0 ELSE 0.0 END", values))
            scales.append(1.0)
            # A condition is a factor with the levels true and false (reference).
            factors.append(
                FactorLevels(
                    term=term.label,
                    reference="false",
                    levels=["true"],
                    design_columns=[len(names) - 1],
                )
            )
            continue
        if not term.categorical:
            names.append(term.column)
            expressions.append((f"CAST({column} AS DOUBLE)", []))
            scales.append(_scale(schema, term.column))
            continue
        levels = list(schema.column(term.column).levels or [])
        if len(levels) < 2:
            raise ValueError(
                f"column {term.column!r} declares {len(levels)} level(s); C() "
                "needs at least two: declare the levels in the dataset's schema"
            )
        first = len(names)
        for level in levels[1:]:
            names.append(f"C({term.column})[T.{_level_text(level)}]")
            expressions.append(
                (f"CASE WHEN {column} = ? THEN 1.0 ELSE 0.0 END", [level])
            )
            scales.append(1.0)
        factors.append(
            FactorLevels(
                term=term.label,
                reference=_level_text(levels[0]),
                levels=[_level_text(level) for level in levels[1:]],
                design_columns=list(range(first, len(names))),
            )
        )
    response = spec.model.response
    if spec.model.outcome is not None:
        values = []
        condition = compile_filter(spec.model.outcome, values)
        expression = (f"CASE WHEN {condition} THEN 1.0 ELSE 0.0 END", values)
        response_scale = 1.0
    else:
        response_scale = _scale(schema, response)
        expression = (f"CAST({_quote(response)} AS DOUBLE)", [])
    return DesignLayout(
        names, expressions, scales, response, response_scale, factors, expression
    )


def design_rows(
    spec: QuerySpec, design: DesignLayout, parquet_path: Path
) -> tuple[str, list[Any]]:
    """Return SQL that selects the scaled design x0, x1, ... and response y.

    The rows are those with no missing model column that pass the filter.
    The second item is the SQL's bound parameters.
    """
    if spec.model is None:
        raise ValueError(f"a {spec.kind} query has no model")
    columns = [spec.model.response] + [t.column for t in spec.model.terms]
    # The design's values come first in the SQL, then the path, then the filter's.
    design_values: list[Any] = []
    selects = []
    for (expression, values), scale in zip(
        design.expressions, design.scales, strict=True
    ):
        design_values.extend(values)
        selects.append(f"({expression}) / {scale!r}")
    response_sql, response_values = design.response_expression
    design_values.extend(response_values)
    inner = ", ".join(f"{s} AS x{i}" for i, s in enumerate(selects))
    inner += f", ({response_sql}) / {design.response_scale!r} AS y"
    filter_values: list[Any] = []
    conditions = [f"{_quote(c)} IS NOT NULL" for c in dict.fromkeys(columns)]
    if spec.where is not None:
        conditions.append(compile_filter(spec.where, filter_values))
    sql = f"SELECT {inner} FROM read_parquet(?) WHERE {' AND '.join(conditions)}"
    return sql, [*design_values, str(parquet_path), *filter_values]


def compute_local_statistics(
    spec: QuerySpec, design: DesignLayout, parquet_path: Path
) -> list[float]:
    """Compute this station's n, X'X, X'y and y'y from its Parquet file."""
    rows, arguments = design_rows(spec, design, parquet_path)
    p = design.parameters
    sums = ["count(*)"]
    for i in range(p):
        for j in range(i, p):
            sums.append(f"coalesce(sum(x{i} * x{j}), 0)")
    sums += [f"coalesce(sum(x{i} * y), 0)" for i in range(p)]
    sums.append("coalesce(sum(y * y), 0)")
    sql = f"SELECT {', '.join(sums)} FROM ({rows})"
    with duckdb.connect(":memory:") as connection:
        row = connection.execute(sql, arguments).fetchone()
    if row is None:
        raise ValueError("the local regression query returned no row")
    return [float(value) for value in row]


def fixed_point_size(parties: int) -> int:
    """Return the fractional bits f for secure fixed-point numbers of l = 2f bits.

    Every summed product is at most the pooled row count N = parties *
    MAX_ROWS_PER_STATION, because the design is scaled into [-1, 1]. The
    integer part (f - 1 bits, as MPyC's division needs l = 2f) leaves 64 bits
    above N for the entries of the inverse of X'X, which grow as X'X nears
    singularity, and the 64 fractional bits beyond N's bits keep entries of
    order 1/N exact to about 19 significant digits.
    """
    largest = float(parties * MAX_ROWS_PER_STATION)
    fraction_bits = math.ceil(math.log2(largest + 1)) + 66
    return fraction_bits + (-fraction_bits) % 8


def coefficient_table(
    design: DesignLayout, scaled: list[float], variances: list[float], n: int
) -> tuple[list[str], list[dict[str, Any]]]:
    """Scale the opened coefficients back and add t, p-values and 95% intervals.

    `scaled` and `variances` are the coefficients and their variances in the
    scaled units. As in statsmodels' OLS, t, p-values and the intervals use
    Student's t distribution with n - p degrees of freedom.
    """
    df_resid = n - design.parameters
    quantile = float(stats.t.ppf(0.975, df_resid))
    columns = ["term", "coef", "std_err", "t", "p_value", "ci_lower", "ci_upper"]
    rows = []
    for name, value, variance, scale in zip(
        design.names, scaled, variances, design.scales, strict=True
    ):
        factor = design.response_scale / scale
        coefficient = value * factor
        # Rounding may leave a tiny negative variance for an exact fit.
        std_err = math.sqrt(max(variance, 0.0)) * factor
        t_value = coefficient / std_err if std_err > 0 else math.inf
        p_value = float(2 * stats.t.sf(abs(t_value), df_resid))
        rows.append(
            {
                "term": name,
                "coef": coefficient,
                "std_err": std_err,
                "t": t_value,
                "p_value": p_value,
                "ci_lower": coefficient - quantile * std_err,
                "ci_upper": coefficient + quantile * std_err,
            }
        )
    return columns, rows


RULE_DESCRIPTIONS = {
    "min_count": "the model rests on fewer than {min_count} persons",
    "min_count_without_requester": (
        "the model rests on fewer than {min_count} persons outside the "
        "requester's own organisation"
    ),
    "min_residual_df": (
        "the residual degrees of freedom n - p are below {min_residual_df}"
    ),
    "max_parameter_fraction": (
        "the {parameters} parameters are more than {fraction:.0%} of n"
    ),
    "min_level_count": (
        "a level of a C() term, of a condition term or of a binary response "
        "has fewer than {min_level_count} persons"
    ),
    "full_rank": (
        "a design column is a linear combination of the others, so the "
        "coefficients are not unique"
    ),
    "converged": (
        "Newton's method did not converge after {iterations} step(s), because "
        "the coefficients kept growing or the Hessian became singular: perfect "
        "separation is likely, meaning that the terms predict the outcome "
        "without error for some persons"
    ),
    "mpc_deadline": (
        "Newton's method had not converged after {iterations} step(s) when the "
        "secure computation's deadline of {timeout:.0f} s came near, so the fit "
        "stopped. Coefficients that keep growing mean perfect separation"
    ),
}

RULE_FIXES = {
    "min_count": "widen the filter so that more persons are included",
    "min_count_without_requester": (
        "widen the filter so that more persons of other organisations are included"
    ),
    "min_residual_df": "widen the filter or remove terms from the formula",
    "max_parameter_fraction": "widen the filter or remove terms from the formula",
    "min_level_count": (
        "remove the C() term, or filter out its small levels with WHERE"
    ),
    "full_rank": "remove the redundant term from the formula",
    "converged": (
        "remove or coarsen the term that separates the outcome, or widen the "
        "filter so that it includes persons with the other outcome"
    ),
    "mpc_deadline": (
        "ask the hub operator to raise task_timeout_seconds, or remove the term "
        "that separates the outcome"
    ),
}


def party_input(
    task: TaskSpec, design: DesignLayout, vector: list[float], mine: bool
) -> dict[str, Any]:
    """Return what this station's MPC party needs for `task`."""
    organisations = {party.organisation for party in task.parties}
    disclosure = task.disclosure
    return {
        "analysis": "ols",
        "vector": vector,
        "own_n": vector[0] if mine else 0.0,
        "parameters": design.parameters,
        "names": design.names,
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
    }


def build_model_result(
    task: TaskSpec, design: DesignLayout, output: dict[str, Any]
) -> dict[str, Any]:
    """Return the result document of a regression: the coefficient table or a block."""
    checks = [
        {
            "rule": check["rule"],
            "statistic": check["term"],
            "cell": {} if check["level"] is None else {"level": check["level"]},
            "passed": check["passed"],
        }
        for check in output["checks"]
    ]
    model = task.query.model
    result: dict[str, Any] = {
        "query": task.query_text,
        "kind": task.query.kind,
        "group_by": [],
        "min_count": task.disclosure.min_count,
        "checks": checks,
        "stations": [p.station for p in task.parties],
        "model": {"formula": model.formula if model else "", "n": None},
    }
    failed = [c for c in checks if not c["passed"]]
    if failed:
        result["status"] = "blocked"
        result["columns"] = []
        result["rows"] = []
        iterations = output.get("iterations")
        if iterations is not None:
            result["model"].update(iterations=iterations, converged=False)
        result["blocked"] = _blocked_summary(task, design, failed, iterations)
    else:
        values = output["values"]
        n = values["n"]
        result["status"] = "released"
        result["blocked"] = None
        result["model"].update(n=n, df_resid=n - design.parameters)
        if task.query.kind == "logit":
            # Imported here because station.logistic builds on this module.
            from station.logistic import coefficient_table as logit_table

            result["model"].update(iterations=values["iterations"], converged=True)
            result["columns"], result["rows"] = logit_table(
                design, values["coefficients"], values["variances"]
            )
        else:
            result["columns"], result["rows"] = coefficient_table(
                design, values["coefficients"], values["variances"], n
            )
    result["sha256"] = hashlib.sha256(canonical_json(result)).hexdigest()
    return result


def _blocked_summary(
    task: TaskSpec,
    design: DesignLayout,
    failed: list[dict[str, Any]],
    iterations: int | None = None,
) -> dict[str, Any]:
    rule = failed[0]["rule"]
    disclosure = task.disclosure
    reason = RULE_DESCRIPTIONS.get(rule, rule).format(
        min_count=disclosure.min_count,
        min_residual_df=disclosure.min_residual_df,
        parameters=design.parameters,
        fraction=disclosure.max_parameter_fraction,
        min_level_count=disclosure.min_level_count,
        iterations=iterations,
        timeout=task.mpc_timeout_seconds,
    )
    where = []
    for check in failed:
        level = check["cell"].get("level")
        label = check["statistic"] if level is None else f"{check['statistic']}={level}"
        if label != "model":
            where.append(f"{check['rule']} at {label}")
    detail = f" ({'; '.join(where)})" if where else ""
    if rule in ("converged", "mpc_deadline"):
        growing = [check["statistic"] for check in failed]
        detail = f" (still growing: {', '.join(growing)})"
    message = (
        f"blocked by disclosure control, rule {rule}: {reason}{detail}. To "
        f"release the model, {RULE_FIXES.get(rule, 'change the query')}."
    )
    return {"rule": rule, "message": message, "failed": len(failed)}

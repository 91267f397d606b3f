"""Fit a logistic regression on the secret-shared rows of a vertical join.

The rows arrive aligned and secret-shared as :mod:`station.secure_join`
leaves them. The row weight is 1 on rows that pass the filter and have
every model column, and 0 elsewhere. The design D has the row weight as
its intercept column and the weighted terms as its other columns, so a
row left out is a row of zeros and adds nothing to any sum. The response y
is the weighted 0/1 response column.

Newton's method runs as for horizontal data (:func:`station.secure_logistic.
newton_fit`), and only the source of the Hessian and gradient differs. No
party sees a row in the clear, so every row's linear predictor and probability stay
secret:

1. Once: the counts of the disclosure rules (n, events, every column's
   ones) are secret sums, and so are the products D_i D_j of every pair of
   design columns, row by row.
2. At b = 0 every probability is 1/2, so X'WX = D'D / 4 and X'(y - mu) =
   D'y - (column sums) / 2 need no logistic function.
3. At the opened b of a later step: t = D (b / ln 2) on the shares, the
   probability mu = 1 / (1 + 2^-t) by :func:`station.secure_sigmoid.sigmoid2`
   with the public bound sum |b_j| / ln 2 on |t| (every |D_ij| <= 1), and
   W = mu (1 - mu). Then X'WX is W times the pair products and X'(y - mu)
   is (y - mu) times D, two secure matrix products.

Who learns what: as for the horizontal fit, every party learns the opened
rule bits, each step's coefficients and the number of steps; the scientist
gets the released fit. No row's predictor, probability or weight, and no
pooled Hessian, gradient or count, is opened. Every party also knows the
joined n and the padded row counts from the join itself.

Cost: each step after the first evaluates the logistic function on every
joined row: one comparison, one bit decomposition and about 14 secure
products with a truncation of f bits each (see :mod:`station.secure_sigmoid`).
This dominates for more than a few hundred rows.

NOTE: at the 0.1 to 0.15 s per joined row and step measured on a loaded
2-core machine, a fit on more than about 400 rows outlasts the hub's
default MPC deadline of 290 s and ends with rule mpc_deadline. Cheaper
truncations, or a smaller fixed-point type for the per-row work, would
raise that limit.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from mpyc.runtime import mpc

from station.secure_join import (
    JoinRun,
    _complement_check,
    _value_scales,
    model_rows,
)
from station.secure_logistic import PooledCounts, newton_fit
from station.secure_sigmoid import sigmoid2

__all__ = ["fit_logistic_and_release"]

logger = logging.getLogger("linksight.station.mpc")


def _pair_products(parts: list[Any]) -> Any:
    """Return the n x p(p+1)/2 row products of every pair of columns, i <= j.

    Each product keeps its factors' integral flags, so the product of two
    0/1 columns needs no truncation.
    """
    products = [
        parts[i] * parts[j] for i in range(len(parts)) for j in range(i, len(parts))
    ]
    stacked = mpc.np_column_stack(products)
    stacked.integral = False
    return stacked


async def fit_logistic_and_release(
    run: JoinRun, aligned: dict[int, Any], joined: int, started: float
) -> dict[str, Any]:
    """Fit the model of ``config["logit"]`` on the joined rows; open what passes.

    `started` is the protocol's start (time.monotonic), from which the MPC
    deadline check counts. Returns the output of
    :func:`station.secure_logistic.newton_fit` with the coefficients and
    variances scaled back to the columns' units, the design ``names`` and,
    when released, the ``joined`` n.
    """
    model = run.config["logit"]
    logger.info(
        "logistic fit on %d joined rows: %d parameters, f = %d",
        joined,
        len(model["terms"]) + 1,
        run.secfxp.frac_length,
    )
    rows = await model_rows(run, aligned, joined, model)
    if rows.blocked is not None:
        return rows.blocked
    columns, weight, varies, names = rows.columns, rows.weight, rows.varies, rows.names

    parts = [weight]
    for name in model["terms"]:
        parts.append(weight * columns[name] if varies else columns[name])
    response = columns[model["response"]]
    if varies:
        response = weight * response
    design = mpc.np_column_stack(parts)
    design.integral = False

    column_sums = mpc.np_sum(design, axis=0)
    counts = PooledCounts(
        n=mpc.np_sum(weight),
        events=mpc.np_sum(response),
        column_sums=mpc.np_tolist(column_sums),
    )
    pairs = _pair_products(parts)
    # At b = 0 every probability is 1/2 and every weight 1/4.
    triangle = mpc.np_sum(pairs, axis=0) * 0.25
    gradient = response @ design - column_sums * 0.5
    terms = mpc.np_tolist(triangle) + mpc.np_tolist(gradient)

    async def next_terms(coefficients: list[float]) -> list[Any]:
        scaled = np.array(coefficients) / math.log(2)
        t = design @ scaled
        # Every |D_ij| <= 1, so |t| <= sum |b_j| / ln 2; 1 covers rounding.
        bound = float(np.abs(scaled).sum()) + 1.0
        mu = sigmoid2(t, bound)
        weights = mu * (1 - mu)
        triangle = weights @ pairs
        gradient = (response - mu) @ design
        return mpc.np_tolist(triangle) + mpc.np_tolist(gradient)

    settings = dict(
        model,
        names=names,
        min_count=run.min_count,
        fraction_bits=run.secfxp.frac_length,
        timeout_seconds=run.config.get("timeout_seconds", math.inf),
    )
    fit = await newton_fit(run.secfxp, settings, counts, terms, next_terms, started)
    checks = [_complement_check(True)] if varies else []
    output: dict[str, Any] = {
        "checks": checks + fit["checks"],
        "names": names,
        "iterations": fit.get("iterations"),
    }
    failed = [check for check in fit["checks"] if not check["passed"]]
    if failed:
        output.update(status="blocked", rule=failed[0]["rule"], values=None)
        return output

    # The response is 0/1, so only the terms' scales change the coefficients.
    scales = _value_scales(run)
    factors = [1.0 / scales.get(name, 1.0) for name in names]
    values = fit["values"]
    coefficients = [b * f for b, f in zip(values["coefficients"], factors, strict=True)]
    variances = [v * f * f for v, f in zip(values["variances"], factors, strict=True)]
    output.update(
        status="released",
        rule=None,
        joined=joined,
        values={
            "coefficients": coefficients,
            "variances": variances,
            "n": values["n"],
            "iterations": values["iterations"],
        },
    )
    return output

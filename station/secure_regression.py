"""Fit a linear regression on the stations' pooled sufficient statistics under MPC.

Protocol (MPyC, Shamir secret sharing, honest majority, every station a
party, at least three parties):

1. Each party secret-shares its vector n, X'X (upper triangle), X'y, y'y
   (see ``station.regression``), and its own n if it belongs to the
   requesting scientist's organisation (zero otherwise).
2. The parties add the vectors. Nobody learns another's vector or the
   pooled sums.
3. Gauss-Jordan elimination on [X'X | I | X'y], with no pivoting because
   X'X is symmetric positive semi-definite, gives (X'X)^-1 and the
   coefficients b. Then s^2 = (y'y - b'X'y) / (n - p), and each
   coefficient's variance is s^2 times the diagonal of (X'X)^-1. All of it
   stays secret.
4. The parties compute secret bits for the disclosure rules and open only
   the bits: n >= min_count; n minus the requester's own rows >= min_count
   when the requester's organisation contributes; residual degrees of
   freedom n - p >= min_residual_df; p <= max_parameter_fraction * n; every
   level of every ``C(column)`` term, the reference level included, on at
   least min_level_count rows; and every pivot of the elimination above 1e-9
   times its diagonal entry, meaning no design column is (nearly) a linear
   combination of the others.
5. If every bit passes, the coefficients, their variances and n are opened;
   otherwise nothing else is.

Threat model: semi-honest parties, no coalition of more than
floor((m - 1) / 2) of the m parties. Every party learns the opened bits and,
when released, the coefficients, their variances and n. The scaled X'X, X'y,
y'y and s^2 are never opened.
"""

from __future__ import annotations

import math
from typing import Any

from mpyc.runtime import mpc

from station.mpc_numbers import clear_integral

# A pivot at or below this fraction of its diagonal entry means the design
# column is a linear combination of the columns before it, to within the
# rounding of the fixed-point numbers: the coefficients are then not unique.
RANK_TOLERANCE = 1e-9


def _scale_row(factor: Any, row: list[Any]) -> list[Any]:
    # NB: MPyC 0.11's mpc.scalar_mul and mpc.in_prod return garbage for a
    # negative product above about 2^28 in magnitude when l = 2f (measured
    # with SecFxp(208, 104)), while the * operator is exact there.
    return [factor * value for value in row]


def gauss_jordan(matrix: list[list[Any]]) -> list[Any]:
    """Reduce `matrix` (p rows of secure numbers) in place and return its pivots."""
    pivots = []
    for k in range(len(matrix)):
        pivot = matrix[k][k]
        pivots.append(pivot)
        row = _scale_row(1 / pivot, matrix[k])
        for i in range(len(matrix)):
            if i != k:
                matrix[i] = mpc.vector_sub(matrix[i], _scale_row(matrix[i][k], row))
        matrix[k] = row
    return pivots


async def fit_and_release(config: dict[str, Any]) -> dict[str, Any]:
    """Run the protocol above; every party calls this with its own input.

    `config` holds ``vector``, ``own_n``, ``parameters`` (p), ``names`` (of
    the design columns), ``factors``
    (per ``C(column)`` term: its label and the design columns of its
    indicators), ``min_count``, ``requester_contributes``,
    ``min_residual_df``, ``max_parameter_fraction``, ``fraction_bits`` and
    ``min_level_count`` (``min_count`` when missing).
    Returns ``{"checks": [...], "values": ... or None}``, each check being
    ``{"rule": name, "term": label, "level": text or None, "passed": bool}``.
    """
    fraction_bits = config["fraction_bits"]
    secfxp = mpc.SecFxp(2 * fraction_bits, fraction_bits)
    shared = mpc.input([secfxp(float(value)) for value in config["vector"]])
    for party in shared:
        clear_integral(party)
    pooled = [mpc.sum(list(column)) for column in zip(*shared, strict=True)]
    own = None
    if config["requester_contributes"]:
        own_shared = mpc.input([secfxp(float(config["own_n"]))])
        own = mpc.sum([clear_integral(party)[0] for party in own_shared])
    return await solve_and_release(secfxp, pooled, own, config)


async def solve_and_release(
    secfxp: Any, pooled: list[Any], own: Any, config: dict[str, Any]
) -> dict[str, Any]:
    """Run steps 3 to 5 above on the pooled vector, secure numbers of `secfxp`.

    `pooled` is laid out as each party's vector, and `own` is the
    requester's own n, or None when the requester contributes no rows.
    Returns what :func:`fit_and_release` returns.
    """
    p = config["parameters"]
    min_count = config["min_count"]
    # NOTE: the vertical join's configs carry no min_level_count yet, so its
    # models check levels against min_count.
    min_level_count = config.get("min_level_count", min_count)
    n = pooled[0]
    triangle = pooled[1 : 1 + p * (p + 1) // 2]
    cross = pooled[1 + p * (p + 1) // 2 : 1 + p * (p + 1) // 2 + p]
    response_squares = pooled[-1]
    gram: list[list[Any]] = [[None] * p for _ in range(p)]
    position = 0
    for i in range(p):
        for j in range(i, p):
            gram[i][j] = gram[j][i] = triangle[position]
            position += 1

    check_bits = []
    checks: list[dict[str, Any]] = []

    def check(bit: Any, rule: str, term: str = "model", level: str | None = None):
        check_bits.append(bit)
        checks.append({"rule": rule, "term": term, "level": level})

    check(n >= min_count, "min_count")
    if own is not None:
        check(n - own >= min_count, "min_count_without_requester")
    check(n >= p + config["min_residual_df"], "min_residual_df")
    # p <= fraction * n, with the public bound rounded up to a whole row.
    needed = math.ceil(p / config["max_parameter_fraction"] - 1e-9)
    check(n >= needed, "max_parameter_fraction")
    for factor in config["factors"]:
        # X'X's first row holds the intercept times each column: for an
        # indicator, the number of rows at that level.
        level_counts = [gram[0][column] for column in factor["design_columns"]]
        for level, count in zip(factor["levels"], level_counts, strict=True):
            check(count >= min_level_count, "min_level_count", factor["term"], level)
        reference = n - mpc.sum(level_counts)
        check(
            reference >= min_level_count,
            "min_level_count",
            factor["term"],
            factor["reference"],
        )

    zero, one = secfxp(0), secfxp(1)
    augmented = [
        gram[i] + [one if i == j else zero for j in range(p)] + [cross[i]]
        for i in range(p)
    ]
    pivots = gauss_jordan(augmented)
    for name, pivot, k in zip(config["names"], pivots, range(p), strict=True):
        check(pivot > RANK_TOLERANCE * gram[k][k], "full_rank", name)

    opened = await mpc.output(check_bits)
    for entry, bit in zip(checks, opened, strict=True):
        entry["passed"] = bool(round(float(bit)))
    if not all(entry["passed"] for entry in checks):
        return {"checks": checks, "values": None}

    coefficients = [augmented[i][2 * p] for i in range(p)]
    fitted = mpc.sum([b * c for b, c in zip(coefficients, cross, strict=True)])
    residual = response_squares - fitted
    scale = residual / (n - p)
    variances = [scale * augmented[i][p + i] for i in range(p)]
    values = await mpc.output(coefficients + variances + [n])
    return {
        "checks": checks,
        "values": {
            "coefficients": [float(v) for v in values[:p]],
            "variances": [float(v) for v in values[p : 2 * p]],
            "n": int(round(float(values[-1]))),
        },
    }

"""Fit a logistic regression by Newton's method, the steps solved under MPC.

Protocol (MPyC, Shamir secret sharing, honest majority, every station a
party, at least three parties). The coefficients b start at 0.

1. Each party secret-shares its counts for the disclosure rules (n, events,
   every design column's sum; see ``station.logistic``), its own n if it
   belongs to the requesting scientist's organisation (zero otherwise), and
   its Hessian X'WX and gradient X'(y - mu) at b = 0. The parties add them.
2. Gauss-Jordan elimination on [X'WX | I | X'(y - mu)] gives the Newton step
   and the inverse of X'WX, all secret. The parties compute secret bits for
   the rules of the linear regression (``station.secure_regression``), for
   the response (events and non-events each >= min_level_count) and for
   every condition term (ones and zeros each >= min_level_count), and open
   only the bits. If one fails, nothing else is opened.
3. The step is opened to the parties, who add it to b. If some coefficient
   moved by more than the step tolerance, each party computes its Hessian
   and gradient at the new b from its own rows, secret-shares them, and the
   parties solve the next step as in 2, without the rule bits.
   From the second step on, the parties also open one bit per step: whether
   every pivot of the elimination exceeds 2^-(f/2). Before each further
   step they open how many parties lack the time for two more steps before
   their MPC deadline. If any do, the fit stops, blocked with rule
   ``mpc_deadline``, instead of timing out.
4. Once no coefficient moves by more than the tolerance, the diagonal of the
   last inverse (the coefficients' variances) and n are opened. A fit still
   moving after the maximum number of steps, or whose pivot bit fails, is
   blocked with rule ``converged``, naming the terms whose coefficients
   were still growing: coefficients that keep growing mean that the terms
   separate the outcome.

Threat model: semi-honest parties, no coalition of more than
floor((m - 1) / 2) of the m parties. Every party learns the opened bits, the
coefficients after every step (b_1, b_2, ..., the last being the released
fit), the number of steps and, when released, the variances and n. The
pooled counts, Hessians and gradients are never opened. The scientist
receives only the released fit and the number of steps, or for a blocked
fit the failed rule, the number of steps and the names of growing terms.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mpyc.runtime import mpc

from station.logistic import newton_terms
from station.mpc_numbers import clear_integral
from station.secure_regression import RANK_TOLERANCE, gauss_jordan

logger = logging.getLogger("linksight.station.mpc")


def _pool(values: list[float], secfxp: Any) -> list[Any]:
    """Secret-share every party's `values` and return their sums."""
    shared = mpc.input([secfxp(float(value)) for value in values])
    for party in shared:
        clear_integral(party)
    return [mpc.sum(list(column)) for column in zip(*shared, strict=True)]


def _newton_system(terms: list[Any], p: int, secfxp: Any) -> list[list[Any]]:
    """Return [X'WX | I | X'(y - mu)] from the pooled triangle and gradient."""
    triangle = terms[: p * (p + 1) // 2]
    gradient = terms[p * (p + 1) // 2 :]
    hessian: list[list[Any]] = [[None] * p for _ in range(p)]
    position = 0
    for i in range(p):
        for j in range(i, p):
            hessian[i][j] = hessian[j][i] = triangle[position]
            position += 1
    zero, one = secfxp(0), secfxp(1)
    return [
        hessian[i] + [one if i == j else zero for j in range(p)] + [gradient[i]]
        for i in range(p)
    ]


def growing_terms(names: list[str], step: list[float]) -> list[str]:
    """Return the terms whose coefficients moved most in the last Newton step.

    Those are the terms whose change is at least a tenth of the largest
    change, the intercept left out unless it is the only one. When the terms
    separate the outcome, their coefficients grow without bound.
    """
    largest = max(abs(change) for change in step)
    moving = [
        name
        for name, change in zip(names, step, strict=True)
        if abs(change) >= 0.1 * largest
    ]
    return [name for name in moving if name != "Intercept"] or moving


def _not_converged(
    checks: list[dict[str, Any]],
    names: list[str],
    step: list[float],
    iterations: int,
    rule: str = "converged",
) -> dict[str, Any]:
    """Return a blocked output with one failed `rule` check per growing term."""
    for name in growing_terms(names, step):
        checks.append({"rule": rule, "term": name, "level": None, "passed": False})
    return {"checks": checks, "values": None, "iterations": iterations}


def _short_of_time(config: dict[str, Any], started: float, iterations: int) -> bool:
    """Return whether this party's deadline leaves too little time for two more steps.

    The deadline counts from the party's start, a little before `started`
    (the start of the fit), and ``deadline_margin_seconds`` covers that gap.
    The first step's time includes the disclosure checks, so the estimate
    of a step's time errs on the long side.
    """
    elapsed = time.monotonic() - started
    remaining = float(config.get("timeout_seconds", math.inf)) - elapsed
    margin = float(config.get("deadline_margin_seconds", 0.0))
    return remaining < 2 * elapsed / iterations + margin


async def fit_and_release(config: dict[str, Any]) -> dict[str, Any]:
    """Run the protocol above; every party calls this with its own input.

    `config` is the output of :func:`station.logistic.party_input`. Returns
    ``{"checks": [...], "values": ... or None}`` as
    :func:`station.secure_regression.fit_and_release` does, with the number
    of Newton steps in ``values["iterations"]``.
    """
    started = time.monotonic()
    fraction_bits = config["fraction_bits"]
    secfxp = mpc.SecFxp(2 * fraction_bits, fraction_bits)
    p = config["parameters"]

    first = [*config["counts"], config["own_n"], *newton_terms(config, [0.0] * p)]
    pooled = _pool(first, secfxp)
    counts = PooledCounts(
        n=pooled[0],
        events=pooled[1],
        column_sums=pooled[2 : 2 + p],
        own=pooled[2 + p] if config["requester_contributes"] else None,
    )

    async def next_terms(coefficients: list[float]) -> list[Any]:
        return _pool(newton_terms(config, coefficients), secfxp)

    return await newton_fit(
        secfxp, config, counts, pooled[3 + p :], next_terms, started
    )


@dataclass
class PooledCounts:
    """The secret pooled counts that the disclosure rules of a logistic fit check.

    ``column_sums`` contains every design column's sum, the intercept's first.
    ``own`` is the requester's organisation's n, or None when it has no rows.
    """

    n: Any
    events: Any
    column_sums: list[Any]
    own: Any = None


def _rule_bits(
    settings: dict[str, Any], counts: PooledCounts, p: int
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Return the secret bits of the count rules and their check entries."""
    check_bits: list[Any] = []
    checks: list[dict[str, Any]] = []

    def check(bit: Any, rule: str, term: str = "model", level: str | None = None):
        check_bits.append(bit)
        checks.append({"rule": rule, "term": term, "level": level})

    min_count = settings["min_count"]
    min_level_count = settings["min_level_count"]
    n = counts.n
    check(n >= min_count, "min_count")
    if counts.own is not None:
        check(n - counts.own >= min_count, "min_count_without_requester")
    check(n >= p + settings["min_residual_df"], "min_residual_df")
    # p <= fraction * n, with the public bound rounded up to a whole row.
    needed = math.ceil(p / settings["max_parameter_fraction"] - 1e-9)
    check(n >= needed, "max_parameter_fraction")
    response = settings["response"]
    check(counts.events >= min_level_count, "min_level_count", response, "1")
    check(n - counts.events >= min_level_count, "min_level_count", response, "0")
    for factor in settings["factors"]:
        level_counts = [counts.column_sums[c] for c in factor["design_columns"]]
        for level, count in zip(factor["levels"], level_counts, strict=True):
            check(count >= min_level_count, "min_level_count", factor["term"], level)
        reference = n - mpc.sum(level_counts)
        check(
            reference >= min_level_count,
            "min_level_count",
            factor["term"],
            factor["reference"],
        )
    return check_bits, checks


async def newton_fit(
    secfxp: Any,
    settings: dict[str, Any],
    counts: PooledCounts,
    terms: list[Any],
    next_terms: Callable[[list[float]], Awaitable[list[Any]]],
    started: float,
) -> dict[str, Any]:
    """Check the rules, then take Newton steps until b settles; open what passes.

    `terms` are the pooled X'WX (upper triangle) and X'(y - mu) at b = 0,
    and `next_terms` returns them, secret, at the opened coefficients. Both
    the horizontal fit above and the fit on joined rows
    (:mod:`station.secure_join_logistic`) drive their steps through here.
    `settings` contains the rules' thresholds, ``names``, ``response``,
    ``factors``, ``fraction_bits``, ``step_tolerance``, ``max_iterations``
    and the deadline's ``timeout_seconds`` and ``deadline_margin_seconds``.
    """
    fraction_bits = settings["fraction_bits"]
    names = settings["names"]
    p = len(names)
    coefficients = [0.0] * p
    augmented = _newton_system(terms, p, secfxp)
    diagonal = [augmented[k][k] for k in range(p)]

    check_bits, checks = _rule_bits(settings, counts, p)
    pivots = gauss_jordan(augmented)
    for name, pivot, entry in zip(names, pivots, diagonal, strict=True):
        check_bits.append(pivot > RANK_TOLERANCE * entry)
        checks.append({"rule": "full_rank", "term": name, "level": None})

    opened = await mpc.output(check_bits)
    for entry, bit in zip(checks, opened, strict=True):
        entry["passed"] = bool(round(float(bit)))
    if not all(entry["passed"] for entry in checks):
        return {"checks": checks, "values": None}

    # A pivot below 2^-(f/2) keeps fewer than f/2 significant bits, and its
    # reciprocal comes close to the integer part's bound.
    smallest_pivot = secfxp(2.0 ** -(fraction_bits // 2))
    iterations = 0
    while True:
        step = [float(v) for v in await mpc.output([row[2 * p] for row in augmented])]
        coefficients = [b + d for b, d in zip(coefficients, step, strict=True)]
        iterations += 1
        largest = max(abs(d) for d in step)
        logger.info("Newton step %d: largest change %.3g", iterations, largest)
        if largest <= settings["step_tolerance"]:
            break
        if iterations >= settings["max_iterations"]:
            return _not_converged(checks, names, step, iterations)
        # Every party inputs whether its deadline allows two more steps, so
        # that all of them stop at the same step instead of timing out.
        short = 1.0 if _short_of_time(settings, started, iterations) else 0.0
        (short_parties,) = _pool([short], secfxp)
        if round(float(await mpc.output(short_parties))):
            logger.info("Newton step %d: stopped before the deadline", iterations)
            return _not_converged(checks, names, step, iterations, "mpc_deadline")
        augmented = _newton_system(await next_terms(coefficients), p, secfxp)
        pivots = gauss_jordan(augmented)
        regular = mpc.all([pivot > smallest_pivot for pivot in pivots])
        if not round(float(await mpc.output(regular))):
            logger.info("Newton step %d: the Hessian is singular", iterations + 1)
            return _not_converged(checks, names, step, iterations)

    checks.append({"rule": "converged", "term": "model", "level": None, "passed": True})
    values = await mpc.output([augmented[i][p + i] for i in range(p)] + [counts.n])
    return {
        "checks": checks,
        "values": {
            "coefficients": coefficients,
            "variances": [float(v) for v in values[:p]],
            "n": int(round(float(values[-1]))),
            "iterations": iterations,
        },
    }

"""Pool the stations' aggregate vectors under MPC and release checked statistics.

Protocol (MPyC, Shamir secret sharing, honest majority, every station a
party, at least three parties):

1. Each party secret-shares its aggregate vector (counts, sums and sums of
   squares per cell) and, if it belongs to the requesting scientist's
   organisation, the same vector again as "own part"; other parties share
   zeros there.
2. The parties add the vectors slot by slot. No party learns another's vector
   or the pooled sums.
3. For every figure to be released, the parties compute secret bits: pooled
   n >= min_count and, when the requester's organisation contributes data,
   pooled n minus its own part >= min_count. Only these pass/fail bits are
   opened. The differencing check (pairs of populations) and the
   overlapping-filters check (triples, `station.secure_filter_triples`)
   each open pass/fail bits too.
   For a sum, mean or variance, each party also shares, per cell and
   column, the sum of absolute values and its largest few absolute values.
   The parties compare candidate sums of the largest contributions with
   the total and open only the bits of the dominance (n, k) rule (the n
   largest make up at most k of the total) and of the p% rule (the total
   less the two largest is at least p of the largest). No party learns
   another's largest value.
4. If every bit passes, the parties compute the statistics (count, sum,
   mean = sum / n, sample variance = (sum of squares - sum * mean) / (n - 1))
   inside MPC and open them, with their n. Otherwise nothing but the bits is
   opened and the output is blocked.

Threat model: semi-honest parties, no coalition of more than
floor((m - 1) / 2) of the m parties. What every party learns is the opened
bits and, when released, the statistics and their n.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from mpyc.runtime import mpc

from station.mpc_numbers import clear_integral
from station.secure_filter_triples import overlapping_filters_pass

# Bits of the secure integers that carry person counts in the differencing
# check: pooled counts stay below parties * 2**32 rows.
COUNT_BITS = 48
# Fractional bits of the secure numbers in the dominance and p% checks; the
# settings k and p are rounded to multiples of 2**-16.
DOMINANCE_FRACTION_BITS = 16


@dataclass(frozen=True)
class SecureOutput:
    """A statistic to release, as slots of the pooled vector."""

    label: str
    func: str
    cell: int
    n_slot: int
    sum_slot: int | None
    square_slot: int | None


async def pool_and_release(
    vector: list[float],
    own_vector: list[float],
    outputs: list[SecureOutput],
    min_count: int,
    requester_contributes: bool,
    fraction_bits: int,
    differences: list[dict[str, Any]] | None = None,
    dominance: dict[str, Any] | None = None,
    overlapping_filters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the protocol above; every party calls this with its own vectors.

    Returns ``{"checks": [...], "values": [...] or None}`` where each check
    is ``{"output": index, "rule": name, "passed": bool}`` and values, when
    released, are ``{"value": float, "n": int}`` per output.
    """
    secfxp = mpc.SecFxp(2 * fraction_bits, fraction_bits)
    width = len(vector)
    my_inputs = [secfxp(v) for v in vector]
    shared = mpc.input(my_inputs)
    for party in shared:
        clear_integral(party)
    pooled = [mpc.sum([party[i] for party in shared]) for i in range(width)]

    own_pooled = None
    if requester_contributes:
        own_shared = mpc.input([secfxp(v) for v in own_vector])
        for party in own_shared:
            clear_integral(party)
        own_pooled = [mpc.sum([party[i] for party in own_shared]) for i in range(width)]

    check_bits = []
    checks: list[dict[str, Any]] = []
    for index, output in enumerate(outputs):
        n = pooled[output.n_slot]
        check_bits.append(n >= min_count)
        checks.append({"output": index, "rule": "min_count"})
        if own_pooled is not None:
            check_bits.append(n - own_pooled[output.n_slot] >= min_count)
            checks.append({"output": index, "rule": "min_count_without_requester"})
        if output.func == "var":
            # n - 1 divides the sum of squares: also needed when min_count is 1.
            check_bits.append(n >= 2)
            checks.append({"output": index, "rule": "variance_needs_two"})
    # The dominance bits are of another secure type, so they are opened apart.
    dominance_bits: list[Any] = []
    dominance_checks: list[dict[str, Any]] = []
    if dominance:
        _check_dominance(dominance, dominance_bits, dominance_checks)
    # Differencing: the pooled count of rows in exactly one of this query's
    # and an earlier query's populations must be 0 or at least min_count.
    # Counts are whole numbers below 2**47, and comparing them as 48-bit
    # secure integers costs far less than at the fixed-point size of sums.
    differences = differences or []
    difference_bits = []
    difference_checks: list[dict[str, Any]] = []
    if differences:
        secint = mpc.SecInt(COUNT_BITS)
        shared_counts = mpc.input([secint(round(d["count"])) for d in differences])
        for index, difference in enumerate(differences):
            pooled_count = mpc.sum([party[index] for party in shared_counts])
            isolating = (pooled_count >= 1) * (pooled_count < min_count)
            difference_bits.append(1 - isolating)
            difference_checks.append(
                {
                    "output": None,
                    "rule": "differencing",
                    "request_id": difference["request_id"],
                    "column": difference["column"],
                }
            )
    opened = await mpc.output(check_bits)
    for check, bit in zip(checks, opened, strict=True):
        check["passed"] = bool(round(float(bit)))
    if dominance_bits:
        opened_dominance = await mpc.output(dominance_bits)
        for check, bit in zip(dominance_checks, opened_dominance, strict=True):
            check["passed"] = bool(round(float(bit)))
        checks.extend(dominance_checks)
    if difference_bits:
        opened_differences = await mpc.output(difference_bits)
        for check, bit in zip(difference_checks, opened_differences, strict=True):
            check["passed"] = bool(int(bit))
        checks.extend(difference_checks)
    if overlapping_filters and overlapping_filters["triples"]:
        passed = await overlapping_filters_pass(
            overlapping_filters["counts"],
            overlapping_filters["triples"],
            min_count,
            COUNT_BITS,
        )
        checks.append(
            {
                "output": None,
                "rule": "overlapping_filters",
                "request_ids": overlapping_filters["request_ids"],
                "passed": passed,
            }
        )
    if not all(check["passed"] for check in checks):
        return {"checks": checks, "values": None}

    secret_values = []
    for output in outputs:
        n = pooled[output.n_slot]
        if output.func == "count":
            secret_values.append(n)
            continue
        total = pooled[output.sum_slot]
        if output.func == "sum":
            secret_values.append(total)
        elif output.func == "mean":
            secret_values.append(total / n)
        elif output.func == "var":
            squares = pooled[output.square_slot]
            mean = total / n
            secret_values.append((squares - total * mean) / (n - 1))
        else:
            raise ValueError(f"unknown statistic {output.func!r}")
    secret_ns = [pooled[output.n_slot] for output in outputs]
    opened_values = await mpc.output(secret_values + secret_ns)
    count = len(outputs)
    values = []
    for index, output in enumerate(outputs):
        value = float(opened_values[index])
        n = int(round(float(opened_values[count + index])))
        if output.func == "count":
            value = float(n)
        values.append({"value": value, "n": n})
    return {"checks": checks, "values": values}


def _check_dominance(
    dominance: dict[str, Any],
    check_bits: list[Any],
    checks: list[dict[str, Any]],
) -> None:
    """Append the dominance and p% bits of every magnitude group to the checks.

    `dominance` contains this party's ``values`` (per group: the sum of
    absolute values, then its ``largest`` largest absolute values in
    descending order), the ``groups`` as ``{"cell", "outputs"}``, the
    settings ``n``, ``k`` and ``p``, and the ``bit_length`` of the secure
    numbers. Each group's bits are attached to every output that reads it.
    """
    largest = int(dominance["largest"])
    n = int(dominance["n"])
    k = float(dominance["k"])
    p = float(dominance["p"])
    secfxp = mpc.SecFxp(int(dominance["bit_length"]), DOMINANCE_FRACTION_BITS)
    shared = mpc.input([secfxp(v) for v in dominance["values"]])
    for party in shared:
        clear_integral(party)
    stride = largest + 1
    for index, group in enumerate(dominance["groups"]):
        base = index * stride
        total = mpc.sum([party[base] for party in shared])
        lists = [[party[base + 1 + j] for j in range(largest)] for party in shared]
        bits = []
        if k < 1:
            sums = _largest_sums(lists, n)
            bits.append(("dominance", mpc.prod([s <= k * total for s in sums])))
        if p > 0:
            pairs = _largest_pairs(lists)
            rest = [total - (1 + p) * u - v >= 0 for u, v in pairs]
            bits.append(("p_percent", mpc.prod(rest)))
        for output_index in group["outputs"]:
            for rule, bit in bits:
                check_bits.append(bit)
                checks.append({"output": output_index, "rule": rule})


def _largest_sums(lists: list[list[Any]], n: int) -> list[Any]:
    """Return secret sums of which the largest is the sum of the n largest values.

    Each party's list is sorted in descending order. The two largest values
    overall are either one party's first two or two parties' first values,
    so for n <= 2 every candidate is compared with the threshold at once,
    in one round, instead of sorting.
    """
    if n == 1:
        return [values[0] for values in lists]
    if n == 2:
        sums = [values[0] + values[1] for values in lists]
        sums += [a[0] + b[0] for a, b in itertools.combinations(lists, 2)]
        return sums
    ordered = mpc.sorted([v for values in lists for v in values], reverse=True)
    return [mpc.sum(ordered[:n])]


def _largest_pairs(lists: list[list[Any]]) -> list[tuple[Any, Any]]:
    """Return (u, v) pairs among which (largest, second largest) minimises
    total - (1 + p) u - v, so the p% rule holds if it holds for every pair.

    Any other pair's larger value is at most the largest and its smaller
    value at most the second largest. Pairs of two parties' first values
    appear in both orders, because which of them is larger stays secret.
    """
    pairs = [(values[0], values[1]) for values in lists]
    for a, b in itertools.combinations(lists, 2):
        pairs += [(a[0], b[0]), (b[0], a[0])]
    return pairs

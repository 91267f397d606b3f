"""The dominance and p% rules on vertically joined rows, inside MPC.

On joined rows no station can tell which of its values fall in a cell, so the
largest contributions cannot be found locally as for horizontal data
(``station.secure_aggregate``). Here every row's value in a cell is a
secret-shared number that is 0 outside the cell, the filter or the
non-missing values. The parties take absolute values and find the largest
ones among all joined rows by a knockout tournament on the shares: each
round compares the two halves of the current list position by position, so
n rows take about log2(n) rounds and 3n secure comparisons in all, and
every intermediate value stays secret. For ``dominance_n`` above 2 they
sort the absolute values obliviously instead (``mpc.np_sort``), which costs
more.

The values are first converted to small secure numbers with
FRACTION_BITS fractional bits, because the cost of a secure comparison
grows with the bit length: on three loopback parties, 512 rows took 69 s
at the join's 176 bits and 15 s after the conversion (one run on a loaded
two-core machine). A value is a column's value divided by its declared
maximum absolute value, so the conversion rounds it to a multiple of
2^-16 of that maximum, as the horizontal check does.

Only one pass/fail bit per rule and figure is opened, as for horizontal
data: the n largest absolute values may make up at most ``dominance_k`` of
the total of absolute values, and the total less the two largest must be
at least ``p_percent`` of the largest.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpyc.runtime import mpc

# Fractional bits of the secure numbers in the checks.
FRACTION_BITS = 16


def _compact(values: Any) -> Any:
    """Return `values` as secure numbers of FRACTION_BITS fractional bits.

    Every entry lies in [-1, 1], so a total of n absolute values needs
    log2(n) integer bits, and 4 more leave room for the comparisons.
    """
    length = values.shape[0]
    small = mpc.SecFxp(FRACTION_BITS + length.bit_length() + 4, FRACTION_BITS)
    return mpc.np_fromlist(mpc.convert(mpc.np_tolist(values), small))


def _select(bits: Any, upper: Any, lower: Any) -> Any:
    """Return ``upper`` where `bits` is 1 and ``lower`` where it is 0."""
    return bits * (upper - lower) + lower


def _pad(values: Any, length: int) -> Any:
    """Return `values` followed by secret zeros up to `length` entries."""
    missing = length - values.shape[0]
    if missing == 0:
        return values
    zeros = type(values).sectype.array(np.zeros(missing))
    return mpc.np_concatenate((values, zeros))


def two_largest(values: Any) -> tuple[Any, Any]:
    """Return the largest and second-largest entries of a secret 1-D array.

    The array is padded with zeros to a power of two, so the entries must be
    at least 0 (absolute values). Each round pairs entry i of the first half
    with entry i of the second and keeps, per pair, the larger of the two
    largest values and the larger of the rest.
    """
    length = 1 << max(0, (values.shape[0] - 1).bit_length())
    first = _pad(values, length)
    second = None
    while first.shape[0] > 1:
        half = first.shape[0] // 2
        left, right = first[:half], first[half:]
        upper = _select(left >= right, left, right)
        lower = left + right - upper
        if second is None:
            second = lower
        else:
            left_second, right_second = second[:half], second[half:]
            rest = _select(left_second >= right_second, left_second, right_second)
            second = _select(lower >= rest, lower, rest)
        first = upper
    if second is None:
        second = type(values).sectype.array(np.zeros(1))
    return first[0], second[0]


def _largest(values: Any, count: int) -> list[Any]:
    """Return the `count` largest entries of a secret 1-D array of values >= 0."""
    if count <= 2:
        top, runner_up = two_largest(values)
        return [top, runner_up][:count]
    ordered = mpc.np_sort(_pad(values, max(count, values.shape[0])))
    return [ordered[-1 - i] for i in range(count)]


def dominance_bits(values: Any, settings: dict[str, Any]) -> list[tuple[str, Any]]:
    """Return the secret (rule, bit) pairs of one figure's joined values.

    `values` contains one secret number per joined row, in [-1, 1]: the
    row's scaled value if the row counts towards the figure, else 0.
    `settings` names ``n``, ``k`` and ``p`` as in the task's disclosure
    settings; a rule that is off (``k >= 1``, ``p <= 0``) gets no bit.
    """
    n, k, p = int(settings["n"]), float(settings["k"]), float(settings["p"])
    if k >= 1 and p <= 0:
        return []
    magnitudes = mpc.np_absolute(_compact(values))
    total = mpc.np_sum(magnitudes)
    largest = _largest(magnitudes, max(n, 2) if p > 0 else n)
    bits = []
    if k < 1:
        bits.append(("dominance", mpc.sum(largest[:n]) <= k * total))
    if p > 0:
        top, runner_up = largest[0], largest[1]
        bits.append(("p_percent", total - (1 + p) * top - runner_up >= 0))
    return bits

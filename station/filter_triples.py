"""Determinacy of region counts by three released counts, for the
`overlapping_filters` rule.

Three released counts |Q|, |P1| and |P2| split their persons into the 7
regions of a Venn diagram (in Q only, in Q and P1 only, ...). The counts of
some regions, or of some unions of regions, follow from the three released
counts: after `WHERE X`, `WHERE Y` and `WHERE X or Y`, the persons in both X
and Y number |X| + |Y| - |X or Y|. Whether a union's count follows depends
on which regions are empty, because an empty region drops out of every
equation. A union is determined when its indicator vector, restricted to
the non-empty regions, lies in the row space of the three populations'
indicator vectors restricted to the same regions.

The stations check this in MPC without learning which regions are empty:
this module builds, once and in plain Python, a table with one row per
emptiness pattern (2**7) and one column per union of regions that can be
determined. An entry is 1 when that union is non-empty and determined under
that pattern. `station.secure_filter_triples` multiplies the secret one-hot
pattern with this table and with the secret bits "union has fewer than
min_count persons".
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

# The regions of (Q, P1, P2), each as its (in Q, in P1, in P2) membership.
# Region r has index r - 1 in the binary number (in Q) (in P1) (in P2), so
# region 0 is "in P2 only" and region 6 is "in all three".
REGIONS: tuple[tuple[bool, bool, bool], ...] = tuple(
    (bool(code & 4), bool(code & 2), bool(code & 1)) for code in range(1, 8)
)
REGION_COUNT = len(REGIONS)
# Unions of regions as bit masks over region indices, 1 to 127.
UNIONS: tuple[int, ...] = tuple(range(1, 2**REGION_COUNT))
# Emptiness patterns as bit masks of the non-empty regions, 0 to 127.
PATTERNS: tuple[int, ...] = tuple(range(2**REGION_COUNT))


def region_names() -> list[str]:
    """Return a readable name per region, such as "Q and P2, not P1"."""
    names = []
    for membership in REGIONS:
        inside = [n for n, m in zip(("Q", "P1", "P2"), membership, strict=True) if m]
        outside = [
            n for n, m in zip(("Q", "P1", "P2"), membership, strict=True) if not m
        ]
        name = " and ".join(inside)
        if outside:
            name += ", not " + " or ".join(outside)
        names.append(name)
    return names


def _released_matrix() -> np.ndarray:
    # Row i is the indicator vector of population i (Q, P1, P2) over regions.
    return np.array(
        [[1.0 if membership[i] else 0.0 for membership in REGIONS] for i in range(3)]
    )


def union_vector(union: int) -> np.ndarray:
    """Return the indicator vector over regions of the union bit mask `union`."""
    return np.array(
        [1.0 if union >> r & 1 else 0.0 for r in range(REGION_COUNT)], dtype=float
    )


@functools.cache
def determined_unions(pattern: int) -> tuple[int, ...]:
    """Return the non-empty unions whose count the released counts determine.

    `pattern` has bit r set when region r is non-empty. A union is listed
    only as its part within the non-empty regions, because an empty region
    adds nothing to a count. With regions 1 and 2 empty, for example,
    unions 1, 2 and 3 all count 0 persons and none is listed.
    """
    columns = [r for r in range(REGION_COUNT) if pattern >> r & 1]
    if not columns:
        return ()
    released = _released_matrix()[:, columns]
    rank = np.linalg.matrix_rank(released)
    found = []
    for union in UNIONS:
        if union & ~pattern:
            continue
        vector = union_vector(union)[columns]
        stacked = np.vstack([released, vector])
        if np.linalg.matrix_rank(stacked) == rank:
            found.append(union)
    return tuple(found)


@functools.cache
def minimal_determined_unions(pattern: int) -> tuple[int, ...]:
    """Return the determined unions of `pattern` that contain no other one.

    Every region of a listed union is non-empty, so each union counts at
    least one person. If some determined union has 1 to min_count - 1
    persons, so has a minimal one inside it, because a smaller union counts
    no more persons. Checking the minimal ones is therefore enough.
    """
    found = determined_unions(pattern)
    return tuple(
        union
        for union in found
        if not any(other != union and other & union == other for other in found)
    )


@functools.cache
def checked_unions() -> tuple[int, ...]:
    """Return every union that is minimal and determined under some pattern.

    These are the unions whose size the secure computation compares with
    min_count: 43 of the 127, 7 of them single regions.
    """
    found: set[int] = set()
    for pattern in PATTERNS:
        found.update(minimal_determined_unions(pattern))
    return tuple(sorted(found))


@functools.cache
def determinacy_table() -> np.ndarray:
    """Return the 0/1 table of shape (patterns, checked unions).

    Entry [p, i] is 1 when checked union i is minimal and determined under
    pattern p, so its count is known from the released counts and at least 1.
    """
    unions = checked_unions()
    table = np.zeros((len(PATTERNS), len(unions)), dtype=np.int64)
    for pattern in PATTERNS:
        for union in minimal_determined_unions(pattern):
            table[pattern, unions.index(union)] = 1
    table.setflags(write=False)
    return table


@functools.cache
def union_matrix() -> np.ndarray:
    """Return the 0/1 matrix of shape (regions, checked unions) that sums
    region counts into union counts."""
    unions = checked_unions()
    matrix = np.zeros((REGION_COUNT, len(unions)), dtype=np.int64)
    for column, union in enumerate(unions):
        for region in range(REGION_COUNT):
            if union >> region & 1:
                matrix[region, column] = 1
    matrix.setflags(write=False)
    return matrix


def pattern_of(counts: list[int] | tuple[int, ...]) -> int:
    """Return the emptiness pattern of seven region counts."""
    return sum(1 << r for r, count in enumerate(counts) if count > 0)


def isolated_unions(counts: list[int] | tuple[int, ...], min_count: int) -> list[int]:
    """Return the determined unions with 1 to min_count - 1 persons, in clear.

    This is what the secure computation decides, for plain-data checks and
    tests: the output is blocked when the list is not empty.
    """
    if len(counts) != REGION_COUNT:
        raise ValueError(
            f"expected {REGION_COUNT} region counts, got {len(counts)}: one per "
            "region of the three populations"
        )
    pattern = pattern_of(counts)
    found = []
    for union in determined_unions(pattern):
        total = sum(counts[r] for r in range(REGION_COUNT) if union >> r & 1)
        if 1 <= total < min_count:
            found.append(union)
    return found


def earlier_pairs(count: int) -> list[tuple[int, int]]:
    """Return the index pairs (i, j), i < j, of `count` earlier queries."""
    return list(itertools.combinations(range(count), 2))

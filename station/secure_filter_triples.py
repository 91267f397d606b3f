"""The `overlapping_filters` check in MPC: do this query's and two earlier
released queries' counts together single out fewer than min_count persons?

Each party secret-shares, per triple (this query's population Q and two
earlier populations P1 and P2), its row counts in the 7 regions of their
Venn diagram. The parties add them and then, on secret values only:

1. compare each region count with min_count (full-width comparisons) and
   cap it there, t = min(count, min_count);
2. derive each region's non-empty bit from t, and from the 7 bits the
   one-hot vector of the emptiness pattern (7 rounds of products);
3. sum the capped counts into the unions of `station.filter_triples` and
   compare each with min_count. The capped sums are at most
   7 * min_count, so these comparisons need only a few bits;
4. multiply the one-hot pattern with the public determinacy table and the
   "union is small" bits. The result counts, per triple, the small unions
   that the released counts determine.

Only one bit is opened: whether that count is 0 for every triple. So a
blocked query does not tell which pair of earlier queries, which region or
which emptiness pattern was involved.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpyc.runtime import mpc

from station.filter_triples import REGION_COUNT, determinacy_table, union_matrix


async def overlapping_filters_pass(
    region_counts: list[int], triples: int, min_count: int, count_bits: int
) -> bool:
    """Return True when no triple determines a group of 1 to min_count - 1.

    `region_counts` is this party's flat list of `triples` * 7 row counts,
    region by region within each triple, in the order of
    `station.filter_triples.REGIONS`. Every party passes the same
    `triples`, `min_count` and `count_bits` (the bits of the secure
    integers; pooled counts must stay below 2**(count_bits - 1)).
    """
    if len(region_counts) != triples * REGION_COUNT:
        raise ValueError(
            f"expected {triples * REGION_COUNT} region counts for {triples} "
            f"triple(s), got {len(region_counts)}"
        )
    if triples == 0:
        return True
    secint = mpc.SecInt(count_bits)
    local = np.array(region_counts, dtype=np.int64).reshape(triples, REGION_COUNT)
    shared = mpc.input(secint.array(local))
    counts = shared[0]
    for part in shared[1:]:
        counts = counts + part

    # 1. Below min_count, and the count capped at min_count.
    below = mpc.np_sgn(counts - min_count, LT=True)
    capped = min_count + below * (counts - min_count)

    # 2. Non-empty bits, from capped counts in [0, min_count].
    small_bits = int(min_count).bit_length() + 1
    nonempty = 1 - mpc.np_sgn(capped - 1, l=small_bits, LT=True)
    onehot = secint.array(np.ones((triples, 1), dtype=np.int64))
    for region in range(REGION_COUNT):
        bit = nonempty[:, region : region + 1]
        onehot = mpc.np_concatenate([onehot * (1 - bit), onehot * bit], axis=1)

    # 3. Unions of capped counts: a union reaches min_count exactly when its
    # capped sum does, and the capped sums lie in [0, 7 * min_count].
    union_sums = capped @ union_matrix()
    union_bits = int(REGION_COUNT * min_count).bit_length() + 1
    small_unions = mpc.np_sgn(union_sums - min_count, l=union_bits, LT=True)

    # 4. Small determined unions per triple, summed over all triples.
    per_pattern = small_unions @ determinacy_table().T
    isolating = mpc.np_sum(onehot * per_pattern)
    total_bits = int(triples * union_matrix().shape[1]).bit_length() + 1
    # isolating - 1 < 0 means isolating == 0: no triple isolates anyone.
    passed = mpc.sgn(isolating - 1, l=total_bits, LT=True)
    opened: Any = await mpc.output(passed)
    return bool(int(opened))

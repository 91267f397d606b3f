"""The overlapping-filters rule: the determinacy table in plain Python, the
local region counts in DuckDB, and the secure check with real MPyC parties
compared with the same decision in clear."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mpc_parties import loopback_parties, run_parties

from linksight.query import parse_query
from linksight.schema import ColumnSchema, DatasetSchema
from station import filter_triples as triples
from station.aggregates import build_layout, compute_region_counts
from station.filter_triples import REGIONS

# Region indices by membership (in Q, in P1, in P2).
REGION = {membership: index for index, membership in enumerate(REGIONS)}
Q_P1_P2 = REGION[(True, True, True)]
Q_P1 = REGION[(True, True, False)]
Q_P2 = REGION[(True, False, True)]
Q_ONLY = REGION[(True, False, False)]
P1_ONLY = REGION[(False, True, False)]
P2_ONLY = REGION[(False, False, True)]
P1_P2 = REGION[(False, True, True)]


def _pattern(*regions: int) -> int:
    return sum(1 << region for region in regions)


def _union(*regions: int) -> int:
    return sum(1 << region for region in regions)


def test_x_or_y_determines_intersection():
    # Q = X or Y, P1 = X, P2 = Y: X and Y together is |X| + |Y| - |X or Y|.
    pattern = _pattern(Q_P1, Q_P2, Q_P1_P2)
    determined = triples.determined_unions(pattern)
    assert _union(Q_P1_P2) in determined
    assert _union(Q_P1) in determined
    assert _union(Q_P2) in determined
    assert triples.minimal_determined_unions(pattern) == tuple(
        sorted([_union(Q_P2), _union(Q_P1), _union(Q_P1_P2)])
    )


def test_independent_filters_determine_nothing_small():
    # Three filters in general position: all seven regions are non-empty.
    # Only the released populations themselves follow from their counts.
    pattern = _pattern(*range(7))
    determined = triples.determined_unions(pattern)
    released = {_union(*[r for r, m in enumerate(REGIONS) if m[i]]) for i in range(3)}
    assert set(determined) == released
    counts = [40, 35, 12, 50, 20, 18, 3]
    assert triples.isolated_unions(counts, 10) == []


def test_nested_filters_determine_difference():
    # P2 inside P1 inside Q (age >= 60, 65, 70): each ring is a difference.
    pattern = _pattern(Q_ONLY, Q_P1, Q_P1_P2)
    minimal = triples.minimal_determined_unions(pattern)
    assert minimal == tuple(sorted([_union(Q_ONLY), _union(Q_P1), _union(Q_P1_P2)]))
    counts = [0] * 7
    counts[Q_ONLY], counts[Q_P1], counts[Q_P1_P2] = 30, 4, 20
    assert triples.isolated_unions(counts, 10) == [_union(Q_P1)]


def test_empty_regions_drop_out():
    # With P1 only and P2 only empty, P1 and P2 lie inside Q and Q's count
    # minus theirs is the region outside both, which is empty here too.
    pattern = _pattern(Q_P1, Q_P2, Q_P1_P2, P1_P2)
    determined = triples.determined_unions(pattern)
    assert all(union & ~pattern == 0 for union in determined)
    assert _union(P1_P2) not in determined


def test_table_agrees_with_rank_test():
    table = triples.determinacy_table()
    unions = triples.checked_unions()
    assert table.shape == (128, len(unions))
    assert len(unions) == 43
    for pattern in triples.PATTERNS:
        listed = tuple(unions[i] for i in np.flatnonzero(table[pattern]))
        assert listed == triples.minimal_determined_unions(pattern)


def test_minimal_unions_decide_like_all_unions():
    # The secure check compares only minimal determined unions. On every
    # count vector with regions of 0, 1, 5 and 12 persons, it must decide as
    # the check over all determined unions does.
    unions = triples.checked_unions()
    for counts in itertools.product((0, 1, 5, 12), repeat=7):
        pattern = triples.pattern_of(counts)
        small_minimal = any(
            sum(counts[r] for r in range(7) if union >> r & 1) < 10
            for union in triples.minimal_determined_unions(pattern)
        )
        assert all(u in unions for u in triples.minimal_determined_unions(pattern))
        assert small_minimal == bool(triples.isolated_unions(counts, 10))


def test_isolated_unions_rejects_wrong_length():
    with pytest.raises(ValueError, match="expected 7 region counts, got 3"):
        triples.isolated_unions([1, 2, 3], 10)


def test_region_counts_match_pandas(tmp_path):
    frame = pd.DataFrame(
        {
            "age": [35, 45, 55, 65, 75, 85, None, 62],
            "sex": [1, 2, 1, 2, 1, 2, 1, None],
        }
    )
    path = tmp_path / "rows.parquet"
    frame.astype("Int64").to_parquet(path)
    schema = DatasetSchema(
        name="rows",
        columns=[
            ColumnSchema(name="age", type="integer", min=0, max=120),
            ColumnSchema(name="sex", type="categorical", levels=[1, 2]),
        ],
    )
    spec = parse_query("SELECT count(*), mean(age) FROM rows WHERE age >= 60")
    earlier = [
        parse_query("SELECT count(*) FROM rows WHERE sex == 1"),
        parse_query("SELECT count(*) FROM rows WHERE age < 70 GROUP BY sex"),
    ]
    layout = build_layout(spec, schema)
    counts = compute_region_counts(spec, layout, earlier, path)
    assert len(counts) == 2 * 7  # one pair, for the rows and for age
    for block, column in enumerate([None, "age"]):
        present = frame[column].notna() if column else pd.Series(True, frame.index)
        q = (frame["age"] >= 60).fillna(False) & present
        p1 = (frame["sex"] == 1).fillna(False) & present
        p2 = (frame["age"] < 70).fillna(False) & frame["sex"].notna() & present
        for region, (in_q, in_p1, in_p2) in enumerate(REGIONS):
            expected = int(((q == in_q) & (p1 == in_p1) & (p2 == in_p2)).sum())
            assert counts[block * 7 + region] == expected, (column, region)


def _aggregate_configs(parts: list[list[int]], triple_count: int) -> list[dict]:
    parties = loopback_parties(len(parts))
    output = {
        "label": "count(*)",
        "func": "count",
        "cell": 0,
        "n_slot": 0,
        "sum_slot": None,
        "square_slot": None,
    }
    configs: list[dict[str, Any]] = []
    for index, counts in enumerate(parts):
        configs.append(
            {
                "parties": parties,
                "index": index,
                "bind_host": "127.0.0.1",
                "timeout_seconds": 60,
                "vector": [20.0],
                "own_vector": [0.0],
                "outputs": [output],
                "min_count": 10,
                "requester_contributes": False,
                "fraction_bits": 80,
                "overlapping_filters": {
                    "counts": counts,
                    "triples": triple_count,
                    "request_ids": ["4", "5"],
                },
            }
        )
    return configs


def _secure_decision(tmp_path: Path, parts: list[list[int]]) -> bool:
    triple_count = len(parts[0]) // 7
    outputs = run_parties(_aggregate_configs(parts, triple_count), tmp_path)
    decisions = set()
    for status, output in outputs:
        assert status == 0, output
        check = next(c for c in output["checks"] if c["rule"] == "overlapping_filters")
        decisions.add(check["passed"])
        assert (output["values"] is None) == (not check["passed"])
    assert len(decisions) == 1
    return decisions.pop()


def test_secure_check_matches_clear(tmp_path):
    # Three triples at three stations. The pooled second triple is the
    # X, Y, X or Y attack with 3 persons in both X and Y; the others pass.
    rng = np.random.default_rng(7)
    passing = [0, 0, 0, 30, 25, 15, 20]
    attack = [0, 0, 0, 0, 22, 17, 3]
    nested = [0, 0, 0, 31, 12, 0, 40]
    pooled = [passing, attack, nested]
    parts: list[list[int]] = [[], [], []]
    for triple in pooled:
        for count in triple:
            a = int(rng.integers(0, count + 1))
            b = int(rng.integers(0, count - a + 1))
            for station, share in enumerate((a, b, count - a - b)):
                parts[station].append(share)
    assert triples.isolated_unions(passing, 10) == []
    assert triples.isolated_unions(attack, 10) == [_union(Q_P1_P2)]
    assert triples.isolated_unions(nested, 10) == []
    assert _secure_decision(tmp_path / "blocked", parts) is False
    without_attack = [part[:7] + part[14:] for part in parts]
    assert _secure_decision(tmp_path / "passed", without_attack) is True

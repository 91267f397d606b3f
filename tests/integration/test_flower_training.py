"""Federated training with Flower on real processes.

A hub, three lung stations, a SuperLink over TLS with SuperNode
authentication, and one SuperNode per station, supervised by its daemon.
Flower runs are slow (a SecAgg+ exchange takes half a minute or more on two
cores, most of it Flower's polling and process start-up), so the tests use
the fewest rounds that show each behaviour.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

import psutil
import pytest
import statsmodels.formula.api as smf

from linksight.flower_network import start_superlink
from linksight.network import LocalNetwork, lung_data

# A run of a few exchanges takes minutes on two busy cores, beyond the
# suite's default timeout of 300 s.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def flower_network(tmp_path_factory):
    network = LocalNetwork(tmp_path_factory.mktemp("flower-network"))
    superlink = None
    try:
        network.start_hub()
        network.set_up_lung_study()
        superlink = start_superlink(network)
        network.start_stations()
        yield network
    finally:
        network.stop()
        if superlink is not None:
            superlink.stop()


def _run(network, query, timeout=600.0):
    request = network.submit(query, purpose="federated training test")
    network.approve_all(request["id"])
    return request["id"], network.wait_for(request["id"], timeout=timeout)


def _progress_lines(station, request_id) -> int:
    """Count the exchanges `station` took part in for request `request_id`."""
    tasks = station.config_path.parent / "state" / "flower" / "tasks"
    for folder in tasks.glob("*"):
        task = json.loads((folder / "task.json").read_text())["task"]
        if str(task["request_id"]) == str(request_id):
            progress = folder / "progress.jsonl"
            return len(progress.read_text().splitlines()) if progress.exists() else 0
    return 0


def test_supernode_restarted_after_kill(flower_network):
    log = flower_network.root / "logs" / "station-b.log"
    started = re.findall(r"SuperNode started: pid (\d+)", log.read_text())
    assert len(started) == 1
    os.kill(int(started[0]), signal.SIGKILL)
    deadline = time.monotonic() + 60
    while len(re.findall(r"SuperNode started", log.read_text())) < 2:
        assert time.monotonic() < deadline, "the daemon did not restart its SuperNode"
        time.sleep(0.2)
    assert "SuperNode exited with status -9; restarting" in log.read_text()


def test_linear_model_matches_pooled_ols(flower_network):
    request_id, final = _run(
        flower_network,
        "SELECT train(linear, age ~ ph.karno + C(sex) + wt.loss, rounds = 1) FROM lung",
    )
    assert final["state"] == "completed", final.get("error")
    result = flower_network.result(request_id)["result"]
    assert result["status"] == "released"
    assert result["secure_aggregation"] is True
    frame = lung_data().rename(columns={"ph.karno": "karno", "wt.loss": "wtloss"})
    frame = frame.dropna(subset=["age", "karno", "sex", "wtloss"]).astype(float)
    pooled = smf.ols("age ~ karno + C(sex) + wtloss", frame).fit()
    names = {
        "Intercept": "Intercept",
        "ph.karno": "karno",
        "C(sex)[T.2]": "C(sex)[T.2.0]",
        "wt.loss": "wtloss",
    }
    assert result["n"] == len(frame)
    # One Newton step is the least-squares fit. What remains is SecAgg+'s
    # quantization of the summed cross-products (2**30 levels over [-8, 8]),
    # amplified where a column is nearly collinear with others: wt.loss
    # differed by 3e-3 of its value, a small part of its standard error.
    for name, pooled_name in names.items():
        difference = abs(result["coefficients"][name] - pooled.params[pooled_name])
        assert difference <= 0.01 * pooled.bse[pooled_name], name
    history = result["history"]
    assert [entry["exchange"] for entry in history] == [1, 2]
    # The same quantization moves the pooled loss too: 1.4e-4 relative seen.
    assert history[-1]["loss"] == pytest.approx(pooled.ssr / len(frame), rel=1e-3)
    log = (flower_network.root / "logs" / "station-b.log").read_text()
    assert "round 1 of 1" in log
    assert "evaluation of the model after 1 round(s)" in log


def test_killed_station_stops_run(flower_network):
    request = flower_network.submit(
        "SELECT train(logistic, status ~ age + C(sex) + ph.karno, rounds = 3) "
        "FROM lung",
        purpose="federated training test",
    )
    flower_network.approve_all(request["id"])
    victim = next(s for s in flower_network.stations if s.name == "station-c")
    deadline = time.monotonic() + 300
    # Wait until station-c's ClientApp has taken part in the first exchange.
    while _progress_lines(victim, request["id"]) == 0:
        assert time.monotonic() < deadline, "the run never reached station-c"
        time.sleep(0.5)
    assert victim.process is not None
    os.kill(victim.process.pid, signal.SIGTERM)
    final = flower_network.wait_for(request["id"], timeout=120)
    assert final["state"] == "failed"
    assert "station station-c stopped during the training run" in final["error"]
    assert victim.process.wait(timeout=30) == 0
    victim_log = (flower_network.root / "logs" / "station-c.log").read_text()
    assert "SuperNode stopped" in victim_log
    for pid in re.findall(r"SuperNode started: pid (\d+)", victim_log):
        assert not psutil.pid_exists(int(pid)), f"SuperNode {pid} still runs"
    # The station that submitted the run stops waiting, and stops the run,
    # at its next check of the hub.
    launcher = flower_network.root / "logs" / "station-a.log"
    deadline = time.monotonic() + 90
    while "stopped because the request is failed at the hub" not in (
        launcher.read_text()
    ):
        assert time.monotonic() < deadline, "station-a did not stop waiting"
        time.sleep(0.5)

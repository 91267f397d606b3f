"""Time federated training rounds with and without SecAgg+, beside bare Flower.

Usage: ``python benchmarks/flower_rounds.py [--rounds 2]``

Starts a hub, the three lung stations and a SuperLink on this machine
(:func:`linksight.flower_network.start_superlink`) and trains
``train(logistic, status ~ age + C(sex) + ph.karno)`` four ways:

* platform, SecAgg+ and plain: a request submitted, approved by every
  steward, run by the station daemons and their supervised SuperNodes; timed
  from the last approval to the released result;
* bare Flower, SecAgg+ and plain: the same signed tasks, Flower app,
  SuperLink and stations' SuperNodes, but the SuperNodes kept running by
  :class:`station.supernode.SuperNodeSupervisor` alone and the run submitted
  with ``flwr run``, without the hub or the daemons; timed from ``flwr run``
  to the last station's stored outcome. These start once every SuperNode
  has opened a new session with the SuperLink.

Each run's seconds per exchange come from the ServerApp's history. Every
run's coefficients are checked against statsmodels on the pooled rows.
Prints the figures and writes them to docs/benchmarks.md between this
script's markers, leaving the rest of that file as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import flwr
import numpy as np
import statsmodels.api as sm
from benchmark_docs import machine, write_section

from linksight import flower
from linksight.flower_network import SuperLink, start_superlink
from linksight.network import LocalNetwork, lung_data
from linksight.tasks import TaskSpec
from station.config import load_config
from station.supernode import SuperNodeSupervisor
from station.training import TaskFolder
from station.training_run import launch_run

FORMULA = "status ~ age + C(sex) + ph.karno"
# statsmodels names of the formula's design columns, in the platform's order.
POOLED_NAMES = ["Intercept", "age", "C(sex)[T.2]", "ph.karno"]


def pooled_coefficients() -> dict[str, float]:
    """Fit the logistic model on the pooled lung rows with statsmodels."""
    frame = lung_data()[["status", "age", "sex", "ph.karno"]].dropna()
    x = np.column_stack(
        [
            np.ones(len(frame)),
            frame["age"].astype(float),
            (frame["sex"] == 2).astype(float),
            frame["ph.karno"].astype(float),
        ]
    )
    y = (frame["status"] == 2).astype(float)
    fit = sm.GLM(y, x, family=sm.families.Binomial()).fit()
    return dict(zip(POOLED_NAMES, fit.params, strict=True))


def platform_run(network: LocalNetwork, query: str) -> dict[str, Any]:
    """Run `query` through the hub and the daemons; return timing and result."""
    request = network.submit(query, purpose="benchmark")
    approved = time.monotonic()
    network.approve_all(request["id"])
    final = network.wait_for(request["id"], timeout=3600)
    seconds = time.monotonic() - approved
    if final["state"] != "completed":
        raise RuntimeError(f"request {request['id']} {final['state']}: {final}")
    result = network.result(request["id"])["result"]
    task_id = _task_id(network, request["id"])
    return {"seconds": seconds, "result": result, "task_id": task_id}


def _task_id(network: LocalNetwork, request_id: int) -> str:
    station = network.stations[0].config_path.parent
    for path in (station / "state" / "flower" / "tasks").iterdir():
        task = json.loads((path / "task.json").read_text())["task"]
        if str(task["request_id"]) == str(request_id):
            return path.name
    raise RuntimeError(f"no training task of request {request_id} at station-a")


def bare_run(network: LocalNetwork, task_id: str) -> dict[str, Any]:
    """Run a signed task again on SuperNodes started without the daemons."""
    configs = [load_config(s.config_path) for s in network.stations]
    folders = [TaskFolder(c.station.state_dir, task_id) for c in configs]
    for folder in folders:
        folder.outcome_file.unlink(missing_ok=True)
        folder.progress_file.unlink(missing_ok=True)
    signed = folders[0].accepted()
    assert signed is not None
    launcher = configs[0]
    schema = launcher.schema("lung")
    task = TaskSpec.model_validate(signed["task"])
    with tempfile.TemporaryDirectory() as work:
        started = time.monotonic()
        process = launch_run(launcher, task, signed, schema, Path(work))
        process.wait()
        deadline = started + 1800
        while not all(folder.outcome() for folder in folders):
            if time.monotonic() > deadline:
                raise RuntimeError(f"bare Flower run of task {task_id} timed out")
            time.sleep(0.2)
        seconds = time.monotonic() - started
    outcome = folders[0].outcome()
    assert outcome is not None
    if outcome["event"] != "completed":
        raise RuntimeError(f"bare Flower run of task {task_id} failed: {outcome}")
    return {"seconds": seconds, "result": outcome["result"]}


def start_supernodes(network: LocalNetwork) -> list[SuperNodeSupervisor]:
    """Start every station's SuperNode without its daemon.

    The supervisor restarts a SuperNode that exits: right after the daemon's
    SuperNode stopped, the SuperLink rejects the same key (Flower exit code
    305) until it has marked the old node offline.
    """
    supervisors = []
    for station in network.stations:
        supervisor = SuperNodeSupervisor(
            load_config(station.config_path), station.config_path
        )
        supervisor.start()
        supervisors.append(supervisor)
    return supervisors


def wait_for_new_sessions(link: SuperLink, since: datetime, timeout: float) -> None:
    """Wait until every node came online at or after `since`.

    A node whose SuperNode stopped without deactivating stays online in the
    SuperLink until its heartbeat expires (2 x 30 s). A run started in that
    window sends it messages that come back as "Node Unavailable".
    """
    floor = since.replace(microsecond=0, tzinfo=None)
    deadline = time.monotonic() + timeout
    while True:
        nodes = flower.run_flwr(link.home, ["supernode", "list", flower.CONNECTION])
        stale = [
            node["node-id"]
            for node in nodes["nodes"]
            if node["status"] != "online"
            or datetime.strptime(node["online-at"], "%Y-%m-%d %H:%M:%SZ") < floor
        ]
        if not stale:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"node(s) {', '.join(stale)} did not come online again in "
                f"{timeout:.0f} s; see the SuperNode logs in the station folders"
            )
        time.sleep(2)


def per_exchange(result: dict[str, Any]) -> float:
    """Mean seconds per exchange, from the ServerApp's history."""
    return float(np.mean([entry["seconds"] for entry in result["history"]]))


def max_difference(result: dict[str, Any], pooled: dict[str, float]) -> float:
    """Largest absolute difference of a coefficient from the pooled fit."""
    return max(abs(result["coefficients"][k] - v) for k, v in pooled.items())


def render(rows: list[dict[str, Any]], rounds: int, load: float) -> str:
    """Return the markdown section of this benchmark."""
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [
        "## Federated training rounds: SecAgg+ and plain, beside bare Flower",
        "",
        f"Command: `python benchmarks/flower_rounds.py --rounds {rounds}`",
        f"Machine: {machine(f'Flower {flwr.__version__}')}",
        f"Date: {date}",
        f"Load average (1 min) when the run started: {load:.1f}; other work on",
        "the machine shares its two cores, so an idle machine gives lower times.",
        "",
        f"`train(logistic, {FORMULA}, rounds = {rounds})`",
        f"on the NCCTG lung data split over three stations: {rounds} Newton",
        "rounds and one evaluation exchange. Platform runs are timed from the",
        "last approval to the released result, bare Flower runs (the same",
        "signed task, app, SuperLink and SuperNodes, without hub or daemons)",
        "from `flwr run` to the last station's outcome; they start once every",
        "SuperNode has a new session with the SuperLink. Seconds per exchange",
        "are the ServerApp's, from the run's history.",
        "",
        "| run | total (s) | per exchange (s) | max difference from statsmodels |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['seconds']:.1f} | {row['per_exchange']:.1f} "
            f"| {row['difference']:.2e} |"
        )
    by_name = {row["name"]: row for row in rows}
    lines.append("")
    for mode in ("SecAgg+", "plain"):
        platform_row = by_name[f"platform, {mode}"]
        bare_row = by_name[f"bare Flower, {mode}"]
        overhead = platform_row["seconds"] / bare_row["seconds"] - 1
        lines.append(
            f"Platform overhead over bare Flower, {mode}: {overhead:+.0%} of the "
            "run's time."
        )
    lines += [
        "",
        f"The coefficient differences are those of {rounds} Newton steps from",
        "zero against the converged maximum-likelihood fit; they shrink with",
        "more rounds.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the four trainings, print the table and update the docs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="Newton rounds")
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave the docs as is"
    )
    arguments = parser.parse_args()
    load = os.getloadavg()[0]
    pooled = pooled_coefficients()
    rows = []
    with tempfile.TemporaryDirectory(prefix="flower-bench-") as root:
        network = LocalNetwork(Path(root))
        superlink = None
        supernodes: list[SuperNodeSupervisor] = []
        try:
            network.start_hub()
            network.set_up_lung_study()
            superlink = start_superlink(network)
            network.start_stations()
            tasks = {}
            for mode, setting in (
                ("SecAgg+", ""),
                ("plain", ", secure_aggregation = false"),
            ):
                query = (
                    f"SELECT train(logistic, {FORMULA}, rounds = {arguments.rounds}"
                    f"{setting}) FROM lung"
                )
                run = platform_run(network, query)
                tasks[mode] = run["task_id"]
                rows.append(_row(f"platform, {mode}", run, pooled))
                print(rows[-1], flush=True)
            for station in network.stations:
                network.stop_station(station.name)
            restarted = datetime.now(UTC)
            supernodes = start_supernodes(network)
            wait_for_new_sessions(superlink, restarted, timeout=300)
            for mode, task_id in tasks.items():
                run = bare_run(network, task_id)
                rows.append(_row(f"bare Flower, {mode}", run, pooled))
                print(rows[-1], flush=True)
        finally:
            for supervisor in supernodes:
                supervisor.stop()
            network.stop()
            if superlink is not None:
                superlink.stop()
    section = render(rows, arguments.rounds, load)
    print(section)
    if not arguments.no_write:
        write_section("flower-rounds", section)


def _row(name: str, run: dict[str, Any], pooled: dict[str, float]) -> dict[str, Any]:
    return {
        "name": name,
        "seconds": run["seconds"],
        "per_exchange": per_exchange(run["result"]),
        "difference": max_difference(run["result"], pooled),
    }


if __name__ == "__main__":
    sys.exit(main())

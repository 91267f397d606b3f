"""Time the `overlapping_filters` check: one query with the rule on and off.

Usage: ``python benchmarks/overlapping_filters.py [--repeats N]``

Starts a hub and three stations on 127.0.0.1 with the NCCTG lung data and
the default rules, releases ten different queries so that the rule's window
of 10 is full, then runs ``QUERY`` N times with the rule on (45 pairs of
earlier queries, for the rows and for age: 90 triples) and N times with
``overlapping_filters_window=0``, alternating. Prints the median time from approval to
result and the MPC part as logged by station-a, and writes them to
docs/benchmarks.md between this script's markers.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import mpyc
from benchmark_docs import machine, write_section
from query_latency import wait_fast

from linksight.network import LocalNetwork

QUERY = "SELECT count(*), mean(age) FROM lung WHERE ph.ecog >= 1 GROUP BY sex"
# Ten released queries whose pairs the checked query is combined with.
HISTORY = [
    "SELECT count(*) FROM lung GROUP BY sex",
    "SELECT mean(age), var(age) FROM lung GROUP BY sex",
    "SELECT count(*), mean(age) FROM lung WHERE ph.ecog >= 2 GROUP BY sex",
    "SELECT count(*) FROM lung WHERE age >= 65",
    "SELECT mean(time) FROM lung WHERE status == 2",
    "SELECT count(*) FROM lung WHERE ph.ecog <= 1 and age >= 60",
    "SELECT count(*) FROM lung WHERE ph.karno >= 80",
    "SELECT count(*) FROM lung WHERE age >= 50 and age < 70",
    "SELECT count(*) FROM lung WHERE status == 2 and sex == 2",
    "SELECT mean(age) FROM lung WHERE status == 1",
]
MPC_SECONDS = re.compile(r"request (\d+), status \w+, [0-9.]+ s \(MPC ([0-9.]+) s\)")


def run_query(network: LocalNetwork, query: str, purpose: str) -> tuple[str, float]:
    """Run one query to its end; return its request id and approval-to-result s."""
    request = network.submit(query, purpose=purpose)
    network.approve_all(request["id"])
    approved = time.perf_counter()
    final = wait_fast(network, request["id"])
    seconds = time.perf_counter() - approved
    status = network.result(request["id"])["result"]["status"]
    if final["state"] != "completed" or status != "released":
        raise SystemExit(
            f"{query!r} ended {final['state']} with status {status}, but the "
            "benchmark needs every query released"
        )
    return str(request["id"]), seconds


def time_rule(repeats: int) -> dict[str, dict[str, list[float]]]:
    """Return approval-to-result and MPC seconds per run, rule on and off."""
    timings: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="linksight-bench-") as root:
        network = LocalNetwork(Path(root))
        try:
            network.start_hub()
            network.set_up_lung_study()
            network.start_stations()
            for query in HISTORY:
                run_query(network, query, "benchmark history")
            ids: dict[str, list[str]] = {"on": [], "off": []}
            totals: dict[str, list[float]] = {"on": [], "off": []}
            # Runs alternate between the settings, so that other work on the
            # machine slows both alike.
            current = 10  # the default window
            for run in range(repeats):
                for setting, window in (("on", 10), ("off", 0)):
                    if window != current:
                        network.set_rules(overlapping_filters_window=window)
                        current = window
                    request_id, seconds = run_query(
                        network, QUERY, f"benchmark {setting} {run + 1}"
                    )
                    ids[setting].append(request_id)
                    totals[setting].append(seconds)
                    print(f"rule {setting}, run {run + 1}: {seconds:.2f} s", flush=True)
            log = (Path(root) / "logs" / "station-a.log").read_text()
            mpc = {request: float(s) for request, s in MPC_SECONDS.findall(log)}
        finally:
            network.stop()
    for setting in ("on", "off"):
        timings[setting] = {
            "total": totals[setting],
            "mpc": [mpc[request] for request in ids[setting] if request in mpc],
        }
    return timings


def main() -> None:
    """Run the benchmark, print it, and record it in docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting")
    arguments = parser.parse_args()

    load_before = os.getloadavg()[0]
    timings = time_rule(arguments.repeats)
    medians = {
        setting: {
            kind: statistics.median(values) if values else float("nan")
            for kind, values in measures.items()
        }
        for setting, measures in timings.items()
    }
    runs = "\n".join(
        f"| {run + 1} | {on:.2f} | {off:.2f} | {on_mpc:.2f} | {off_mpc:.2f} |"
        for run, (on, off, on_mpc, off_mpc) in enumerate(
            zip(
                timings["on"]["total"],
                timings["off"]["total"],
                timings["on"]["mpc"],
                timings["off"]["mpc"],
                strict=False,
            )
        )
    )
    extra_total = medians["on"]["total"] - medians["off"]["total"]
    extra_mpc = medians["on"]["mpc"] - medians["off"]["mpc"]
    text = f"""\
## Overlapping-filters check: extra time per query

Command: `python benchmarks/overlapping_filters.py --repeats {arguments.repeats}`
Machine: {machine(f"MPyC {mpyc.__version__}")}
Date: {datetime.now(UTC):%Y-%m-%d}
Load average (1 min) when the run started: {load_before:.1f}; other work on
the machine shares its two cores, so an idle machine gives lower times.

Query `{QUERY}` on the NCCTG lung data split over three stations, after
ten other released queries, so that the rule's default window of 10 is
full: 45 pairs of earlier queries, for the rows and for age, 90 triples.
Medians of {arguments.repeats} runs per setting, the settings alternating.

| run | approval to result, on (s) | off (s) | MPC at station-a, on (s) | off (s) |
| --- | --- | --- | --- | --- |
{runs}

| rule | approval to result (s) | MPC at station-a (s) |
| --- | --- | --- |
| on (window 10) | {medians["on"]["total"]:.2f} | {medians["on"]["mpc"]:.2f} |
| off (window 0) | {medians["off"]["total"]:.2f} | {medians["off"]["mpc"]:.2f} |
| extra with the rule | {extra_total:.2f} | {extra_mpc:.2f} |

Under a changing load the runs spread widely, so compare the medians with
the spread of the runs above before taking the difference as the cost.
"""
    print(text)
    write_section("overlapping-filters", text)


if __name__ == "__main__":
    main()

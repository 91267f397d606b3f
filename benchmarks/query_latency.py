"""Time a federated query from approval to result, beside pandas on pooled data.

Usage: ``python benchmarks/query_latency.py [--repeats N]``

Starts a hub and three stations on 127.0.0.1 with the NCCTG lung data, runs
``SELECT mean(age), var(age) FROM lung GROUP BY sex`` N times, and measures
the time from the last steward's approval to the result being available to
the scientist, and the MPC part of it as logged by a station. The same
statistic by pandas on the pooled data is timed in the same run. Prints the
figures and writes them to docs/benchmarks.md between this script's markers,
leaving the rest of that file as it is.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
import timeit
from datetime import UTC, datetime
from pathlib import Path

import mpyc
from benchmark_docs import machine, write_section

from linksight.network import LocalNetwork, lung_data, lung_schema_path
from linksight.query import parse_query
from linksight.schema import load_schema
from station.aggregates import fixed_point_size

QUERY = "SELECT mean(age), var(age) FROM lung GROUP BY sex"


def time_federated(repeats: int) -> tuple[list[float], list[float]]:
    """Return approval-to-result seconds and logged MPC seconds per run."""
    with tempfile.TemporaryDirectory(prefix="linksight-bench-") as root:
        network = LocalNetwork(Path(root))
        try:
            network.start_hub()
            network.set_up_lung_study()
            network.start_stations()
            totals = []
            for run in range(repeats):
                request = network.submit(QUERY, purpose=f"benchmark run {run + 1}")
                network.approve_all(request["id"])
                approved = time.perf_counter()
                final = wait_fast(network, request["id"])
                totals.append(time.perf_counter() - approved)
                if final["state"] != "completed":
                    raise SystemExit(f"run {run + 1} ended {final['state']}")
                print(f"run {run + 1}: {totals[-1]:.2f} s", flush=True)
            log = (Path(root) / "logs" / "station-a.log").read_text()
            mpc = [float(s) for s in re.findall(r"\(MPC ([0-9.]+) s\)", log)]
        finally:
            network.stop()
    return totals, mpc


def wait_fast(network: LocalNetwork, request_id: str) -> dict:
    """Poll the request every 20 ms so that polling adds little to the time."""
    while True:
        request = network.call(
            "GET", f"/requests/{request_id}", network.scientist_token
        )
        if request["state"] not in ("approved", "running"):
            return request
        time.sleep(0.02)


def time_pandas() -> float:
    """Return seconds per run of the same statistic on the pooled data."""
    frame = lung_data()
    runs = 200
    seconds = timeit.timeit(
        lambda: frame.groupby("sex")["age"].agg(["mean", "var", "count"]),
        number=runs,
    )
    return seconds / runs


def main() -> None:
    """Run the benchmark, print it, and record it in docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="query runs")
    arguments = parser.parse_args()

    load_before = os.getloadavg()[0]
    totals, mpc = time_federated(arguments.repeats)
    pandas_seconds = time_pandas()
    median_total = statistics.median(totals)
    median_mpc = statistics.median(mpc) if mpc else float("nan")
    ratio = median_total / pandas_seconds
    fraction_bits = fixed_point_size(
        parse_query(QUERY), load_schema(lung_schema_path()), 3
    )
    rows = "\n".join(
        f"| {i + 1} | {t:.2f} | {m:.2f} |"
        for i, (t, m) in enumerate(zip(totals, mpc, strict=False))
    )
    text = f"""\
## Query latency: mean and variance of age by sex

Command: `python benchmarks/query_latency.py --repeats {arguments.repeats}`
Machine: {machine(f"MPyC {mpyc.__version__}")}
Date: {datetime.now(UTC):%Y-%m-%d}
Load average (1 min) when the run started: {load_before:.1f}; other work on
the machine shares its two cores, so an idle machine gives lower times.

Query `{QUERY}` on the NCCTG lung data (228 rows)
split over three stations, all processes on this machine. Time from the
last steward's approval to the result being readable by the scientist;
stations poll the hub every 0.5 s, so up to 0.5 s of each run is waiting
for the next poll.

| run | approval to result (s) | MPC at station-a (s) |
| --- | --- | --- |
{rows}

| measure | seconds |
| --- | --- |
| federated, median approval to result | {median_total:.3f} |
| federated, median MPC part | {median_mpc:.3f} |
| pandas on the pooled data, per run | {pandas_seconds:.6f} |
| ratio federated / pandas | {ratio:,.0f} |

The ratio is large because the federated query's time is fixed costs
(polling, starting an MPC party process, connecting three parties, secure
division and comparison on {2 * fraction_bits}-bit fixed-point numbers with
{fraction_bits} fractional bits), not work per row.
"""
    print(text)
    write_section("query-latency", text)


if __name__ == "__main__":
    main()

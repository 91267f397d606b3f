"""Time a logistic fit on a vertical join of three stations, beside statsmodels.

Usage: ``python benchmarks/vertical_logit.py [--rows 1000] [--threads 2]``

Three MPC party processes (``python -m station.mpc_party``) run the vertical
join protocol of ``station/secure_join.py`` and the logistic fit of
``station/secure_join_logistic.py`` on this machine. Each station has
``--rows`` persons of a population of rows / 0.85, drawn at random, and
some of the columns: station A x1, station B x2, station C x3 and the 0/1
response y. The parties join on the person key and fit y ~ x1 + x2 + x3
by Newton's method, with every row's probability computed under MPC. The
time runs from the parties' start to the last one's exit. statsmodels'
Logit on pandas' inner merge is timed in the same run, and the federated
coefficients and standard errors are checked against it (1e-4 relative).

Prints the figures and writes them to docs/benchmarks.md between this
script's markers, leaving the rest of that file as it is.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime
from typing import Any

import mpyc
import numpy as np
import pandas as pd
import statsmodels.api as sm
from benchmark_docs import machine, write_section
from vertical_ols import run_federated

from linksight.network import free_port
from station.logistic import (
    DEADLINE_MARGIN_SECONDS,
    MAX_ITERATIONS,
    STEP_TOLERANCE,
    fixed_point_size,
)

COVARIATES = ["x1", "x2", "x3"]
STATIONS = {
    "station-a": ["x1"],
    "station-b": ["x2"],
    "station-c": ["x3"],
}
# Every covariate's declared maximum absolute value.
SCALE = 10.0
TOLERANCE = 1e-4


def make_population(rows: int, seed: int = 2026) -> pd.DataFrame:
    """Return rows / 0.85 synthetic persons with a key, x1..x3 and a 0/1 y."""
    rng = np.random.default_rng(seed)
    size = round(rows / 0.85)
    frame = pd.DataFrame({"person": [f"P{i:08d}" for i in range(size)]})
    for name in COVARIATES:
        frame[name] = rng.uniform(-SCALE, SCALE, size)
    eta = -0.5 + frame[COVARIATES] @ np.array([0.3, -0.2, 0.1])
    frame["y"] = (rng.uniform(size=size) < 1 / (1 + np.exp(-eta))).astype(float)
    return frame


def station_frames(population: pd.DataFrame, rows: int) -> dict[str, pd.DataFrame]:
    """Return each station's rows: `rows` random persons and its columns."""
    rng = np.random.default_rng(7)
    frames = {}
    for station, columns in STATIONS.items():
        chosen = rng.choice(len(population), size=rows, replace=False)
        extra = ["y"] if station == "station-c" else []
        frames[station] = population.iloc[chosen][["person", *columns, *extra]]
    return frames


def party_configs(
    frames: dict[str, pd.DataFrame], threads: int
) -> list[dict[str, Any]]:
    """Return the input of each MPC party."""
    parties = [
        {
            "station": name,
            "organisation": name,
            "host": "127.0.0.1",
            "port": free_port(),
        }
        for name in STATIONS
    ]
    layout = []
    for index, (station, columns) in enumerate(STATIONS.items()):
        indicators = [f"{station}_where"] + (["y"] if station == "station-c" else [])
        layout.append(
            {
                "owner": index,
                "indicators": indicators,
                "values": columns,
                "scales": [SCALE] * len(columns),
                "filtered": False,
            }
        )
    logit = {
        "response": "y",
        "terms": COVARIATES,
        "present": [],
        "factors": [],
        "min_residual_df": 10,
        "max_parameter_fraction": 0.1,
        "min_level_count": 10,
        "step_tolerance": STEP_TOLERANCE,
        "max_iterations": MAX_ITERATIONS,
        "deadline_margin_seconds": DEADLINE_MARGIN_SECONDS,
    }
    configs = []
    for index, (station, frame) in enumerate(frames.items()):
        indicators = [[1.0] * len(frame)]
        if station == "station-c":
            indicators.append(frame["y"].tolist())
        configs.append(
            {
                "parties": parties,
                "index": index,
                "bind_host": "127.0.0.1",
                "timeout_seconds": 7200,
                "analysis": "join",
                "task_id": "benchmark",
                "comparer": 0,
                "layout": layout,
                "min_count": 10,
                "padding_max": 100,
                "threads": threads,
                "fraction_bits": fixed_point_size(len(parties)),
                "keys": frame["person"].tolist(),
                "indicators": indicators,
                "values": [
                    (frame[column] / SCALE).tolist() for column in STATIONS[station]
                ],
                "logit": logit,
            }
        )
    return configs


def run_pooled(frames: dict[str, pd.DataFrame]) -> tuple[float, Any, int]:
    """Merge and fit on the pooled data; return the time, the fit and n."""
    started = time.monotonic()
    merged = None
    for frame in frames.values():
        merged = frame if merged is None else merged.merge(frame, on="person")
    if merged is None:
        raise SystemExit("no station frames to merge")
    design = sm.add_constant(merged[COVARIATES])
    fit = sm.Logit(merged["y"], design).fit(disp=0)
    return time.monotonic() - started, fit, len(merged)


def check(output: dict[str, Any], fit: Any) -> float:
    """Return the largest relative difference from statsmodels; raise past 1e-4."""
    if output.get("status") != "released":
        raise SystemExit(f"the federated fit was not released: {output}")
    values = output["values"]
    federated = np.array(values["coefficients"] + list(np.sqrt(values["variances"])))
    pooled = np.concatenate([fit.params.to_numpy(), fit.bse.to_numpy()])
    difference = float(np.max(np.abs(federated - pooled) / np.abs(pooled)))
    if difference > TOLERANCE:
        raise SystemExit(
            f"the federated fit differs from statsmodels by {difference:.2e} "
            f"relative, above {TOLERANCE}"
        )
    return difference


def main() -> None:
    """Run the benchmark, print it, and record it in docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=1000, help="persons per station (default 1000)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="threads per party for the blinding (default 2)",
    )
    arguments = parser.parse_args()
    load = os.getloadavg()[0]
    population = make_population(arguments.rows)
    frames = station_frames(population, arguments.rows)
    seconds, outputs = run_federated(party_configs(frames, arguments.threads))
    for output in outputs:
        if not output.get("ok"):
            raise SystemExit(f"a party failed: {output.get('error')}")
    pooled_seconds, fit, joined = run_pooled(frames)
    difference = check(outputs[0], fit)
    timings = outputs[0]["timings"]
    iterations = outputs[0]["values"]["iterations"]
    rows = [
        ("persons per station", f"{arguments.rows:,}"),
        ("joined persons", f"{joined:,}"),
        ("Newton steps", f"{iterations}"),
        ("federated wall time, start to last exit (s)", f"{seconds:.1f}"),
        ("  blinding ring (s)", f"{timings['blinding_seconds']:.1f}"),
        ("  alignment under MPC (s)", f"{timings['alignment_seconds']:.1f}"),
        ("  Newton steps and checks (s)", f"{timings['aggregation_seconds']:.1f}"),
        (
            "CPU time of the three parties (s)",
            " + ".join(f"{o['cpu_seconds']:.1f}" for o in outputs),
        ),
        (
            "peak memory per party (MB)",
            ", ".join(f"{o['peak_rss_mb']:.0f}" for o in outputs),
        ),
        ("pandas merge and statsmodels Logit (s)", f"{pooled_seconds:.3f}"),
        ("ratio federated / pooled", f"{seconds / pooled_seconds:,.0f}"),
        ("largest relative difference from statsmodels", f"{difference:.1e}"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    command = (
        f"python benchmarks/vertical_logit.py --rows {arguments.rows} "
        f"--threads {arguments.threads}"
    )
    text = f"""## Vertical join: logistic regression with 3 covariates over 3 stations

Command: `{command}`
Machine: {machine(f"MPyC {mpyc.__version__}")}
Date: {datetime.now(UTC).date().isoformat()}
Load average (1 min) when the run started: {load:.1f}; other work on
the machine shares its two cores, so an idle machine gives lower times.

Three stations each hold {arguments.rows:,} random persons of a synthetic
population of {len(population):,} and one covariate each (C also the 0/1
response). The three MPC parties join on the person key with padding of up
to 100 dummy rows per station and fit y ~ x1 + x2 + x3 by Newton's method,
every row's probability computed under MPC. Each step after the first
costs about 14 secure truncations per joined row, so the time grows with
the joined rows times the steps. With two cores, the wall time on an idle
machine is at least half the parties' summed CPU time.

| measure | value |
| --- | --- |
{table}
"""
    print(text)
    write_section("vertical-logit", text)


if __name__ == "__main__":
    main()

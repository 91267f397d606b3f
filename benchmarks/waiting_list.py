"""Time waiting-list deduplication at regional scale, beside pandas.

Usage: ``python benchmarks/waiting_list.py [--sizes 100000 1000000] [--threads 1]``

For each size N, three MPC party processes (``python -m station.mpc_party``)
run the overlap protocol on this machine over three lists of N distinct
nine-digit identifiers each. The overlap is known: N/20 identifiers are on
all three lists, N/10 on each pair of lists only, the rest on one list. The
parties are started together and the time is taken from their start to the
last one's exit; each party reports its peak memory (maximum resident set
size). The same figures by pandas on the concatenated lists are timed in
the same run, and every federated figure is checked against them.

Prints the figures and writes them to docs/benchmarks.md between this
script's markers, leaving the rest of that file as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mpyc
import numpy as np
import pandas as pd
from benchmark_docs import DOCS, machine, write_section

from linksight.network import free_port
from linksight.overlap_reference import pooled_overlap

STATIONS = ["station-a", "station-b", "station-c"]


def make_lists(size: int, seed: int = 2026) -> list[list[str]]:
    """Return three lists of `size` identifiers with the overlap described above."""
    everyone = size // 20
    pair = size // 10
    alone = size - everyone - 2 * pair
    total = everyone + 3 * pair + 3 * alone
    generator = np.random.default_rng(seed)
    numbers = generator.choice(900_000_000, size=total, replace=False) + 100_000_000
    ids = [f"{n:09d}" for n in numbers]
    blocks = {}
    start = 0
    for name, count in [
        ("abc", everyone),
        ("ab", pair),
        ("ac", pair),
        ("bc", pair),
        ("a", alone),
        ("b", alone),
        ("c", alone),
    ]:
        blocks[name] = ids[start : start + count]
        start += count
    return [
        [i for block, part in blocks.items() if letter in block for i in part]
        for letter in "abc"
    ]


def run_parties(
    lists: list[list[str]], threads: int, work_dir: Path, timeout: float
) -> tuple[float, list[dict[str, Any]]]:
    """Run the three parties and return the wall time and their outputs."""
    parties = [
        {"station": name, "organisation": name, "host": "127.0.0.1", "port": 0}
        for name in STATIONS
    ]
    for party in parties:
        party["port"] = free_port()
    inputs = []
    for index, own in enumerate(lists):
        config = {
            "parties": parties,
            "index": index,
            "bind_host": "127.0.0.1",
            "timeout_seconds": timeout,
            "analysis": "overlap",
            "task_id": "benchmark",
            "owners": [0, 1, 2],
            "comparer": 0,
            "cells": [""],
            "lists": [own],
            "invalid": [0],
            "min_count": 10,
            "history": [],
            "threads": threads,
            "padding_max": 100,
        }
        path = work_dir / f"party{index}.json"
        path.write_text(json.dumps(config))
        inputs.append(path)
    started = time.perf_counter()
    processes = []
    for index, path in enumerate(inputs):
        log = (work_dir / f"party{index}.log").open("w")
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "station.mpc_party",
                    str(path),
                    str(work_dir / f"out{index}.json"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    for process in processes:
        process.wait(timeout=timeout + 60)
    seconds = time.perf_counter() - started
    outputs = [
        json.loads((work_dir / f"out{index}.json").read_text())
        for index in range(len(lists))
    ]
    for index, output in enumerate(outputs):
        if not output.get("ok"):
            log = (work_dir / f"party{index}.log").read_text()[-2000:]
            raise SystemExit(f"party {index} failed: {output.get('error')}\n{log}")
    return seconds, outputs


def pandas_figures(lists: list[list[str]]) -> dict[str, int]:
    """Count the overlap figures with pandas on the concatenated lists.

    This is the plaintext baseline: one table of (identifier, list) rows, a
    bit mask per identifier, and the Venn regions counted from the masks.
    """
    sizes = [len(ids) for ids in lists]
    bits = np.repeat([1 << k for k in range(len(lists))], sizes)
    frame = pd.DataFrame({"id": [i for ids in lists for i in ids], "bit": bits})
    masks = frame.drop_duplicates().groupby("id", sort=False)["bit"].sum()
    regions = masks.value_counts()
    figures = {"unique": len(masks)}
    for k in range(1, len(lists) + 1):
        figures[f"exactly_{k}"] = sum(
            int(n) for mask, n in regions.items() if bin(mask).count("1") == k
        )
    return figures


def time_pooled(lists: list[list[str]]) -> tuple[float, list[dict[str, Any]]]:
    """Time the plaintext baseline and return it with the reference rows.

    The reference rows (:func:`pooled_overlap`, which every federated figure
    is checked against) are computed untimed, and the baseline's figures
    must equal them.
    """
    started = time.perf_counter()
    baseline = pandas_figures(lists)
    seconds = time.perf_counter() - started
    frames = {
        name: pd.DataFrame({"id": ids})
        for name, ids in zip(STATIONS, lists, strict=True)
    }
    rows = pooled_overlap(frames, "id")
    reference = {r["measure"]: r["persons"] for r in rows}
    for measure, value in baseline.items():
        if reference[measure] != value:
            raise SystemExit(
                f"pandas baseline {measure} is {value} but the reference count "
                f"is {reference[measure]}"
            )
    return seconds, rows


def check(outputs: list[dict[str, Any]], pooled: list[dict[str, Any]]) -> int:
    """Compare the federated figures with pandas and count the figures compared."""
    expected = {(row["measure"], row["lists"]): row["persons"] for row in pooled}
    output = outputs[0]
    compared = 0
    for figure, value in zip(output["figures"], output["values"], strict=True):
        if value is None:
            continue
        lists = ", ".join(STATIONS[i] for i in figure["lists"])
        reference = expected[(figure["measure"], lists)]
        if value != reference:
            raise SystemExit(
                f"{figure['measure']} ({lists}): federated {value} but pandas "
                f"{reference}"
            )
        compared += 1
    return compared


def measure(size: int, threads: int) -> dict[str, Any]:
    """Run one size and return its figures."""
    lists = make_lists(size)
    load_before = os.getloadavg()[0]
    pooled_seconds, pooled = time_pooled(lists)
    with tempfile.TemporaryDirectory(prefix="linksight-overlap-bench-") as root:
        seconds, outputs = run_parties(lists, threads, Path(root), timeout=1800)
    compared = check(outputs, pooled)
    unique = next(r["persons"] for r in pooled if r["measure"] == "unique")
    blinded = sum(o["elements_blinded"] for o in outputs)
    result = {
        "size": size,
        "threads": threads,
        "seconds": seconds,
        "protocol_seconds": max(o["timings"]["protocol_seconds"] for o in outputs),
        "blinding_seconds": max(o["timings"]["blinding_seconds"] for o in outputs),
        "counting_seconds": max(o["timings"]["counting_seconds"] for o in outputs),
        "peak_mb": max(o["peak_rss_mb"] for o in outputs),
        "cpu_seconds": [o["cpu_seconds"] for o in outputs],
        "blinded": blinded,
        "unique": unique,
        "compared": compared,
        "pooled_seconds": pooled_seconds,
        # Runnable processes on the machine, averaged over one minute, from
        # before the run and at its end: other work slows the parties down.
        "load": (load_before, os.getloadavg()[0]),
    }
    # On an idle machine the parties' CPU time is spread over the cores, but
    # no faster than the busiest party: an estimate, not a measurement.
    cores = os.cpu_count() or 1
    result["idle_estimate"] = max(
        sum(result["cpu_seconds"]) / cores, max(result["cpu_seconds"])
    )
    print(
        f"3 x {size:,}: {seconds:.1f} s wall ({result['blinding_seconds']:.1f} s "
        f"blinding), {blinded:,} scalar multiplications, peak "
        f"{result['peak_mb']:.0f} MB per party; pandas {pooled_seconds:.2f} s; "
        f"{compared} figures equal to pandas; CPU {result['cpu_seconds']} s, "
        f"idle-machine estimate {result['idle_estimate']:.1f} s",
        flush=True,
    )
    return result


def render(results: list[dict[str, Any]], command: str) -> str:
    """Return the markdown section for docs/benchmarks.md."""
    lines = [
        "## Waiting-list deduplication: three lists at regional scale",
        "",
        f"Command: `{command}`",
        f"Machine: {machine(f'MPyC {mpyc.__version__}')}",
        f"Date: {datetime.now(UTC).date().isoformat()}",
        "",
        "Three MPC party processes on this machine run the overlap protocol",
        "(hash to ristretto255, blinding by every station in turn with",
        "shuffles, counting at one party, figures checked and opened in MPC)",
        "over three lists of N nine-digit identifiers: N/20 on all three lists,",
        "N/10 on each pair only, the rest on one list. Wall time runs from",
        "starting the parties to the last one's exit; memory is the largest",
        "peak resident set of the three. pandas computes the same figures on",
        "the concatenated lists (a bit mask per identifier, then the counts",
        "of each mask), and every released figure equals the reference count",
        "on the pooled lists.",
        "",
        "| lists | threads per party | wall (s) | blinding (s) | counting and MPC "
        "(s) | scalar multiplications | peak memory per party (MB) | "
        "pandas (s) | ratio | load before, after | CPU per party (s) | "
        "idle estimate (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        ratio = r["seconds"] / r["pooled_seconds"]
        lines.append(
            f"| 3 x {r['size']:,} | {r['threads']} | {r['seconds']:.1f} | "
            f"{r['blinding_seconds']:.1f} | {r['counting_seconds']:.1f} | "
            f"{r['blinded']:,} | {r['peak_mb']:.0f} | {r['pooled_seconds']:.2f} | "
            f"{ratio:,.0f} | {r['load'][0]:.1f}, {r['load'][1]:.1f} | "
            f"{', '.join(f'{c:.0f}' for c in r['cpu_seconds'])} | "
            f"{r['idle_estimate']:.0f} |"
        )
    largest = results[-1]
    rate = largest["blinded"] / sum(largest["cpu_seconds"])
    lines += [
        "",
        "Targets: 3 x 100,000 under 15 s and 3 x 1,000,000 under 2 minutes,",
        "with under 2 GB per station. Memory is within target; time is not.",
        f"In the largest run the parties did {rate:,.0f} scalar multiplications",
        "per CPU second, hashing and all other work included, so the 9 x N",
        "multiplications need about 9 x N / (2 x that rate) seconds on the",
        "two cores. Meeting the time targets needs fewer multiplications per",
        "identifier or a faster implementation of the group operation, not",
        "tuning of the code around it.",
        "",
        "Every identifier is multiplied by one secret scalar at each of the",
        "three stations, so 3 x N identifiers cost about 9 x N variable-base",
        "scalar multiplications (plus up to 100 padding elements per list),",
        "and libsodium's `crypto_scalarmult_ristretto255` is the bulk of the",
        "time. The load column is the one-minute load average of the machine",
        "(2 cores) before and after each run; above 3 (the three parties),",
        "other processes were competing for the cores and the times are",
        "longer than on an idle machine. The idle estimate is the larger of",
        "the parties' CPU time divided by the cores and the busiest party's",
        "CPU time: what the wall time would be if the three parties had the",
        "machine to themselves, an estimate and not a measurement.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse the arguments, run every size and write the docs section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[100_000, 1_000_000],
        help="identifiers per list, one run per size",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="blinding threads per party"
    )
    parser.add_argument(
        "--no-docs", action="store_true", help="print only; leave the docs alone"
    )
    arguments = parser.parse_args()
    results = [measure(size, arguments.threads) for size in arguments.sizes]
    if not arguments.no_docs:
        command = "python benchmarks/waiting_list.py " + " ".join(sys.argv[1:])
        write_section("waiting-list", render(results, command.strip()))
        print(f"wrote {DOCS}")


if __name__ == "__main__":
    main()

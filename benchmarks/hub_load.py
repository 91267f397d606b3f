"""Load the governance hub with concurrent scientists on 127.0.0.1.

Usage: ``python benchmarks/hub_load.py [--clients 50] [--iterations 10]
[--max-seconds 120]``

Starts a real hub process (``linksight hub init``, then ``linksight hub
serve``: one uvicorn worker over SQLite) on a free loopback port, registers
the lung dataset for three stations, creates one scientist per client, and
starts all clients at once. Each client repeats what a scientist does in a
notebook: list collaborations, read the dataset schemas, submit a query,
poll its state, and list their own requests. A client stops after its
iterations or once ``--max-seconds`` have passed, whichever comes first,
and every request times out after 30 s, so the run always ends by itself.

Prints the requests, errors, throughput and latency percentiles, and writes
them to docs/benchmarks.md between this script's markers, leaving the rest
of that file as it is. An error is a failed connection, a timeout, a status
other than the one expected, or a submitted query in another state than
awaiting_approval. The script exits with status 1 if there was any error.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import sqlite3
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn
from benchmark_docs import machine, write_section
from nacl.public import PrivateKey

from governance.concurrency import MAX_CONCURRENT_REQUESTS
from linksight.network import LocalNetwork, lung_schema_path
from linksight.result_encryption import encode_key
from linksight.schema import load_schema

COLLABORATION = "lung-study"
HOSPITALS = {"st-a": "Hospital A", "st-b": "Hospital B", "st-c": "Hospital C"}
RESEARCH = "Research Institute"
QUERIES = [
    "SELECT count(*) FROM lung GROUP BY sex",
    "SELECT mean(age), var(age) FROM lung GROUP BY sex",
    "SELECT count(*), mean(age) FROM lung WHERE ph.ecog >= 2 GROUP BY sex",
    "SELECT crosstab(sex, ph.ecog) FROM lung",
]
REQUEST_TIMEOUT_SECONDS = 30.0
STEPS = [
    "GET /collaborations",
    "GET /collaborations/{name}/datasets",
    "POST /requests",
    "GET /requests/{id}",
    "GET /requests",
]


@dataclass(frozen=True)
class Sample:
    """One request of a client: its step, duration, and error if any."""

    step: str
    seconds: float
    error: str | None


def set_up_hub(network: LocalNetwork, clients: int) -> list[str]:
    """Create the lung study with three stations; return one token per scientist."""
    admin = network.admin_token
    schema = load_schema(lung_schema_path()).model_dump(mode="json")
    station_tokens = []
    network.call("POST", "/organisations", admin, json={"name": RESEARCH})
    for station, organisation in HOSPITALS.items():
        network.call("POST", "/organisations", admin, json={"name": organisation})
        created = network.call(
            "POST",
            "/stations",
            admin,
            json={"name": station, "organisation": organisation},
        )
        network.call(
            "PUT",
            "/stations/me",
            created["token"],
            json={"mpc_host": "127.0.0.1", "mpc_port": 1, "version": "benchmark"},
        )
        station_tokens.append(created["token"])
    network.call(
        "POST",
        "/collaborations",
        admin,
        json={"name": COLLABORATION, "members": [*HOSPITALS.values(), RESEARCH]},
    )
    for token in station_tokens:
        network.call(
            "PUT",
            f"/collaborations/{COLLABORATION}/datasets/lung",
            token,
            json={"schema": schema},
        )
    tokens = []
    for index in range(clients):
        user = network.call(
            "POST",
            "/users",
            admin,
            json={
                "name": f"scientist-{index + 1:03d}",
                "organisation": RESEARCH,
                "roles": ["scientist"],
            },
        )
        # A submission needs a registered result key; the stations would seal
        # results to it.
        network.call(
            "PUT",
            "/users/me/result-key",
            user["token"],
            json={"public_key": encode_key(PrivateKey.generate().public_key)},
        )
        tokens.append(user["token"])
    return tokens


async def timed(
    client: httpx.AsyncClient,
    samples: list[Sample],
    step: str,
    method: str,
    path: str,
    expected: int = 200,
    **kwargs: object,
) -> httpx.Response | None:
    """Send one request and record it; return the response unless it failed."""
    started = time.perf_counter()
    try:
        response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as error:
        seconds = time.perf_counter() - started
        samples.append(Sample(step, seconds, f"{type(error).__name__}: {error}"))
        return None
    seconds = time.perf_counter() - started
    if response.status_code != expected:
        error = f"status {response.status_code}: {response.text[:200]}"
        samples.append(Sample(step, seconds, error))
        return None
    samples.append(Sample(step, seconds, None))
    return response


async def scientist(
    url: str,
    token: str,
    iterations: int,
    deadline: float,
    start: asyncio.Event,
    samples: list[Sample],
    seed: int,
) -> None:
    """Run one scientist's rounds until `iterations` or `deadline`."""
    choose = random.Random(seed)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS
    ) as client:
        await start.wait()
        for iteration in range(iterations):
            if time.monotonic() >= deadline:
                return
            await timed(client, samples, STEPS[0], "GET", "/collaborations")
            await timed(
                client,
                samples,
                STEPS[1],
                "GET",
                f"/collaborations/{COLLABORATION}/datasets",
            )
            body = {
                "collaboration": COLLABORATION,
                "query": choose.choice(QUERIES),
                "purpose": f"hub load benchmark, round {iteration + 1}",
            }
            submitted = await timed(
                client, samples, STEPS[2], "POST", "/requests", expected=201, json=body
            )
            if submitted is not None:
                request_id = submitted.json()["id"]
                polled = await timed(
                    client, samples, STEPS[3], "GET", f"/requests/{request_id}"
                )
                state = polled.json()["state"] if polled is not None else None
                if state not in (None, "awaiting_approval"):
                    error = f"request {request_id} is {state}, not awaiting_approval"
                    samples.append(Sample("request state", 0.0, error))
            await timed(client, samples, STEPS[4], "GET", "/requests")


async def run_load(
    url: str, tokens: list[str], iterations: int, max_seconds: float
) -> tuple[list[Sample], float]:
    """Run every scientist at once; return the samples and the wall time."""
    samples: list[Sample] = []
    start = asyncio.Event()
    deadline = time.monotonic() + max_seconds
    tasks = [
        asyncio.create_task(
            scientist(url, token, iterations, deadline, start, samples, seed)
        )
        for seed, token in enumerate(tokens)
    ]
    # Let every client task reach the start line before the clock starts.
    await asyncio.sleep(0.5)
    started = time.perf_counter()
    start.set()
    # A request still running at the deadline gets its own timeout to end.
    await asyncio.wait_for(
        asyncio.gather(*tasks), timeout=max_seconds + REQUEST_TIMEOUT_SECONDS + 5
    )
    return samples, time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `values` (not empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


# The hub's log line for each request, written by governance/app.py.
LOG_LINE = re.compile(r"(GET|POST) (\S+) -> \d{3} in ([0-9.]+) ms")
STEP_PATHS = [
    (STEPS[0], re.compile(r"GET /collaborations$")),
    (STEPS[1], re.compile(r"GET /collaborations/[^/]+/datasets$")),
    (STEPS[2], re.compile(r"POST /requests$")),
    (STEPS[3], re.compile(r"GET /requests/\d+$")),
    (STEPS[4], re.compile(r"GET /requests$")),
]


def server_times(log: Path, offset: int) -> dict[str, list[float]]:
    """Return the hub's handling times in seconds per step, from its log."""
    with log.open("rb") as file:
        file.seek(offset)
        text = file.read().decode("utf-8", errors="replace")
    times: dict[str, list[float]] = {step: [] for step in STEPS}
    for method, path, milliseconds_text in LOG_LINE.findall(text):
        request = f"{method} {path}"
        for step, pattern in STEP_PATHS:
            if pattern.match(request):
                times[step].append(float(milliseconds_text) / 1000)
    return times


def milliseconds(values: list[float], fraction: float) -> str:
    """Format a percentile of `values` in whole milliseconds, or "-" if empty."""
    return f"{percentile(values, fraction) * 1000:.0f}" if values else "-"


def paragraph(text: str) -> str:
    """Wrap one paragraph of markdown at 76 columns."""
    return textwrap.fill(" ".join(text.split()), width=76)


def report(
    samples: list[Sample],
    seconds: float,
    server: dict[str, list[float]],
    arguments: argparse.Namespace,
    load_average: float,
) -> str:
    """Return the markdown section with the figures and what they mean."""
    timed_samples = [sample for sample in samples if sample.step in STEPS]
    latencies = [sample.seconds for sample in timed_samples]
    errors = [sample for sample in samples if sample.error is not None]
    handling = [value for values in server.values() for value in values]

    rows = []
    for step in STEPS:
        values = [s.seconds for s in timed_samples if s.step == step]
        failed = sum(1 for s in timed_samples if s.step == step and s.error)
        rows.append(
            f"| `{step}` | {len(values)} | {failed} | {milliseconds(values, 0.5)} | "
            f"{milliseconds(values, 0.95)} | {milliseconds(values, 0.99)} | "
            f"{milliseconds(server[step], 0.5)} | {milliseconds(server[step], 0.95)} |"
        )

    error_lines = [f"- {e.step}: {e.error}" for e in errors[:5]]
    if len(errors) > 5:
        error_lines.append(f"- ... and {len(errors) - 5} more")

    command = (
        f"python benchmarks/hub_load.py --clients {arguments.clients} "
        f"--iterations {arguments.iterations} --max-seconds {arguments.max_seconds:g}"
    )
    clients = arguments.clients
    setup = paragraph(
        f"""One hub process (`linksight hub serve`: one uvicorn worker, SQLite)
        on 127.0.0.1, with the lung study registered for three stations and
        {clients} scientists. All clients start together, each with its own
        HTTP connection, and repeat {arguments.iterations} times, with no
        pause: list collaborations, read the dataset schemas, submit one of
        four queries, read the request's state, and list their own requests.
        Nothing approves the requests, so each scientist's list grows to
        {arguments.iterations} requests awaiting approval. The load average
        over the minute before the run was {load_average:.1f}."""
    )
    if load_average >= 1:
        setup += "\n\n" + paragraph(
            """Other work was running on this machine and shared its cores
            with the benchmark, so an idle machine may give better figures."""
        )

    measures = [
        ("requests", f"{len(timed_samples)}"),
        ("errors", f"{len(errors)}"),
        ("wall time", f"{seconds:.1f} s"),
        ("throughput", f"{len(timed_samples) / seconds:.0f} requests/s"),
        ("latency p50", f"{milliseconds(latencies, 0.5)} ms"),
        ("latency p95", f"{milliseconds(latencies, 0.95)} ms"),
        ("latency p99", f"{milliseconds(latencies, 0.99)} ms"),
        ("hub handling time p50", f"{milliseconds(handling, 0.5)} ms"),
        ("hub handling time p95", f"{milliseconds(handling, 0.95)} ms"),
    ]

    meaning = [
        """Latency is measured by each client, from sending a request to
        reading the whole response. The hub handling time is the time the hub
        logs for each request: from the moment the request is admitted into
        the application to the moment its response is ready.""",
        f"""The hub admits {MAX_CONCURRENT_REQUESTS} requests at a time
        (`governance/concurrency.py`) and queues the others in its event
        loop. Its endpoints are synchronous functions that FastAPI runs in
        worker threads, and Python's global interpreter lock lets one thread
        run Python code at a time. Every database transaction starts with
        `BEGIN IMMEDIATE`, reads included (`governance/db.py`), so the
        admitted requests take SQLite's write lock one after another, and
        each commit waits for the file to be synced to disk. The hub
        therefore works through about one request at a time, so throughput
        is about one over the median handling time. A request's latency
        beyond its handling time is time spent in the queue, behind the
        requests of the other {clients - 1} clients. The clients run in one
        Python process on the same {os.cpu_count()} cores as the hub, so
        their own work is in the figures too.""",
        """A submission does the most work: the hub parses the query, checks
        it against the collaboration's rules and the scientist's budget, and
        appends records to the hash-chained audit log. Errors should be 0:
        a failed request is a defect, not a sign of load. This run does not
        measure a hub on PostgreSQL or with several workers, nor stations
        polling for tasks at the same time.""",
    ]

    software = (
        f"SQLite {sqlite3.sqlite_version}",
        f"uvicorn {uvicorn.__version__}",
        f"httpx {httpx.__version__}",
    )
    lines = [
        f"## Hub load: {clients} scientists at once",
        "",
        f"Command: `{command}`",
        f"Machine: {machine(*software)}",
        f"Date: {datetime.now(UTC):%Y-%m-%d}",
        "",
        setup,
        "",
        "| measure | value |",
        "| --- | --- |",
        *(f"| {name} | {value} |" for name, value in measures),
        "",
        "| step | requests | errors | p50 (ms) | p95 (ms) | p99 (ms) "
        "| hub p50 (ms) | hub p95 (ms) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ]
    if errors:
        lines += ["First errors:", "", *error_lines, ""]
    lines += ["### What these figures mean", ""]
    for text in meaning:
        lines += [paragraph(text), ""]
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark, print it, and record it in docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent scientists")
    parser.add_argument(
        "--iterations", type=int, default=10, help="rounds per scientist"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=120.0,
        help="stop starting new rounds after this many seconds",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave docs alone"
    )
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="linksight-hub-load-") as root:
        network = LocalNetwork(Path(root))
        try:
            load_average = os.getloadavg()[0]
            network.start_hub()
            tokens = set_up_hub(network, arguments.clients)
            log = Path(root) / "logs" / "hub.log"
            offset = log.stat().st_size
            samples, seconds = asyncio.run(
                run_load(
                    network.hub_url,
                    tokens,
                    arguments.iterations,
                    arguments.max_seconds,
                )
            )
            # The hub logs each request before it sends the response.
            server = server_times(log, offset)
        finally:
            network.stop()

    text = report(samples, seconds, server, arguments, load_average)
    print(text)
    if not arguments.no_write:
        write_section("hub-load", text)
    if any(sample.error is not None for sample in samples):
        sys.exit(1)


if __name__ == "__main__":
    main()

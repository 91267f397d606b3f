"""Time the stewards' dashboard in headless Chromium, and its kernel culling.

Usage: ``python benchmarks/dashboard_load.py [--loads 5] [--cull-idle 10]``

Starts a real hub and three stations with the lung data on 127.0.0.1, the
dashboard under Voila (``linksight_kernel.dashboard.server``), and Debian's
Chromium (/usr/bin/chromium) through Playwright. Each load opens the page
as steward-a in a fresh browser context and measures the time until the
widgets are drawn, which includes starting a kernel, running the notebook
and the dashboard's first calls to the hub. The page is closed after each
load. After the last one, the script waits until Voila has stopped every
kernel of a closed page (at most 120 s) and reports how long that took.

Prints the figures and writes them to docs/benchmarks.md between this
script's markers, leaving the rest of that file as it is.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import psutil
import voila
from benchmark_docs import machine, write_section
from playwright.sync_api import sync_playwright

from linksight.network import LocalNetwork, free_port
from linksight_kernel.config import ENV_CONFIG, write_config
from linksight_kernel.dashboard.server import DashboardServer, start_dashboard

CHROMIUM = "/usr/bin/chromium"
CULL_WAIT_SECONDS = 120.0


def kernels(server: DashboardServer) -> set[int]:
    """Return the process ids of the kernels Voila runs now."""
    pids = set()
    for child in psutil.Process(server.process.pid).children(recursive=True):
        try:
            if "ipykernel_launcher" in " ".join(child.cmdline()):
                pids.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return pids


def load_pages(server: DashboardServer, loads: int) -> list[float]:
    """Open and close the dashboard `loads` times; return seconds to widgets."""
    seconds = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            for _ in range(loads):
                context = browser.new_context()
                page = context.new_page()
                started = time.perf_counter()
                page.goto(server.url_for("steward-a"))
                page.get_by_role("tab", name="Approval queue").wait_for(timeout=120_000)
                seconds.append(time.perf_counter() - started)
                context.close()
        finally:
            browser.close()
    return seconds


def wait_for_culling(server: DashboardServer) -> tuple[float, int]:
    """Wait until no kernel is left; return the seconds taken and the leftovers."""
    started = time.perf_counter()
    left = kernels(server)
    while left and time.perf_counter() - started < CULL_WAIT_SECONDS:
        time.sleep(0.5)
        left = kernels(server)
    return time.perf_counter() - started, len(left)


def report(
    seconds: list[float], culled_after: float, left: int, loads: int, cull: int
) -> str:
    """Return the figures as the Markdown section of docs/benchmarks.md."""
    load_average = os.getloadavg()[0]
    rows = "\n".join(
        f"| {index} | {value:.2f} |" for index, value in enumerate(seconds, start=1)
    )
    return f"""## Stewards' dashboard: page load and kernel culling

Command: `python benchmarks/dashboard_load.py --loads {loads} --cull-idle {cull}`
Machine: {machine(f"Voila {voila.__version__}", "Debian Chromium headless")}
Date: {date.today().isoformat()}
Load average (1 min) after the run: {load_average:.1f}; other work on the
machine shares its cores, so an idle machine gives lower times.

Time from opening the page as steward-a to the drawn tabs, in a fresh
browser context each time: a new kernel, the notebook, and the dashboard's
first calls to the hub.

| load | seconds to widgets |
| --- | --- |
{rows}

| measure | value |
| --- | --- |
| median seconds to widgets | {statistics.median(seconds):.2f} |
| seconds until every closed page's kernel was stopped | {culled_after:.1f} |
| kernels left after {CULL_WAIT_SECONDS:.0f} s | {left} |

Voila culled kernels idle for {cull} s with no page connected, checked every
2 s; `linksight dashboard` uses 300 s, checked every 60 s."""


def main() -> None:
    """Run the benchmark, print it, and record it in docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5, help="page loads to time")
    parser.add_argument(
        "--cull-idle", type=int, default=10, help="seconds before Voila culls"
    )
    args = parser.parse_args()
    if args.loads < 1:
        parser.error(f"--loads must be at least 1, not {args.loads}")
    if args.cull_idle < 5:
        parser.error(
            f"--cull-idle must be at least 5 s, not {args.cull_idle}: a kernel "
            "has no connection while its page loads"
        )
    with tempfile.TemporaryDirectory(prefix="dashboard-load-") as folder:
        root = Path(folder)
        network = LocalNetwork(root)
        server = None
        try:
            network.start_hub()
            network.set_up_lung_study()
            network.start_stations()
            config = root / "client.toml"
            write_config(
                config,
                network.hub_url,
                network.scientist_token,
                collaboration=network.collaboration,
                profiles={s.steward: s.steward_token for s in network.stations},
            )
            server = start_dashboard(
                free_port(),
                root / "logs" / "voila.log",
                environment=dict(os.environ, **{ENV_CONFIG: str(config)}),
                cull_idle_seconds=args.cull_idle,
                cull_interval_seconds=2,
            )
            seconds = load_pages(server, args.loads)
            culled_after, left = wait_for_culling(server)
        finally:
            if server is not None:
                server.stop()
            network.stop()
    text = report(seconds, culled_after, left, args.loads, args.cull_idle)
    print(text)
    write_section("dashboard-load", text)


if __name__ == "__main__":
    main()

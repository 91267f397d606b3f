"""Start real MPyC party processes (``python -m station.mpc_party``) on loopback.

Each party reads its task from a JSON file and writes its output to another,
as a station daemon runs it. The station tests build the configs and check
the outputs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from linksight.network import free_port


def loopback_parties(count: int) -> list[dict[str, Any]]:
    """Return the party list of `count` stations, each on a free loopback port."""
    return [
        {
            "station": f"station-{i}",
            "organisation": f"org-{i}",
            "host": "127.0.0.1",
            "port": free_port(),
        }
        for i in range(count)
    ]


def start_party(config: dict[str, Any], folder: Path) -> tuple[subprocess.Popen, Path]:
    """Start one party with `config`; its files and log go into `folder`.

    Returns the process and the path its output will be written to.
    """
    index = config["index"]
    folder.mkdir(parents=True, exist_ok=True)
    input_path = folder / f"in{index}.json"
    output_path = folder / f"out{index}.json"
    input_path.write_text(json.dumps(config))
    log = (folder / f"party{index}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "station.mpc_party", str(input_path), str(output_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return process, output_path


def run_parties(
    configs: list[dict[str, Any]], folder: Path, timeout: float = 120
) -> list[tuple[int, dict[str, Any]]]:
    """Run one party per config to the end; return each exit status and output."""
    started = [start_party(config, folder) for config in configs]
    results = []
    for process, output_path in started:
        process.wait(timeout=timeout)
        results.append((process.returncode, json.loads(output_path.read_text())))
    return results

"""Run a local network until terminated, for test suites in other languages.

``python -m linksight.serve_network --state-dir DIR`` starts a hub and three
stations holding the NCCTG lung data (see :class:`LocalNetwork`), all on
127.0.0.1, and then writes two files into DIR:

- ``connection.json``, readable by its owner only::

    {"hub_url": "http://127.0.0.1:PORT", "collaboration": "lung-study",
     "dataset": "lung", "scientist": {"name": ..., "token": ...},
     "stewards": [{"name": ..., "organisation": ..., "station": ...,
                   "token": ...}],
     "pooled_csv": "DIR/lung-pooled.csv"}

- ``lung-pooled.csv``, the pooled rows of all stations, so that a test can
  compute the reference value of each query on the pooled data.

``connection.json`` appears only once every station serves its dataset, and
whole, because it is written under another name and then renamed. The
process runs until SIGTERM or SIGINT, then stops the hub and the stations.
If the network fails to start, the error goes to stderr, the logs stay in
``DIR/logs`` and the exit status is 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from linksight.network import LocalNetwork, NetworkError, lung_data

CONNECTION_FILE = "connection.json"
POOLED_CSV = "lung-pooled.csv"


def connection_document(network: LocalNetwork, pooled_csv: Path) -> dict[str, Any]:
    """Return what a client needs to use `network`: URL, tokens, collaboration."""
    return {
        "hub_url": network.hub_url,
        "collaboration": network.collaboration,
        "dataset": "lung",
        "scientist": {"name": network.scientist, "token": network.scientist_token},
        "stewards": [
            {
                "name": station.steward,
                "organisation": station.organisation,
                "station": station.name,
                "token": station.steward_token,
            }
            for station in network.stations
        ],
        "pooled_csv": str(pooled_csv),
    }


def write_private_json(path: Path, document: dict[str, Any]) -> None:
    """Write `document` to `path` with mode 0600, replacing it in one step."""
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(document, file, indent=2)
    os.replace(partial, path)


def serve(state_dir: Path, differencing_window: int | None = None) -> int:
    """Start the network under `state_dir` and run until SIGTERM or SIGINT."""
    state_dir.mkdir(parents=True, exist_ok=True)
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    network = LocalNetwork(state_dir)
    try:
        network.start_hub()
        network.set_up_lung_study()
        network.start_stations()
        if differencing_window is not None:
            network.set_rules(differencing_window=differencing_window)
        pooled_csv = state_dir / POOLED_CSV
        lung_data().to_csv(pooled_csv, index=False)
        write_private_json(
            state_dir / CONNECTION_FILE, connection_document(network, pooled_csv)
        )
        print(f"network ready: hub on {network.hub_url}", file=sys.stderr, flush=True)
        # Event.wait with a timeout returns to Python often enough for the
        # signal handler to run.
        while not stop_requested.wait(timeout=0.5):
            pass
        return 0
    except NetworkError as error:
        print(
            f"the network failed to start: {error}; logs are in {state_dir / 'logs'}",
            file=sys.stderr,
            flush=True,
        )
        return 2
    finally:
        network.stop()


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve the network."""
    parser = argparse.ArgumentParser(
        prog="python -m linksight.serve_network",
        description="Run a hub and three lung-data stations on 127.0.0.1 until "
        f"terminated, and write {CONNECTION_FILE} into the state directory.",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        required=True,
        help="directory for the processes' state, logs and the connection file",
    )
    parser.add_argument(
        "--differencing-window",
        type=int,
        default=None,
        help="earlier queries each new one is checked against for differencing; "
        "0 turns the check off, for test suites whose unrelated tests share "
        "one network (default: the collaboration's default, 20)",
    )
    arguments = parser.parse_args(argv)
    return serve(arguments.state_dir.resolve(), arguments.differencing_window)


if __name__ == "__main__":
    sys.exit(main())

"""A collaboration's Flower SuperLink beside a local network's hub.

:func:`start_superlink` runs the SuperLink of a :class:`LocalNetwork` over
TLS with a certificate from the collaboration's CA, with SuperNode
authentication on, registers every station's SuperNode public key under the
station's name, and adds a ``[flower]`` section to every station's config.
Call it after the network's ``set_up_*`` method and before
``start_stations``; the station daemons then start their SuperNodes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from linksight import flower
from linksight.flower_server import NODES_VARIABLE
from linksight.network import LocalNetwork, NetworkError, free_port


@dataclass
class SuperLink:
    """A running SuperLink and the files that belong to it."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes]
    # Node id of each station's registered SuperNode.
    nodes: dict[str, int]

    @property
    def address(self) -> str:
        """The Fleet and Control API address, host:port."""
        return f"127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        """The operator's FLWR_HOME, with the connection to this SuperLink."""
        return self.directory / "home"

    def stop(self) -> None:
        """Stop the SuperLink and the SuperExec processes it started.

        Sends SIGTERM to the SuperLink's process group, then SIGKILL after
        15 s.
        """
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait()
        # The SuperExec children outlive a SuperLink that exited by itself.
        _signal_group(self.process, signal.SIGTERM)


def _signal_group(process: subprocess.Popen[bytes], number: int) -> None:
    try:
        os.killpg(process.pid, number)
    except ProcessLookupError:
        pass


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NetworkError(
                f"the SuperLink exited with status {process.returncode}; see {log}"
            )
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise NetworkError(f"the SuperLink did not listen on port {port} in 60 s")


def start_superlink(
    network: LocalNetwork,
    stage_timeout_seconds: float = 120.0,
    stations: list[str] | None = None,
) -> SuperLink:
    """Start the SuperLink, register the stations and configure their SuperNodes.

    `stage_timeout_seconds` bounds how long a run waits for a station's reply
    to one message before it fails naming that station. `stations` names
    the stations that run a SuperNode, by default every station.
    """
    unknown = sorted(set(stations or []) - {s.name for s in network.stations})
    if unknown:
        raise NetworkError(
            f"station(s) {', '.join(unknown)} are not in the network; set up "
            "their study before starting the SuperLink"
        )
    directory = network.root / "superlink"
    directory.mkdir(parents=True, exist_ok=True)
    ca_directory = network.root / "ca"
    certificate = directory / "superlink.crt"
    key = directory / "superlink.key"
    flower.issue_superlink_certificate(ca_directory, "127.0.0.1", certificate, key)
    port = free_port()
    nodes_file = directory / "nodes.json"
    environment = flower.flower_environment(directory / "home")
    environment[NODES_VARIABLE] = str(nodes_file)
    log_path = network.root / "logs" / "superlink.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    network.log_files.append(log)
    process = subprocess.Popen(
        flower.superlink_command(
            "127.0.0.1",
            port,
            directory / "superlink.db",
            certificate,
            key,
            ca_directory / "ca.crt",
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=environment,
        # Its own process group, so that stop() also reaches the SuperExec
        # processes it starts.
        start_new_session=True,
    )
    link = SuperLink(directory, port, process, {})
    try:
        _wait_for_port(port, process, log_path)
        flower.write_connection(link.home, link.address, ca_directory / "ca.crt")
        for station in network.stations:
            if stations is not None and station.name not in stations:
                continue
            station_dir = station.config_path.parent
            public_key = station_dir / "supernode.pub"
            flower.supernode_keys(
                station_dir / "station.key", station_dir / "supernode.key", public_key
            )
            link.nodes[station.name] = flower.register_supernode(
                link.home, public_key, station.name
            )
            with station.config_path.open("a") as config:
                config.write(
                    f"""
[flower]
superlink = "{link.address}"
root_certificates = "{(ca_directory / "ca.crt").as_posix()}"
auth_key = "supernode.key"
run_timeout_seconds = 600
stage_timeout_seconds = {stage_timeout_seconds!r}
"""
                )
        nodes_file.write_text(json.dumps(link.nodes))
    except Exception:
        link.stop()
        raise
    return link

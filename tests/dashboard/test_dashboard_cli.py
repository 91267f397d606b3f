"""`linksight dashboard` and the playground's dashboard: checks, URL and stop."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
from typer.testing import CliRunner

from linksight.cli import app
from linksight.network import free_port
from linksight.playground import Playground
from linksight_kernel.config import ENV_CONFIG
from linksight_kernel.dashboard.server import ENV_STATION_CONFIGS

runner = CliRunner()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_dashboard_needs_steward(steward_network):
    # The config file's default token is the scientist sam's.
    result = runner.invoke(app, ["dashboard", "--port", str(free_port())])

    assert result.exit_code == 1
    assert "sam has role(s) scientist" in result.output
    assert "--profile STEWARD" in result.output


def test_dashboard_port_in_use(steward_network, dashboard_server):
    result = runner.invoke(
        app,
        ["dashboard", "--port", str(dashboard_server.port), "--profile", "steward-a"],
    )

    assert result.exit_code == 1
    assert f"port {dashboard_server.port} on 127.0.0.1 is already in use" in (
        result.output
    )


def test_dashboard_missing_station_config(steward_network, tmp_path):
    missing = tmp_path / "station.toml"

    result = runner.invoke(
        app, ["dashboard", "--profile", "steward-a", "--station-config", str(missing)]
    )

    assert result.exit_code == 2
    assert f"station config {missing} does not exist" in result.output


def test_dashboard_prints_url_and_stops(steward_network, tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "linksight",
            "dashboard",
            "--port",
            str(port),
            "--profile",
            "steward-b",
            "--log-file",
            str(tmp_path / "voila.log"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ),
    )
    try:
        # The client may log a warning first, such as about its result key.
        lines = []
        while not lines or not lines[-1].startswith("stewards' dashboard"):
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
        listening = _listening(port)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            # Voila runs in its own session, so it is stopped by itself.
            voila = psutil.Process(process.pid).children(recursive=True)
            process.kill()
            process.wait()
            for child in voila:
                try:
                    child.kill()
                except psutil.NoSuchProcess:
                    continue

    url = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=[0-9a-f]{48}", lines[-1])
    assert lines[-1].startswith("stewards' dashboard, signed in as steward-b: ")
    assert url is not None
    assert int(url.group(1)) == port
    assert listening
    assert process.returncode == 0, rest
    assert "stopping" in rest
    assert not _listening(port)


def test_playground_starts_dashboard(steward_network, tmp_path):
    playground = Playground(
        steward_network.root, steward_network, Path(os.environ[ENV_CONFIG])
    )
    server = playground.start_dashboard()
    try:
        listening = _listening(server.port)
        environment = psutil.Process(server.process.pid).environ()
    finally:
        server.stop()

    assert listening
    assert server.url_for("steward-c").endswith("&profile=steward-c")
    assert environment[ENV_CONFIG] == os.environ[ENV_CONFIG]
    assert environment[ENV_STATION_CONFIGS].split(os.pathsep) == [
        str(station.config_path.resolve()) for station in steward_network.stations
    ]
    assert not _listening(server.port)

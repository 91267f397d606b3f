"""Serve the stewards' dashboard with Voila on 127.0.0.1.

Voila starts one kernel per page load. A kernel whose page was closed stays
idle with no connection, so the server culls such kernels: every
`cull_interval` seconds it stops those idle for `cull_idle_seconds`. A page
that is still open keeps its kernel (jupyter_server's ``cull_connected`` is
left at its default, false).

Voila runs in the notebook's folder and so reads ``voila.json`` there: it
loads only the ipywidgets front end, not other JupyterLab extensions of the
environment, and sends a Content-Security-Policy that lets the page reach
its own server only. Voila's page template links a CDN's icon fonts, which
the policy blocks in the browser.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from linksight_kernel.errors import LinksightError

logger = logging.getLogger("linksight.dashboard")

# The config file's profile to sign in with, when the page names none.
ENV_PROFILE = "LINKSIGHT_DASHBOARD_PROFILE"

# Station config files whose own audit chains the Verify button checks,
# separated by os.pathsep; readable only where those stations run.
ENV_STATION_CONFIGS = "LINKSIGHT_STATION_CONFIGS"

NOTEBOOK_NAME = "steward_dashboard.ipynb"

DEFAULT_CULL_IDLE_SECONDS = 300
DEFAULT_CULL_INTERVAL_SECONDS = 60
START_TIMEOUT_SECONDS = 60.0


def dashboard_notebook() -> Path:
    """Return the dashboard notebook: in the wheel, or the repository's."""
    from linksight.playground import notebooks_source

    return notebooks_source() / "dashboards" / NOTEBOOK_NAME


@dataclass
class DashboardServer:
    """A running Voila process serving the dashboard."""

    process: subprocess.Popen[bytes]
    port: int
    token: str

    @property
    def url(self) -> str:
        """The dashboard's URL, with the token that opens it."""
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    def url_for(self, profile: str) -> str:
        """Return the dashboard's URL signed in as a profile of the config file."""
        return f"{self.url}&profile={profile}"

    def stop(self) -> None:
        """Stop Voila, which stops its kernels: SIGTERM, then SIGKILL after 15 s.

        NOTE: after a SIGKILL, kernels that Voila started may be left running.
        """
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_dashboard(
    port: int,
    log_path: Path,
    environment: dict[str, str] | None = None,
    profile: str | None = None,
    station_configs: list[Path] | None = None,
    cull_idle_seconds: int = DEFAULT_CULL_IDLE_SECONDS,
    cull_interval_seconds: int = DEFAULT_CULL_INTERVAL_SECONDS,
    notebook: Path | None = None,
) -> DashboardServer:
    """Start Voila on 127.0.0.1:`port` and wait until it accepts connections.

    `environment` is the kernels' environment (by default this process's);
    it decides which hub and token the dashboard uses.

    Raises
    ------
    LinksightError
        If an argument is out of range or the port is taken. Also if Voila
        exits or does not listen within 60 s, with the log file named.
    """
    if not 0 < port < 65536:
        raise LinksightError(f"port {port} is not a TCP port; use 1 to 65535")
    if cull_idle_seconds < 1 or cull_interval_seconds < 1:
        raise LinksightError(
            f"cull times must be at least 1 s, not {cull_idle_seconds} and "
            f"{cull_interval_seconds}"
        )
    if _port_open(port):
        raise LinksightError(
            f"port {port} on 127.0.0.1 is already in use; choose another with --port"
        )
    notebook = notebook or dashboard_notebook()
    if not notebook.is_file():
        raise LinksightError(f"the dashboard notebook {notebook} does not exist")
    env = dict(environment if environment is not None else os.environ)
    if profile:
        env[ENV_PROFILE] = profile
    if station_configs:
        env[ENV_STATION_CONFIGS] = os.pathsep.join(
            str(path.resolve()) for path in station_configs
        )
    token = secrets.token_hex(24)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voila",
                notebook.name,
                "--no-browser",
                "--Voila.ip=127.0.0.1",
                f"--port={port}",
                "--Voila.port_retries=0",
                f"--Voila.token={token}",
                f"--MappingKernelManager.cull_idle_timeout={cull_idle_seconds}",
                f"--MappingKernelManager.cull_interval={cull_interval_seconds}",
            ],
            cwd=notebook.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            # Its own process group, so that Ctrl-C reaches only the caller,
            # which then stops Voila, and Voila its kernels, in order.
            start_new_session=True,
        )
    finally:
        log.close()
    server = DashboardServer(process, port, token)
    try:
        _wait_until_listening(server, log_path)
    except BaseException:
        # Also on Ctrl-C while waiting: the caller has no server to stop yet.
        server.stop()
        raise
    logger.info("dashboard serving on 127.0.0.1:%s, pid %s", port, process.pid)
    return server


def _wait_until_listening(server: DashboardServer, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not _port_open(server.port):
        if server.process.poll() is not None:
            raise LinksightError(
                f"Voila exited with status {server.process.returncode}; see {log_path}"
            )
        if time.monotonic() > deadline:
            raise LinksightError(
                f"Voila did not listen on 127.0.0.1:{server.port} within "
                f"{START_TIMEOUT_SECONDS:g} s; see {log_path}"
            )
        time.sleep(0.2)

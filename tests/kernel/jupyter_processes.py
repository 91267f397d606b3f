"""Start a real Jupyter server or JupyterLab on 127.0.0.1 for the panel tests."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from linksight.network import free_port
from linksight_kernel.config import ENV_CONFIG, ENV_HUB_URL, ENV_TOKEN

REPOSITORY = Path(__file__).resolve().parents[2]
SERVER_CONFIG = REPOSITORY / "jupyter-config" / "server-config"


@dataclass
class RunningJupyter:
    """A Jupyter server process, its base URL and its login token."""

    process: subprocess.Popen[bytes]
    url: str
    token: str
    log_path: Path

    def get(self, path: str, authenticated: bool = True) -> httpx.Response:
        """Send GET `path` (relative to the base URL) with the server's token."""
        headers = {"Authorization": f"token {self.token}"} if authenticated else {}
        return httpx.get(f"{self.url}/{path}", headers=headers, timeout=30)

    def stop(self) -> None:
        """Stop the server and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_jupyter(
    root: Path, environment: dict[str, str | None], app: str = "jupyter_server"
) -> RunningJupyter:
    """Start `app` (``jupyter_server`` or ``jupyterlab``) in `root`.

    `environment` sets (or with None, removes) the Linksight variables the
    server extension reads. The server extension is enabled with the
    repository's own config file, as the wheel installs it.
    """
    root.mkdir(parents=True, exist_ok=True)
    config_dir = root / "jupyter-config"
    (config_dir / "jupyter_server_config.d").mkdir(parents=True, exist_ok=True)
    for source in SERVER_CONFIG.glob("*.json"):
        target = config_dir / "jupyter_server_config.d" / source.name
        target.write_text(source.read_text())
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in (ENV_CONFIG, ENV_HUB_URL, ENV_TOKEN)
    }
    env.update({key: value for key, value in environment.items() if value})
    env["JUPYTER_CONFIG_DIR"] = str(config_dir)
    # No ~/.config/linksight/client.toml of the machine's user is read.
    env["HOME"] = str(root)
    token = secrets.token_hex(16)
    port = free_port()
    log_path = root / f"{app}.log"
    arguments = [
        sys.executable,
        "-m",
        app,
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        "--no-browser",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        *(["--allow-root"] if os.geteuid() == 0 else []),
        # Nothing may reach beyond loopback: no extension search on PyPI and
        # no check for newer JupyterLab releases.
        "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            arguments, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root
        )
    running = RunningJupyter(process, f"http://127.0.0.1:{port}", token, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{app} exited with status {process.returncode}; see {log_path}:\n"
                + log_path.read_text()[-3000:]
            )
        try:
            if running.get("api/status").status_code == 200:
                return running
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    running.stop()
    raise RuntimeError(f"{app} did not answer on {running.url} in 60 s; see {log_path}")


def json_of(response: httpx.Response) -> object:
    """Return the JSON body of `response`, naming the status if it is not JSON."""
    try:
        return response.json()
    except json.JSONDecodeError as exc:
        raise AssertionError(
            f"status {response.status_code}, not JSON: {response.text[:300]}"
        ) from exc

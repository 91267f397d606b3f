"""`linksight playground`: a hub, ten stations, a Flower SuperLink,
JupyterLab and the stewards' dashboard on 127.0.0.1.

The playground starts the network of :mod:`linksight.network` with the
NCCTG lung data and, in collaboration ``waiting-lists``, one clinic's COVID
tests per station, and the UCI heart disease study (collaboration
``heart-study``, four more stations) with a Flower SuperLink for federated
training, whose SuperNodes only the heart stations run, and the vertical
study (collaboration ``vertical-study``: a hospital, a general practice and
an insurer with different columns about partly the same persons, three more
stations). It writes a client config file with the scientist's token and
the stewards' tokens as profiles (mode 0600), copies the example notebooks
into its state directory, and starts JupyterLab there with
LINKSIGHT_CONFIG pointing at the config, so ``%linksight connect`` needs no
argument.

Demo stewards approve the requests of the scientist ``sam`` after a short
delay, so that a query cell shows the wait for approval and then runs. The
second scientist, ``kim``, is left to the stewards by hand, as in
``%linksight approve ID --as steward-a``. Nothing here is meant for real
data: the tokens are written to disk and every steward approves.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import httpx

from linksight.flower_network import SuperLink, start_superlink
from linksight.network import HEART_STATIONS, LocalNetwork, NetworkError, free_port
from linksight_kernel.config import ENV_CONFIG, write_config
from linksight_kernel.dashboard.server import DashboardServer, start_dashboard

logger = logging.getLogger("linksight.playground")

AUTO_APPROVE_REASON = "approved automatically by the playground's demo steward"
SECOND_SCIENTIST = "kim"
FIRST_NOTEBOOK = "descriptive_statistics.ipynb"


def notebooks_source() -> Path:
    """Return the folder of example notebooks: in the wheel, or the repository's."""
    packaged = Path(str(resources.files("linksight").joinpath("notebooks")))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[1] / "notebooks"


class DemoStewards:
    """A thread that approves one scientist's requests as every steward.

    A request is approved once it has waited `delay` seconds, by each
    steward whose organisation has not decided yet.
    """

    def __init__(self, network: LocalNetwork, submitters: set[str], delay: float):
        self.network = network
        self.submitters = submitters
        self.delay = delay
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="demo-stewards")
        self.thread.daemon = True

    def start(self) -> None:
        """Start approving in the background."""
        self.thread.start()

    def stop(self) -> None:
        """Stop approving and wait for the thread."""
        self.stopped.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        # One warning per outage of the hub, not one per steward and poll.
        failing = False
        with httpx.Client(base_url=self.network.hub_url, timeout=10) as http:
            while not self.stopped.wait(0.3):
                for station in self.network.stations:
                    try:
                        self._approve_due(http, station.steward_token)
                    except httpx.HTTPError as exc:
                        if not failing and not self.stopped.is_set():
                            logger.warning(
                                "demo stewards cannot reach the hub at %s (%s); "
                                "they try again every 0.3 s",
                                self.network.hub_url,
                                exc,
                            )
                        failing = True
                        break
                else:
                    if failing:
                        logger.info("demo stewards reach the hub again")
                    failing = False

    def _approve_due(self, http: httpx.Client, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        me = http.get("/users/me", headers=headers).json()
        waiting = http.get(
            "/requests", params={"state": "awaiting_approval"}, headers=headers
        ).json()
        now = datetime.now(UTC)
        for request in waiting:
            created = datetime.fromisoformat(request["created_at"])
            decided = {a["organisation"] for a in request["approvals"]}
            if (
                request["submitter"] not in self.submitters
                or me["organisation"] in decided
                or now - created < timedelta(seconds=self.delay)
            ):
                continue
            response = http.post(
                f"/requests/{request['id']}/approve",
                json={"reason": AUTO_APPROVE_REASON},
                headers=headers,
            )
            if response.status_code >= 400:
                # Another steward's decision or an expiry came first.
                logger.info(
                    "demo steward of %s could not approve request %s: %s",
                    me["organisation"],
                    request["id"],
                    response.text,
                )


@dataclass
class Playground:
    """A running playground: the network, its client config, the stewards."""

    root: Path
    network: LocalNetwork
    config_path: Path
    stewards: DemoStewards | None = None
    lab: subprocess.Popen[bytes] | None = None
    lab_url: str = ""
    dashboard: DashboardServer | None = None
    notebooks_dir: Path = field(default_factory=Path)
    superlink: SuperLink | None = None

    def environment(self) -> dict[str, str]:
        """Return the environment for a process that should find the playground."""
        return dict(os.environ, **{ENV_CONFIG: str(self.config_path)})

    def start_lab(self, port: int = 0, open_browser: bool = False) -> str:
        """Start JupyterLab on 127.0.0.1 in the notebooks folder; return its URL."""
        import secrets

        token = secrets.token_hex(24)
        port = port or free_port()
        log = (self.root / "logs" / "jupyterlab.log").open("ab")
        self.network.log_files.append(log)
        self.lab = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--ip=127.0.0.1",
                f"--port={port}",
                "--port-retries=0",
                f"--ServerApp.token={token}",
                f"--ServerApp.root_dir={self.notebooks_dir}",
                f"--ServerApp.open_browser={open_browser}",
                f"--LabApp.default_url=/lab/tree/{FIRST_NOTEBOOK}",
                # Nothing may reach beyond loopback: no extension search on
                # PyPI and no check for newer JupyterLab releases.
                "--LabApp.extension_manager=readonly",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                # JupyterLab refuses root unless told; it still listens on
                # loopback only and needs the token.
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.environment(),
            # Its own process group, so that Ctrl-C reaches only the
            # playground, which then stops JupyterLab in order.
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.lab.poll() is not None:
                raise NetworkError(
                    f"JupyterLab exited with status {self.lab.returncode}; see "
                    f"{self.root / 'logs' / 'jupyterlab.log'}"
                )
            try:
                status = httpx.get(f"{base}/api/status", params={"token": token})
                if status.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            raise NetworkError(f"JupyterLab did not answer on {base} in 60 s")
        # JupyterLab's default_url applies to "/" only; the printed URL names
        # the notebook itself so that it opens there.
        self.lab_url = f"{base}/lab/tree/{FIRST_NOTEBOOK}?token={token}"
        return self.lab_url

    def start_dashboard(self, port: int = 0) -> DashboardServer:
        """Start the stewards' dashboard (Voila) on 127.0.0.1; return its server.

        Its Verify button also checks each station's own audit chain.
        """
        self.dashboard = start_dashboard(
            port or free_port(),
            self.root / "logs" / "voila.log",
            environment=self.environment(),
            station_configs=[station.config_path for station in self.network.stations],
        )
        return self.dashboard

    def exited(self) -> str | None:
        """Describe the first of the playground's processes that has exited, if any.

        The message names the process, its exit status and its log file.
        """
        logs = self.root / "logs"
        processes = [("the hub", self.network.hub_process, logs / "hub.log")]
        processes += [
            (f"station {s.name}", s.process, logs / f"{s.name}.log")
            for s in self.network.stations
        ]
        processes.append(("JupyterLab", self.lab, logs / "jupyterlab.log"))
        if self.superlink is not None:
            processes.append(
                ("the SuperLink", self.superlink.process, logs / "superlink.log")
            )
        if self.dashboard is not None:
            processes.append(
                ("the dashboard's Voila", self.dashboard.process, logs / "voila.log")
            )
        for name, process, log in processes:
            if process is not None and process.poll() is not None:
                return f"{name} exited with status {process.returncode}; see {log}"
        return None

    def stop(self) -> None:
        """Stop JupyterLab, the dashboard, the demo stewards and the network."""
        # The stewards first, so that they do not poll a hub that is stopping.
        if self.stewards is not None:
            self.stewards.stop()
        if self.dashboard is not None:
            self.dashboard.stop()
        if self.lab is not None and self.lab.poll() is None:
            self.lab.send_signal(signal.SIGTERM)
            try:
                self.lab.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.lab.pid, signal.SIGKILL)
                self.lab.wait()
        self.network.stop()
        if self.superlink is not None:
            self.superlink.stop()


def start_playground(
    root: Path, auto_approve: bool = True, approve_delay: float = 2.0
) -> Playground:
    """Start the hub and stations, write the client config, copy the notebooks.

    Raises
    ------
    NetworkError
        If a process fails to start; the processes already started are
        stopped first.
    """
    network = LocalNetwork(root)
    superlink = None
    try:
        network.start_hub()
        network.set_up_lung_study()
        network.set_up_waiting_lists()
        network.set_up_heart_study()
        network.set_up_vertical_study()
        superlink = start_superlink(network, stations=list(HEART_STATIONS))
        kim = network.call(
            "POST",
            "/users",
            network.admin_token,
            json={
                "name": SECOND_SCIENTIST,
                "organisation": "Research Institute",
                "roles": ["scientist"],
            },
        )
        network.start_stations()
    except BaseException:
        network.stop()
        if superlink is not None:
            superlink.stop()
        raise
    profiles = {s.steward: s.steward_token for s in network.stations}
    profiles[SECOND_SCIENTIST] = kim["token"]
    config_path = root / "client.toml"
    write_config(
        config_path,
        network.hub_url,
        network.scientist_token,
        collaboration=network.collaboration,
        profiles=profiles,
    )
    notebooks_dir = root / "notebooks"
    shutil.copytree(notebooks_source(), notebooks_dir, dirs_exist_ok=True)
    playground = Playground(
        root, network, config_path, notebooks_dir=notebooks_dir, superlink=superlink
    )
    if auto_approve:
        playground.stewards = DemoStewards(network, {network.scientist}, approve_delay)
        playground.stewards.start()
    return playground

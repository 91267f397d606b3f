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
    # Names of the stations whose exit was already reported.
    stopped_stations: set[str] = field(default_factory=set)

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
        """Describe the first shared process of the playground that has exited.

        The shared processes are the hub, JupyterLab, the SuperLink and the
        dashboard, without which the playground cannot serve; a station is
        not one of them (see :meth:`report_stopped_stations`). The message
        names the process, its exit status and its log file.
        """
        logs = self.root / "logs"
        processes = [("the hub", self.network.hub_process, logs / "hub.log")]
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

    def report_stopped_stations(self) -> list[str]:
        """Log a warning for each station daemon that exited since the last call.

        The playground keeps serving without the station, as a real network
        does when one organisation's server goes down: tasks that involve
        it fail with the station named, and the others run as before. It is
        not restarted, because a restart would hide a crash and would undo
        a station stopped on purpose to try out that failure. The warning
        names the station, its exit status, its log file and the command
        that starts it again. Returns the names of the newly exited stations.
        """
        stopped = []
        for station in self.network.stations:
            process = station.process
            if station.name in self.stopped_stations or process is None:
                continue
            if process.poll() is None:
                continue
            self.stopped_stations.add(station.name)
            stopped.append(station.name)
            logger.warning(
                "station %s exited with status %s; see %s. The other processes "
                "keep serving, and tasks that involve %s fail until it runs "
                "again. To start it again (it then runs outside the playground, "
                "so stop it yourself): linksight station serve --config %s",
                station.name,
                process.returncode,
                self.root / "logs" / f"{station.name}.log",
                station.name,
                station.config_path,
            )
        return stopped

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


def check_state_folder(root: Path) -> None:
    """Check that `root` is missing or empty, as a new playground needs.

    Each start initialises a new hub and registers new stations with new
    tokens, so the files of an earlier playground cannot be used again.

    Raises
    ------
    NetworkError
        If `root` is not a folder, or contains files. The message names what
        to pass instead.
    """
    if not root.exists():
        return
    if not root.is_dir():
        raise NetworkError(
            f"the state folder {root} is a file, not a folder; pass --state-dir "
            "with a new or empty folder"
        )
    entries = sorted(entry.name for entry in root.iterdir())
    if not entries:
        return
    listed = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
    if (root / "hub").exists() or (root / "client.toml").exists():
        found = f"contains an earlier playground ({listed})"
        keep = " (move its logs/ folder away first if you need the earlier logs)"
    else:
        found = f"is not empty (it contains {listed})"
        keep = ""
    raise NetworkError(
        f"the state folder {root} {found}. Each start of the playground sets up "
        "a new hub and new stations with new tokens, so it needs a new or empty "
        f"folder: pass --state-dir with another folder, or delete {root}{keep}"
    )


def start_playground(
    root: Path, auto_approve: bool = True, approve_delay: float = 2.0
) -> Playground:
    """Start the hub and stations, write the client config, copy the notebooks.

    Raises
    ------
    NetworkError
        If `root` contains files (see :func:`check_state_folder`), or a process
        fails to start; the processes already started are stopped first.
    """
    check_state_folder(root)
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

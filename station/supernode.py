"""Run and supervise this station's long-lived Flower SuperNode.

The station daemon starts one ``flower-supernode`` when its config has a
``[flower]`` section, restarts it whenever it exits (after a back-off that
doubles up to 30 s), and stops it when the daemon stops. The SuperNode
dials the collaboration's SuperLink over TLS, authenticates with the
station's EC key, and starts the platform's ClientApp
(:mod:`station.flower_client`) with this station's config path in its node
config, so that the app reads only this station's data. On Linux the
SuperNode also receives SIGTERM if the daemon dies without stopping it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from linksight import flower
from linksight.network import free_port
from station.config import StationConfig

logger = logging.getLogger("linksight.station")

RESTART_MIN_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
# A SuperNode that ran this long before exiting restarts without back-off.
STABLE_SECONDS = 60.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_group(process: subprocess.Popen[bytes], number: int) -> None:
    try:
        os.killpg(process.pid, number)
    except ProcessLookupError:
        pass


def supernode_command(config: StationConfig, config_path: Path, port: int) -> list[str]:
    """Return the flower-supernode command line for this station."""
    section = config.flower
    assert section is not None and section.superlink is not None
    command = [
        str(flower.flower_bin_dir() / "flower-supernode"),
        "--superlink",
        section.superlink,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--node-config",
        f'station-config="{config_path.resolve().as_posix()}"',
    ]
    if section.insecure:
        command.append("--insecure")
    else:
        command += ["--root-certificates", str(section.root_certificates)]
    if section.auth_key is not None:
        command += ["--auth-supernode-private-key", str(section.auth_key)]
    return command


class SuperNodeSupervisor:
    """Keeps one SuperNode process running until :meth:`stop`."""

    def __init__(self, config: StationConfig, config_path: Path):
        self.config = config
        self.config_path = config_path
        self.folder = config.station.state_dir / "flower"
        self.process: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(
            target=self._supervise, name="supernode", daemon=True
        )
        self.starts = 0

    def start(self) -> None:
        """Start the SuperNode and the thread that restarts it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        port = free_port()
        command = supernode_command(self.config, self.config_path, port)
        log = (self.folder / "supernode.log").open("ab")
        try:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=flower.flower_environment(self.folder / "home"),
                preexec_fn=_die_with_parent,
                # Its own process group, so that stop() also reaches the
                # ClientApp processes it starts.
                start_new_session=True,
            )
        finally:
            log.close()
        self.starts += 1
        logger.info(
            "SuperNode started: pid %d, SuperLink %s, ClientApp API port %d",
            process.pid,
            self.config.flower.superlink,  # type: ignore[union-attr]
            port,
        )
        return process

    def _supervise(self) -> None:
        delay = RESTART_MIN_SECONDS
        while not self.stopping.is_set():
            try:
                self.process = self._spawn()
            except OSError as error:
                logger.error("starting the SuperNode failed: %s", error)
                self.stopping.wait(delay)
                delay = min(delay * 2, RESTART_MAX_SECONDS)
                continue
            started = time.monotonic()
            while self.process.poll() is None and not self.stopping.is_set():
                self.stopping.wait(0.5)
            if self.stopping.is_set():
                return
            if time.monotonic() - started > STABLE_SECONDS:
                delay = RESTART_MIN_SECONDS
            logger.warning(
                "SuperNode exited with status %s; restarting in %.0f s (see %s)",
                self.process.returncode,
                delay,
                self.folder / "supernode.log",
            )
            self.stopping.wait(delay)
            delay = min(delay * 2, RESTART_MAX_SECONDS)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the SuperNode and its ClientApp processes.

        Sends SIGTERM to the SuperNode's process group, then SIGKILL after
        `timeout` seconds.
        """
        self.stopping.set()
        process = self.process
        if process is not None and process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
            logger.info("SuperNode stopped")
        if process is not None:
            # ClientApp processes outlive a SuperNode that exited by itself.
            _signal_group(process, signal.SIGTERM)
        if self.thread.is_alive():
            self.thread.join(timeout=timeout)

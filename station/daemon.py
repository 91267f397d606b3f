"""The station daemon: poll the hub for approved tasks and run them.

The station only makes outbound calls to the hub. It polls at the configured
interval, backing off exponentially while the hub is unreachable, and runs
tasks one at a time, oldest first, so that all parties of a task reach it in
the same order. After each task, every ``checkpoint_seconds``, and at the
first poll after a steward requested one, it co-signs a checkpoint of the
hub's audit chain (:mod:`station.checkpointer`).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from types import FrameType

import linksight
from station.checkpointer import Checkpointer, HubChainRejected
from station.config import StationConfig
from station.hub_client import HubError, StationHubClient
from station.ledger import StationLedger
from station.runner import TaskRunner
from station.store import DatasetStore
from station.supernode import SuperNodeSupervisor

logger = logging.getLogger("linksight.station")

# Re-publish the heartbeat and dataset schemas every this many seconds.
REGISTER_SECONDS = 30.0


class StationDaemon:
    """One station's long-running process."""

    def __init__(self, config: StationConfig, config_path: Path | None = None):
        self.config = config
        self.store = DatasetStore(config.station.state_dir)
        self.ledger = StationLedger(config.station.state_dir)
        self.hub = StationHubClient(
            config.station.hub_url,
            config.token(),
            ca_certificate=config.station.hub_ca_certificate,
        )
        self.runner = TaskRunner(config, self.store, self.ledger, self.hub)
        self.checkpointer = Checkpointer(config, self.ledger, self.hub)
        self.stopping = threading.Event()
        # A training run in progress stops waiting when the daemon stops.
        self.runner.stopping = self.stopping
        self.supernode: SuperNodeSupervisor | None = None
        flower = config.flower
        if flower is not None and flower.superlink is not None:
            if config_path is None:
                raise ValueError("a station with a [flower] section needs its path")
            self.supernode = SuperNodeSupervisor(config, config_path)

    def register(self) -> None:
        """Publish the MPC endpoint and the schemas of imported datasets."""
        mpc = self.config.mpc
        self.hub.heartbeat(
            mpc.advertised_host or mpc.host, mpc.port, linksight.__version__
        )
        for entry in self.config.datasets:
            current = self.store.current(entry.name)
            if current is None:
                logger.warning(
                    "dataset %s is declared but not imported; not offered", entry.name
                )
                continue
            for collaboration in entry.collaborations:
                self.hub.register_dataset(
                    collaboration, entry.name, current.schema.model_dump(mode="json")
                )

    def run(self) -> None:
        """Poll and run tasks until stopped by SIGINT or SIGTERM."""
        name = self.config.station.name
        logger.info(
            "station %s starting: hub %s, MPC on %s:%d",
            name,
            self.config.station.hub_url,
            self.config.mpc.host,
            self.config.mpc.port,
        )
        self.ledger.audit.append(
            "station_started",
            organisation=self.config.station.organisation,
            user=name,
            role="station",
            outcome="success",
        )
        if self.supernode is not None:
            self.supernode.start()
        delay = self.config.station.poll_seconds
        next_register = 0.0
        next_checkpoint = 0.0
        while not self.stopping.is_set():
            try:
                if time.monotonic() >= next_register:
                    self.register()
                    next_register = time.monotonic() + REGISTER_SECONDS
                tasks = self.hub.tasks()
                delay = self.config.station.poll_seconds
            except HubError as error:
                delay = min(delay * 2, self.config.station.max_poll_seconds)
                logger.warning("hub call failed, retrying in %.1f s: %s", delay, error)
                self.stopping.wait(delay)
                continue
            for signed in tasks:
                if self.stopping.is_set():
                    break
                self.runner.handle(signed)
            due = time.monotonic() >= next_checkpoint
            if tasks or due or self.checkpointer.requested():
                self.checkpoint()
                next_checkpoint = (
                    time.monotonic() + self.config.station.checkpoint_seconds
                )
            self.stopping.wait(delay)
        self.ledger.audit.append(
            "station_stopped",
            organisation=self.config.station.organisation,
            user=name,
            role="station",
            outcome="success",
        )
        if self.supernode is not None:
            self.supernode.stop()
        self.hub.close()
        logger.info("station %s stopped", name)

    def checkpoint(self) -> None:
        """Co-sign the hub's audit chain head if it extends the last one signed."""
        try:
            self.checkpointer.run()
        except HubChainRejected:
            # Logged and written to this station's chain by the checkpointer;
            # tasks go on, and `linksight audit verify` reports the hub.
            pass

    def install_signal_handlers(self) -> None:
        """Stop the poll loop cleanly on SIGINT and SIGTERM."""

        def stop(signum: int, frame: FrameType | None) -> None:
            logger.info("received signal %d; stopping", signum)
            self.stopping.set()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)

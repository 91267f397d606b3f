"""Run one accepted ``train`` task at this station, under supervision.

Every station of the task records the task as accepted, so that its
ClientApp takes part, then waits for the outcome that the ServerApp sends
at the end of the run. The first station of the task's party list also
starts the run with ``flwr run`` against the SuperLink, and checks the run's
status there. While it waits, each station logs every exchange its ClientApp
takes part in. It stops waiting with an error when the hub reports the
request failed (for example because another station stopped), when the
daemon stops, or after ``run_timeout_seconds``. The first station also stops
waiting when ``flwr run`` fails or the run ended without an outcome, and it
stops the run with ``flwr stop`` when it stops waiting for another reason.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from linksight import flower
from linksight.tasks import TaskSpec
from station.config import StationConfig
from station.hub_client import HubError, StationHubClient
from station.training import TaskFolder, build_training_design

logger = logging.getLogger("linksight.station")

# Seconds between checks of the outcome file, the launcher and the hub.
CHECK_SECONDS = 0.5
# Seconds between `flwr ls` checks of the run's status at the SuperLink;
# each check starts a flwr process, which takes seconds on a busy machine.
STATUS_CHECK_SECONDS = 60.0
# Seconds a finished run's outcome may take to reach the stations.
OUTCOME_GRACE_SECONDS = 30.0


class TrainingFailed(Exception):
    """The training run failed or was stopped; the message names the cause."""


def launch_run(
    config: StationConfig,
    task: TaskSpec,
    signed: dict[str, Any],
    schema: Any,
    work_dir: Path,
) -> subprocess.Popen[str]:
    """Submit the task's run to the SuperLink with ``flwr run``; return it.

    The run config carries the signed task and the design's names and scales,
    which the ServerApp needs to report coefficients in the columns' units.
    """
    section = config.flower
    assert section is not None and section.superlink is not None
    home = config.station.state_dir / "flower" / "cli-home"
    flower.write_connection(
        home, section.superlink, section.root_certificates, section.insecure
    )
    design = build_training_design(task.query, schema)
    run_config = work_dir / "run-config.toml"
    values = {
        "task": json.dumps(signed["task"]),
        "signature": str(signed["signature"]),
        "design-names": json.dumps(design.names),
        "design-scales": json.dumps(design.scales),
        "response-scale": design.response_scale,
    }
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    lines.append(f"stage-timeout = {float(section.stage_timeout_seconds)!r}")
    run_config.write_text("\n".join(lines) + "\n")
    command = [
        str(flower.flower_bin_dir() / "flwr"),
        "run",
        str(flower.app_directory()),
        flower.CONNECTION,
        "--run-config",
        str(run_config),
        "--format",
        "json",
    ]
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=flower.flower_environment(home),
    )


def run_training(
    config: StationConfig,
    hub: StationHubClient,
    task: TaskSpec,
    signed: dict[str, Any],
    schema: Any,
    stopping: threading.Event | None = None,
) -> dict[str, Any]:
    """Take part in the task's training run and return its released result.

    Raises
    ------
    TrainingFailed
        With the cause: the ServerApp's error (naming the stations that
        stopped), the hub's, a failed ``flwr run``, or a deadline.
    """
    section = config.flower
    if section is None or section.superlink is None:
        raise TrainingFailed(
            f"station {config.station.name} has no [flower] superlink in its "
            "config, so it runs no SuperNode for training"
        )
    folder = TaskFolder(config.station.state_dir, task.task_id)
    folder.accept(signed)
    launcher = task.parties[0].station == config.station.name
    deadline = time.monotonic() + section.run_timeout_seconds
    with tempfile.TemporaryDirectory(dir=folder.path) as work:
        submission = None
        if launcher:
            process = launch_run(config, task, signed, schema, Path(work))
            submission = _Submission(config, process)
            logger.info("task %s: submitting the Flower run", task.task_id)
        try:
            return _wait(config, hub, task, folder, submission, deadline, stopping)
        finally:
            if submission is not None and folder.outcome() is None:
                submission.stop()


class _Submission:
    """The ``flwr run`` of the station that submits a run, and the run it made."""

    def __init__(self, config: StationConfig, process: subprocess.Popen[str]):
        self.config = config
        self.process = process
        self.run_id: str | None = None
        self.next_status_check = time.monotonic() + STATUS_CHECK_SECONDS
        self.finished_at: float | None = None

    @property
    def home(self) -> Path:
        """FLWR_HOME of this station's flwr commands."""
        return self.config.station.state_dir / "flower" / "cli-home"

    def check(self) -> None:
        """Raise TrainingFailed if the submission or the run failed."""
        if self.run_id is None:
            if self.process.poll() is None:
                return
            output = self.process.stdout.read() if self.process.stdout else ""
            if self.process.returncode != 0:
                raise TrainingFailed(f"flwr run failed: {_flwr_error(output)}")
            self.run_id = _run_id(output)
            logger.info("Flower run %s submitted", self.run_id)
            return
        now = time.monotonic()
        if now < self.next_status_check:
            return
        self.next_status_check = now + STATUS_CHECK_SECONDS
        try:
            listed = flower.run_flwr(
                self.home,
                ["ls", "--run-id", self.run_id, flower.CONNECTION],
                timeout=30.0,
            )
        except flower.FlowerError as error:
            logger.warning("checking Flower run %s failed: %s", self.run_id, error)
            return
        run = (listed.get("runs") or [{}])[0]
        status = str(run.get("status", ""))
        if not status.startswith("finished"):
            return
        # The outcome reaches the stations just before the run finishes.
        if self.finished_at is None:
            self.finished_at = now
        elif now - self.finished_at > OUTCOME_GRACE_SECONDS:
            details = run.get("status-details") or "see the SuperLink's log"
            raise TrainingFailed(
                f"Flower run {self.run_id} ended ({status}) without sending the "
                f"outcome: {details}"
            )

    def stop(self) -> None:
        """Stop the submission and the run, unless they have ended."""
        if self.run_id is None and self.process.poll() == 0:
            output = self.process.stdout.read() if self.process.stdout else ""
            self.run_id = _run_id(output)
        _stop(self.process)
        if self.run_id is None:
            return
        try:
            flower.run_flwr(self.home, ["stop", self.run_id, flower.CONNECTION])
            logger.info("Flower run %s stopped", self.run_id)
        except flower.FlowerError as error:
            logger.warning("stopping Flower run %s failed: %s", self.run_id, error)


def _wait(
    config: StationConfig,
    hub: StationHubClient,
    task: TaskSpec,
    folder: TaskFolder,
    submission: _Submission | None,
    deadline: float,
    stopping: threading.Event | None,
) -> dict[str, Any]:
    logged = 0
    while True:
        outcome = folder.outcome()
        if outcome is not None:
            return _finish(outcome)
        logged = _log_progress(hub, task, folder, logged)
        if submission is not None:
            submission.check()
        if time.monotonic() > deadline:
            raise TrainingFailed(
                "the training run did not finish within "
                f"{config.flower.run_timeout_seconds:.0f} s"  # type: ignore[union-attr]
            )
        _check_hub(hub, task)
        if stopping is not None and stopping.is_set():
            raise TrainingFailed(
                f"station {config.station.name} stopped during the training run"
            )
        time.sleep(CHECK_SECONDS)


def _finish(outcome: dict[str, Any]) -> dict[str, Any]:
    if outcome.get("event") != "completed":
        raise TrainingFailed(str(outcome.get("error") or "the training run failed"))
    result = outcome.get("result")
    if not isinstance(result, dict):
        raise TrainingFailed("the training run's outcome has no result")
    return result


def _log_progress(
    hub: StationHubClient, task: TaskSpec, folder: TaskFolder, logged: int
) -> int:
    """Log and report each exchange the ClientApp recorded since `logged`.

    Returns the count of exchanges recorded. The metrics are the pooled ones
    of the model before this exchange, which the ServerApp sends along with
    it. Only the newest exchange is reported to the hub.
    """
    entries = folder.progress()
    for entry in entries[logged:]:
        previous = entry.get("previous") or {}
        metrics = ", ".join(
            f"{name} {previous[name]:.4f}"
            for name in ("loss", "accuracy")
            if isinstance(previous.get(name), float)
        )
        rounds = int(entry.get("rounds") or 0)
        exchange = int(entry.get("exchange") or 0)
        if exchange > rounds:
            step = f"evaluation of the model after {rounds} round(s)"
        else:
            step = f"round {exchange} of {rounds}"
        logger.info(
            "task %s: %s%s",
            task.task_id,
            step,
            f" (model before it: {metrics})" if metrics else "",
        )
    if len(entries) > logged:
        newest = entries[-1]
        progress = {
            "round": int(newest.get("exchange") or 1),
            "rounds": int(newest.get("rounds") or 1),
        }
        try:
            hub.post_event(task.task_id, "progress", progress=progress)
        except HubError as error:
            logger.warning(
                "task %s: reporting round %d failed: %s",
                task.task_id,
                progress["round"],
                error,
            )
    return len(entries)


def _check_hub(hub: StationHubClient, task: TaskSpec) -> None:
    try:
        state = hub.task_state(task.task_id)
    except HubError as error:
        logger.warning("task %s: hub check failed: %s", task.task_id, error)
        return
    if state.get("state") in ("failed", "revoked", "expired"):
        raise TrainingFailed(
            f"stopped because the request is {state['state']} at the hub: "
            f"{state.get('error') or 'no reason given'}"
        )


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _run_id(output: str) -> str | None:
    start = output.find("{")
    try:
        parsed = json.loads(output[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        return None
    run_id = parsed.get("run-id") if isinstance(parsed, dict) else None
    return str(run_id) if run_id else None


def _flwr_error(output: str) -> str:
    start = output.find("{")
    if start >= 0:
        try:
            parsed = json.loads(output[start:])
            return str(parsed.get("error-message") or parsed)
        except json.JSONDecodeError:
            pass
    return output.strip()[-1000:] or "no output"


ProgressCallback = Callable[[dict[str, Any]], None]

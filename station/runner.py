"""Execute one signed task at this station.

Steps: verify the hub's signature, check the task against this station's
local policy and the collaboration rules, compute the local aggregates (or,
for an overlap query, the local identifier lists), run this station's MPC
party as a separate process under a deadline, and report the checked result
to the hub, sealed to the requester's key from the task. Every step is
written to the station's own audit chain. A refusal or failure here is
reported to the hub, which fails the request for every station.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from linksight import signing
from linksight.joins import joined_schema
from linksight.result_encryption import fingerprint, seal_result
from linksight.rules import CollaborationRules, check_query
from linksight.signing import canonical_json
from linksight.tasks import TaskSpec
from station import join_task, logistic, regression, survival
from station.aggregates import (
    Layout,
    build_layout,
    compute_difference_counts,
    compute_largest_contributions,
    compute_local_vector,
    compute_region_counts,
    dominance_bit_length,
    fixed_point_size,
    magnitude_column,
    magnitude_groups,
)
from station.config import StationConfig
from station.filter_triples import REGION_COUNT
from station.hub_client import HubError, StationHubClient
from station.ledger import TERMINAL_STATES, StationLedger
from station.overlap_lists import compute_overlap_lists
from station.overlap_task import (
    HISTORY_LIMIT,
    build_overlap_result,
    party_input,
    released_figures,
)
from station.regression import (
    build_design,
    build_model_result,
    compute_local_statistics,
)
from station.result import build_result
from station.store import DatasetStore, DatasetVersion
from station.training import build_training_design
from station.training_run import TrainingFailed, run_training

logger = logging.getLogger("linksight.station")

# Seconds between checks of the hub's view of a running task.
HUB_CHECK_SECONDS = 1.0
# Seconds a party process gets beyond its own deadline before it is killed.
KILL_GRACE_SECONDS = 10.0


class TaskRefused(Exception):
    """This station will not run the task; the message gives the reason."""


class TaskFailed(Exception):
    """The task could not be completed at this station."""


@dataclass
class PreparedTask:
    """A verified task with this station's part computed, ready for MPC."""

    task: TaskSpec
    party_input: dict[str, Any]
    build_result: Callable[[dict[str, Any]], dict[str, Any]]
    # What the log says about the party input, such as "12 slots, f=64".
    summary: str
    # Called with the party output and the result once the result is built.
    after_result: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
    # Runs the task in place of an MPC party (training runs under Flower) and
    # returns the output that build_result receives.
    run: Callable[[], dict[str, Any]] | None = None


class TaskRunner:
    """Runs the tasks one station receives, one at a time."""

    def __init__(
        self,
        config: StationConfig,
        store: DatasetStore,
        ledger: StationLedger,
        hub: StationHubClient,
    ):
        self.config = config
        self.store = store
        self.ledger = ledger
        self.hub = hub
        self.hub_key = signing.parse_public_key(config.station.hub_public_key)
        # Set when the station daemon stops; a training run then stops waiting.
        self.stopping = threading.Event()

    def _audit(self, event: str, outcome: str, task: dict[str, Any], **details: Any):
        # The NEN 7513 user of a task is the scientist on whose behalf this
        # station's data is read; the station itself is one of the objects.
        self.ledger.audit.append(
            event,
            organisation=task.get("requester_organisation", ""),
            user=task.get("requester", ""),
            role="scientist",
            outcome=outcome,
            purpose=task.get("purpose", ""),
            objects={
                "station": self.config.station.name,
                "collaboration": task.get("collaboration"),
                "request": task.get("request_id"),
                "task": task.get("task_id"),
                "dataset": (task.get("query") or {}).get("dataset"),
            },
            details=details,
        )

    def handle(self, signed: dict[str, Any]) -> None:
        """Run one task from the hub's task list, unless already handled."""
        raw_task = signed.get("task") if isinstance(signed, dict) else None
        if not isinstance(raw_task, dict) or "task_id" not in raw_task:
            logger.error("ignoring a malformed task from the hub: no task_id")
            return
        task_id = str(raw_task["task_id"])
        request_id = str(raw_task.get("request_id", ""))
        if self.ledger.task_state(task_id) in TERMINAL_STATES:
            # Listed again: the hub missed this station's final report, for
            # example because it was down. Send the same report, not a rerun.
            report = self.ledger.task_report(task_id)
            if report is not None:
                logger.info(
                    "task %s: hub lists it again; resending %s",
                    task_id,
                    report["event"],
                )
                self._report(task_id, **report)
            return

        try:
            task = self._verify(signed)
            prepared = self._prepare(task, signed)
        except TaskRefused as refusal:
            logger.warning("task %s refused: %s", task_id, refusal)
            self._audit("task_refused", "refused", raw_task, reason=str(refusal))
            self._finish(task_id, request_id, "refused", error=str(refusal))
            return

        self._audit("task_accepted", "success", raw_task)
        self.ledger.set_task_state(task_id, request_id, "running")
        self._report(task_id, "started")
        started = time.monotonic()
        try:
            if prepared.run is not None:
                output = prepared.run()
            else:
                output = self._run_party(prepared)
        except TaskFailed as failure:
            logger.error("task %s failed: %s", task_id, failure)
            self._audit("task_failed", "failure", raw_task, error=str(failure))
            self._finish(task_id, request_id, "failed", error=str(failure))
            return

        result = prepared.build_result(output)
        if prepared.after_result is not None:
            prepared.after_result(output, result)
        seconds = time.monotonic() - started
        logger.info(
            "task %s completed: request %s, status %s, %.2f s (MPC %.2f s)",
            task_id,
            request_id,
            result["status"],
            seconds,
            output.get("mpc_seconds", 0.0),
        )
        self._audit(
            "task_completed",
            result["status"],
            raw_task,
            result_sha256=result["sha256"],
            checks=[
                {"rule": c["rule"], "passed": c["passed"]} for c in result["checks"]
            ],
            # Lets an auditor compare with the scientist's own key whether the
            # hub put another key in the task.
            recipient_key=fingerprint(prepared.task.requester_key),
            seconds=round(seconds, 3),
        )
        # Only the requester can open what the hub receives; the ledger keeps
        # the sealed report, so that a resent report is the same.
        sealed = seal_result(result, prepared.task.requester_key)
        self._finish(task_id, request_id, "completed", result=sealed)

    def _finish(
        self,
        task_id: str,
        request_id: str,
        event: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        report = {"event": event, "result": result, "error": error}
        self.ledger.set_task_state(task_id, request_id, event, error, report=report)
        self._report(task_id, event, result=result, error=error)

    def _report(
        self,
        task_id: str,
        event: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        try:
            self.hub.post_event(task_id, event, result=result, error=error)
        except HubError as failure:
            # The hub lists the task again on the next poll if it missed this.
            logger.error("task %s: reporting %s failed: %s", task_id, event, failure)

    def _verify(self, signed: dict[str, Any]) -> TaskSpec:
        try:
            signing.verify(self.hub_key, signed["task"], str(signed.get("signature")))
        except signing.SignatureError as error:
            raise TaskRefused(
                "the hub's signature on the task does not verify with the hub "
                "public key in this station's config"
            ) from error
        try:
            return TaskSpec.model_validate(signed["task"])
        except ValidationError as error:
            raise TaskRefused(f"the task is malformed: {error}") from error

    def _prepare(self, task: TaskSpec, signed: dict[str, Any]) -> PreparedTask:
        if task.query.joins:
            return self._prepare_join(task)
        current = self._check_policy(task)
        if task.query.kind == "train":
            return self._prepare_training(task, signed, current)
        if task.query.kind == "overlap":
            return self._prepare_overlap(task, current)
        if task.query.kind == "ols":
            return self._prepare_regression(task, current)
        if task.query.kind == "logit":
            return self._prepare_logistic(task, current)
        if task.query.kind in ("km", "logrank"):
            return self._prepare_survival(task, current)
        return self._prepare_aggregate(task, current)

    def _check_policy(self, task: TaskSpec) -> DatasetVersion:
        self._check_local_policy(task)
        current = self._current_dataset(task, task.query.dataset)
        policy = self.config.policy
        names = [party.station for party in task.parties]
        rules = CollaborationRules(
            min_count=task.disclosure.min_count,
            allowed_analyses=policy.allowed_analyses,
        )
        violation = check_query(
            task.query, current.schema, rules, len(task.parties), names
        )
        if violation is not None:
            raise TaskRefused(f"rule {violation.rule}: {violation.message}")
        return current

    def _check_local_policy(self, task: TaskSpec) -> None:
        names = [party.station for party in task.parties]
        if self.config.station.name not in names:
            raise TaskRefused(
                f"station {self.config.station.name!r} is not a party of this task"
            )
        policy = self.config.policy
        if task.disclosure.min_count < policy.min_count:
            raise TaskRefused(
                f"the task's minimum count {task.disclosure.min_count} is below "
                f"this station's local minimum {policy.min_count}"
            )
        if task.disclosure.min_level_count < policy.min_level_count:
            raise TaskRefused(
                f"the task's minimum level count {task.disclosure.min_level_count} "
                f"is below this station's local minimum {policy.min_level_count}"
            )
        if task.query.kind not in policy.allowed_analyses:
            raise TaskRefused(
                f"analysis {task.query.kind!r} is not allowed by this station's "
                f"local policy; allowed: {', '.join(policy.allowed_analyses)}"
            )
        if task.mpc_timeout_seconds > policy.max_mpc_seconds:
            raise TaskRefused(
                f"the task's MPC deadline {task.mpc_timeout_seconds:.0f} s exceeds "
                f"this station's maximum {policy.max_mpc_seconds:.0f} s"
            )

    def _current_dataset(self, task: TaskSpec, dataset: str) -> DatasetVersion:
        entry = next((d for d in self.config.datasets if d.name == dataset), None)
        if entry is None or task.collaboration not in entry.collaborations:
            raise TaskRefused(
                f"dataset {dataset!r} is not offered to collaboration "
                f"{task.collaboration!r} by this station"
            )
        current = self.store.current(dataset)
        if current is None:
            raise TaskRefused(
                f"dataset {dataset!r} has not been imported at this "
                "station; run `linksight station import`"
            )
        return current

    def _prepare_join(self, task: TaskSpec) -> PreparedTask:
        """Lay out the join; an owner reads its rows, a helper contributes none."""
        self._check_local_policy(task)
        if task.join is None:
            raise TaskRefused(
                "invalid task: it joins datasets but its join placement is "
                "missing, so the station of each dataset is unknown; the hub "
                "must name them in the task's join placement"
            )
        names = [party.station for party in task.parties]
        rules = CollaborationRules(
            min_count=task.disclosure.min_count,
            allowed_analyses=self.config.policy.allowed_analyses,
        )
        schema = joined_schema(task.query, task.join.schemas)
        violation = check_query(task.query, schema, rules, len(names), names)
        if violation is not None:
            raise TaskRefused(f"rule {violation.rule}: {violation.message}")
        try:
            plan = join_task.plan_join(task)
        except ValueError as error:
            raise TaskRefused(f"local computation failed: {error}") from error

        me = self.config.station.name
        mine = [d for d, station in task.join.stations.items() if station == me]
        own_rows = None
        summary = "join helper with no rows"
        if mine:
            dataset = mine[0]
            current = self._current_dataset(task, dataset)
            if not current.schema.public_equal(task.join.schemas[dataset]):
                raise TaskRefused(
                    f"the task's schema of dataset {dataset!r} differs from the "
                    "one imported at this station; the station registers its "
                    "schema again when it starts, so submit the query again"
                )
            try:
                own_rows = join_task.read_owner_rows(
                    task, plan.owners[dataset], current.path
                )
            except Exception as error:  # a query the local engine cannot run
                raise TaskRefused(f"local computation failed: {error}") from error
            summary = (
                f"join of {dataset} with {len(own_rows['keys'])} keys "
                f"({own_rows['dropped_keys']} invalid or repeated dropped)"
            )
        party = join_task.party_input(task, plan, own_rows, self.config.mpc.threads)
        return PreparedTask(
            task,
            party,
            lambda output: join_task.build_join_result(task, plan, output),
            summary,
        )

    def _prepare_aggregate(
        self, task: TaskSpec, current: DatasetVersion
    ) -> PreparedTask:
        layout = build_layout(task.query, current.schema)
        try:
            vector = compute_local_vector(task.query, layout, current.path)
        except Exception as error:  # a query the local engine cannot run
            raise TaskRefused(f"local computation failed: {error}") from error
        try:
            differences = compute_difference_counts(
                task.query, layout, task.history, current.path
            )
        except Exception as error:  # an earlier filter the local engine cannot run
            raise TaskRefused(f"differencing check failed: {error}") from error
        # The triples pair the newest of the queries in the differencing window.
        earlier = task.history[: task.disclosure.overlapping_filters_window]
        try:
            region_counts = compute_region_counts(
                task.query, layout, earlier, current.path
            )
        except Exception as error:  # an earlier filter the local engine cannot run
            raise TaskRefused(f"overlapping-filters check failed: {error}") from error
        dominance = self._dominance_input(task, layout, current)
        mine = self.config.station.organisation == task.requester_organisation
        own_vector = vector if mine else [0.0] * len(vector)
        fraction_bits = fixed_point_size(task.query, current.schema, len(task.parties))
        organisations = {p.organisation for p in task.parties}
        aggregate_input = {
            "vector": vector,
            "own_vector": own_vector,
            "outputs": [
                {
                    "label": o.label,
                    "func": o.func,
                    "cell": o.cell,
                    "n_slot": o.n_slot,
                    "sum_slot": o.sum_slot,
                    "square_slot": o.square_slot,
                }
                for o in layout.outputs
            ],
            "min_count": task.disclosure.min_count,
            "requester_contributes": task.requester_organisation in organisations,
            "fraction_bits": fraction_bits,
            "differences": [d.as_dict() for d in differences],
            "dominance": dominance,
            "overlapping_filters": {
                "counts": region_counts,
                "triples": len(region_counts) // REGION_COUNT,
                "request_ids": [query.request_id for query in earlier],
            },
        }
        return PreparedTask(
            task,
            aggregate_input,
            lambda output: build_result(task, layout, output),
            f"{len(vector)} slots, f={fraction_bits}",
        )

    def _dominance_input(
        self, task: TaskSpec, layout: Layout, current: DatasetVersion
    ) -> dict[str, Any] | None:
        settings = task.disclosure
        groups = magnitude_groups(layout)
        if not groups or (settings.dominance_k >= 1 and settings.p_percent <= 0):
            return None
        # The p% rule needs the two largest contributions.
        largest = max(settings.dominance_n, 2)
        try:
            values = compute_largest_contributions(
                task.query, layout, largest, current.path
            )
        except Exception as error:  # a query the local engine cannot run
            raise TaskRefused(f"dominance check failed: {error}") from error
        columns = sorted({column for _, column in groups})
        return {
            "values": values,
            "bit_length": dominance_bit_length(
                current.schema, columns, len(task.parties)
            ),
            "largest": largest,
            "n": settings.dominance_n,
            "k": settings.dominance_k,
            "p": settings.p_percent,
            "groups": [
                {
                    "cell": cell,
                    "column": column,
                    "outputs": [
                        index
                        for index, output in enumerate(layout.outputs)
                        if output.cell == cell
                        and magnitude_column(layout, output) == column
                    ],
                }
                for cell, column in groups
            ],
        }

    def _prepare_regression(
        self, task: TaskSpec, current: DatasetVersion
    ) -> PreparedTask:
        try:
            design = build_design(task.query, current.schema)
            vector = compute_local_statistics(task.query, design, current.path)
        except Exception as error:  # a query the local engine cannot run
            raise TaskRefused(f"local computation failed: {error}") from error
        mine = self.config.station.organisation == task.requester_organisation
        regression_input = regression.party_input(task, design, vector, mine)
        return PreparedTask(
            task,
            regression_input,
            lambda output: build_model_result(task, design, output),
            f"ols with {design.parameters} parameters, "
            f"f={regression_input['fraction_bits']}",
        )

    def _prepare_survival(
        self, task: TaskSpec, current: DatasetVersion
    ) -> PreparedTask:
        try:
            table = survival.local_table(task.query, current.schema, current.path)
        except Exception as error:  # a query the local engine cannot run
            raise TaskRefused(f"local computation failed: {error}") from error
        mine = self.config.station.organisation == task.requester_organisation
        survival_input = survival.party_input(task, current.schema, table, mine)
        return PreparedTask(
            task,
            survival_input,
            lambda output: survival.build_survival_result(task, current.schema, output),
            f"{task.query.kind} over {len(table)} time and group lines",
        )

    def _prepare_logistic(
        self, task: TaskSpec, current: DatasetVersion
    ) -> PreparedTask:
        try:
            design = build_design(task.query, current.schema)
            rows = logistic.local_rows(task.query, design, current.path)
            counts = logistic.count_local(rows, design.parameters)
        except Exception as error:  # a query the local engine cannot run
            raise TaskRefused(f"local computation failed: {error}") from error
        mine = self.config.station.organisation == task.requester_organisation
        logistic_input = logistic.party_input(task, design, rows, counts, mine)
        return PreparedTask(
            task,
            logistic_input,
            lambda output: build_model_result(task, design, output),
            f"logit with {design.parameters} parameters, "
            f"f={logistic_input['fraction_bits']}",
        )

    def _prepare_training(
        self, task: TaskSpec, signed: dict[str, Any], current: DatasetVersion
    ) -> PreparedTask:
        try:
            build_training_design(task.query, current.schema)
        except Exception as error:  # a formula the local schema cannot lay out
            raise TaskRefused(f"local computation failed: {error}") from error

        def run() -> dict[str, Any]:
            try:
                result = run_training(
                    self.config, self.hub, task, signed, current.schema, self.stopping
                )
            except TrainingFailed as failure:
                raise TaskFailed(str(failure)) from failure
            return {"ok": True, "result": result}

        def build(output: dict[str, Any]) -> dict[str, Any]:
            result = dict(output["result"])
            result["sha256"] = hashlib.sha256(canonical_json(result)).hexdigest()
            return result

        training = task.query.training
        assert training is not None
        return PreparedTask(
            task,
            {},
            build,
            f"train {training.family}, {training.rounds} round(s)",
            run=run,
        )

    def _prepare_overlap(self, task: TaskSpec, current: DatasetVersion) -> PreparedTask:
        try:
            lists = compute_overlap_lists(task.query, current.schema, current.path)
        except Exception as error:  # a query the local engine cannot run
            raise TaskRefused(f"local computation failed: {error}") from error
        index = [p.station for p in task.parties].index(self.config.station.name)
        history = self.ledger.overlap_releases_for(
            task.collaboration, task.query.dataset, HISTORY_LIMIT
        )
        overlap_input = party_input(
            task, lists, index, history, self.config.mpc.threads
        )

        def after_result(output: dict[str, Any], result: dict[str, Any]) -> None:
            figures = released_figures(output)
            if figures:
                self.ledger.record_overlap_release(
                    task.collaboration, task.query.dataset, task.request_id, figures
                )
            suspects = output.get("suspect_requests") or []
            if suspects:
                logger.warning(
                    "task %s: request %s refused as a possible differencing "
                    "attack against request(s) %s",
                    task.task_id,
                    task.request_id,
                    ", ".join(suspects),
                )
                self._audit(
                    "differencing_suspected",
                    "blocked",
                    task.model_dump(mode="json"),
                    earlier_requests=suspects,
                )

        identifiers = sum(len(ids) for ids in lists.identifiers)
        return PreparedTask(
            task,
            overlap_input,
            lambda output: build_overlap_result(task, lists, output),
            f"overlap of {identifiers} identifiers in {len(lists.cells)} cell(s)",
            after_result,
        )

    def _run_party(self, prepared: PreparedTask) -> dict[str, Any]:
        task = prepared.task
        index = [p.station for p in task.parties].index(self.config.station.name)
        party_config = {
            "parties": [p.model_dump() for p in task.parties],
            "index": index,
            "bind_host": self.config.mpc.host,
            "timeout_seconds": task.mpc_timeout_seconds,
            **prepared.party_input,
        }
        work_dir = self.config.station.state_dir / "mpc"
        work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=work_dir, prefix=task.task_id[:8]) as tmp:
            input_path = Path(tmp) / "input.json"
            output_path = Path(tmp) / "output.json"
            log_path = work_dir / f"{task.task_id}.log"
            # The input contains this station's aggregates or identifiers, so only
            # this station's user may read it; the folder is removed afterwards.
            mpc = self.config.mpc
            if mpc.tls_enabled:
                party_config["tls"] = {
                    "certificate": str(mpc.certificate),
                    "key": str(mpc.key),
                    "ca_certificate": str(mpc.ca_certificate),
                    "work_dir": tmp,
                }
            input_path.touch(mode=0o600)
            input_path.write_text(json.dumps(party_config))
            logger.info(
                "task %s: starting MPC party %d of %d (port %d, %s)",
                task.task_id,
                index,
                len(task.parties),
                task.parties[index].port,
                prepared.summary,
            )
            with log_path.open("w") as log:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "station.mpc_party",
                        str(input_path),
                        str(output_path),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                self._supervise(task, process)
            if not output_path.exists():
                raise TaskFailed(
                    f"the MPC party exited with status {process.returncode} and no "
                    f"output; see {log_path}"
                )
            output = json.loads(output_path.read_text())
        if not output.get("ok"):
            raise TaskFailed(str(output.get("error")))
        return output

    def _supervise(self, task: TaskSpec, process: subprocess.Popen[bytes]) -> None:
        hard_deadline = time.monotonic() + task.mpc_timeout_seconds + KILL_GRACE_SECONDS
        next_check = time.monotonic() + HUB_CHECK_SECONDS
        while process.poll() is None:
            now = time.monotonic()
            if now > hard_deadline:
                process.kill()
                process.wait()
                raise TaskFailed(
                    f"the MPC party did not stop within its deadline of "
                    f"{task.mpc_timeout_seconds:.0f} s and was killed"
                )
            if now >= next_check:
                next_check = now + HUB_CHECK_SECONDS
                try:
                    state = self.hub.task_state(task.task_id)
                except HubError as error:
                    logger.warning("task %s: hub check failed: %s", task.task_id, error)
                    state = {}
                if state.get("state") in ("failed", "revoked", "expired"):
                    process.kill()
                    process.wait()
                    raise TaskFailed(
                        f"aborted because the request is {state['state']} at the "
                        f"hub: {state.get('error') or 'no reason given'}"
                    )
            time.sleep(0.1)

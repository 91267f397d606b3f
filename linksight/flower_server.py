"""The platform's Flower ServerApp: federated training of an approved model.

The SuperLink runs this app for a run that a station started from a signed
training task. The run config carries the task as JSON (key ``task``). The
app asks every station of the task to confirm it, then runs ``rounds``
training exchanges and one final evaluation exchange with every station,
each under SecAgg+ unless the task turns secure aggregation off
(:mod:`linksight.federated` describes the vectors). Under SecAgg+ the app
never receives a station's row count or update in the clear. Afterwards it
sends every station the outcome, either the result or the error. Each
station reports that to the hub, which compares the stations' results as
it does for MPC results.

Supervision: every station of the task must be online at the SuperLink
within 60 s and reply to the first message within 180 s, and then to every
message of an exchange within ``stage-timeout`` seconds (four messages per
SecAgg+ exchange). Otherwise the run fails with the silent stations named.
An exchange without an update from every station fails the run, so a run
cannot end as completed without real updates.

Under differential privacy (a request with ``dp_epsilon``) the stations add
the noise; the app only composes the plan
(:mod:`linksight.differential_privacy`) and records it in the result.

The environment variable ``LINKSIGHT_FLOWER_NODES`` names a JSON file that
maps station names to the node ids of their registered SuperNodes, as
:func:`linksight.flower_network.start_superlink` writes it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import Context, Message
from flwr.app.message_type import MessageType
from flwr.common import (
    EvaluateIns,
    FitIns,
    FitRes,
    GetPropertiesIns,
    Parameters,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.common.constant import MessageTypeLegacy
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext, ServerConfig
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat.app_utils import start_update_client_manager_thread
from flwr.server.strategy import FedAvg
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key
from flwr.server.workflow.default_workflows import default_fit_workflow
from flwr.serverapp import Grid, ServerApp

from linksight import federated
from linksight.differential_privacy import PrivacyPlan, plan_privacy
from linksight.tasks import TaskSpec

NODES_VARIABLE = "LINKSIGHT_FLOWER_NODES"
# Seconds to wait for every station's SuperNode to be online at the start.
ONLINE_TIMEOUT_SECONDS = 60.0
# Seconds every station has to answer the first message of a run, which
# starts Flower's SuperExec and installs the app bundle at the station.
GREETING_TIMEOUT_SECONDS = 180.0

logger = logging.getLogger("linksight.flower")


class RunFailed(RuntimeError):
    """The training run cannot go on; the message names the cause."""


@dataclass
class TrainingRun:
    """One run's task, stations and progress, as the strategy updates them."""

    task: TaskSpec
    nodes: dict[str, int]
    parameters: np.ndarray
    hyperparameters: dict[str, float]
    exchange: int = 0
    updated: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    # The noise plan of a request with dp_epsilon, else None.
    privacy: PrivacyPlan | None = None

    @property
    def station_of(self) -> dict[int, str]:
        """Station name by node id."""
        return {node: station for station, node in self.nodes.items()}


class TrainingStrategy(FedAvg):
    """Sends every exchange to exactly the task's stations and checks the sums."""

    def __init__(self, run: TrainingRun, secure: bool):
        super().__init__(fraction_evaluate=0.0, min_evaluate_clients=0)
        self.run = run
        self.secure = secure

    def configure_fit(self, server_round, parameters, client_manager):
        clients = client_manager.all()
        missing = [s for s, node in self.run.nodes.items() if str(node) not in clients]
        if missing:
            raise RunFailed(
                f"station(s) {', '.join(sorted(missing))} went offline before "
                f"exchange {self.run.exchange}"
            )
        config = {
            "task-id": self.run.task.task_id,
            "exchange": self.run.exchange,
            "rounds": self.run.task.query.training.rounds,
            "history": json.dumps(self.run.history),
        }
        fit = FitIns(parameters, config)
        return [(clients[str(node)], fit) for node in self.run.nodes.values()]

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[Any],
    ):
        answered = {proxy.node_id for proxy, _ in results}
        silent = [
            station for station, node in self.run.nodes.items() if node not in answered
        ]
        if silent or failures:
            raise RunFailed(
                f"exchange {self.run.exchange}: no update from station(s) "
                f"{', '.join(sorted(silent)) or 'none'}; {len(failures)} failure(s): "
                + "; ".join(str(f) for f in failures[:3])
            )
        vectors = [parameters_to_ndarrays(res.parameters)[0] for _, res in results]
        if self.secure:
            # SecAgg+ returns the mean over stations, each with weight 1.
            total = vectors[0] * len(results)
        else:
            total = np.sum(vectors, axis=0)
        self.run.updated = True
        self.pooled = federated.split_sums(total * federated.SUM_SCALE)
        return ndarrays_to_parameters([total]), {}


class RecordingGrid:
    """Passes messages to the Grid and records the nodes that did not reply.

    SecAgg+ halts an exchange when a station's reply is missing, but logs
    only counts; the record lets the run name the station.
    """

    def __init__(self, grid: Grid):
        self.grid = grid
        self.silent: set[int] = set()
        self.errors: list[str] = []

    def send_and_receive(self, messages, *, timeout=None):
        """Send `messages`; record destinations with no reply or an error."""
        messages = list(messages)
        replies = list(self.grid.send_and_receive(messages, timeout=timeout))
        answered = set()
        for reply in replies:
            if reply.has_error():
                self.errors.append(str(reply.error.reason)[:300])
            else:
                answered.add(reply.metadata.src_node_id)
        self.silent |= {m.metadata.dst_node_id for m in messages} - answered
        return replies

    def __getattr__(self, name: str) -> Any:
        return getattr(self.grid, name)


def _load_nodes(task: TaskSpec) -> dict[str, int]:
    path = os.environ.get(NODES_VARIABLE)
    if not path:
        raise RunFailed(
            f"{NODES_VARIABLE} is not set; set it in the SuperLink's environment "
            "to the JSON file of the stations' registered node ids"
        )
    registered = json.loads(open(path).read())
    stations = [party.station for party in task.parties]
    unregistered = [s for s in stations if s not in registered]
    if unregistered:
        raise RunFailed(
            f"station(s) {', '.join(unregistered)} have no SuperNode registered "
            "with the SuperLink"
        )
    return {s: int(registered[s]) for s in stations}


def _wait_online(grid: Grid, run: TrainingRun, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        online = set(grid.get_node_ids())
        offline = [s for s, node in run.nodes.items() if node not in online]
        if not offline:
            return
        if time.monotonic() > deadline:
            raise RunFailed(
                f"station(s) {', '.join(sorted(offline))} were not online at the "
                f"SuperLink within {timeout:.0f} s"
            )
        time.sleep(0.5)


def _greet(grid: Grid, run: TrainingRun, timeout: float) -> None:
    """Ask every station's ClientApp whether it accepted the task.

    The first message to a SuperNode of a run is much slower than the rest,
    so it goes out before the exchanges and their stage timeout.
    """
    content = compat.getpropertiesins_to_recorddict(GetPropertiesIns({}))
    messages = [
        Message(
            content=content,
            dst_node_id=node,
            message_type=MessageTypeLegacy.GET_PROPERTIES,
            group_id="greeting",
        )
        for node in run.nodes.values()
    ]
    recording = RecordingGrid(grid)
    recording.send_and_receive(messages, timeout=timeout)
    if recording.silent:
        stations = sorted(run.station_of[node] for node in recording.silent)
        detail = "; ".join(recording.errors[:3])
        raise RunFailed(
            f"station(s) {', '.join(stations)} did not take part in the run "
            f"within {timeout:.0f} s" + (f": {detail}" if detail else "")
        )


def _offline_stations(grid: Grid, run: TrainingRun) -> list[str]:
    online = set(grid.get_node_ids())
    return sorted(s for s, node in run.nodes.items() if node not in online)


def _send_outcome(grid: Grid, run: TrainingRun, outcome: dict[str, Any]) -> None:
    """Send the run's outcome to every station that is still online."""
    parameters = ndarrays_to_parameters([run.parameters])
    config = {"task-id": run.task.task_id, "outcome": json.dumps(outcome)}
    content = compat.evaluateins_to_recorddict(EvaluateIns(parameters, config), True)
    online = set(grid.get_node_ids())
    messages = [
        Message(
            content=content,
            dst_node_id=node,
            message_type=MessageType.EVALUATE,
            group_id="outcome",
        )
        for node in run.nodes.values()
        if node in online
    ]
    if messages:
        grid.send_and_receive(messages, timeout=GREETING_TIMEOUT_SECONDS)


def build_result(
    run: TrainingRun, names: list[str], scales: list[float], response_scale: float
):
    """Return the released result: coefficients, metrics and checks.

    With a holdout, the pooled metrics of the final model on the held-out
    rows are released under ``holdout`` when those rows, too, pass min_count.

    Coefficients are in the columns' own units. The design divides every
    numeric column, and a numeric response, by its declared maximum absolute
    value, so a coefficient is scaled back by response_scale / scale, and a
    squared-error loss by response_scale ** 2.
    """
    task = run.task
    training = task.query.training
    final = run.history[-1]
    n = final["n"]
    p = federated.parameter_count(training.family, len(names), run.hyperparameters)
    checks = [
        {
            "rule": "min_count",
            "passed": n >= task.disclosure.min_count,
            "value": n,
            "limit": task.disclosure.min_count,
        },
        {
            "rule": "min_residual_df",
            "passed": n - p >= task.disclosure.min_residual_df,
            "value": n - p,
            "limit": task.disclosure.min_residual_df,
        },
        {
            "rule": "max_parameter_fraction",
            "passed": p <= task.disclosure.max_parameter_fraction * n,
            "value": p,
            "limit": task.disclosure.max_parameter_fraction * n,
        },
    ]
    if training.holdout:
        test_n = final["test_n"]
        checks.append(
            {
                "rule": "min_count",
                "passed": test_n >= task.disclosure.min_count,
                "value": test_n,
                "limit": task.disclosure.min_count,
                "cell": {"rows": "held out"},
            }
        )
    blocked = not all(c["passed"] for c in checks)
    result: dict[str, Any] = {
        "kind": "train",
        "query": task.query_text,
        "min_count": task.disclosure.min_count,
        "family": training.family,
        "formula": task.query.model.formula,
        "rounds": training.rounds,
        "secure_aggregation": training.secure_aggregation,
        "hyperparameters": run.hyperparameters,
        "holdout": {"fraction": training.holdout, "seed": training.holdout_seed},
        "differential_privacy": None
        if run.privacy is None
        else run.privacy.record(training.family, len(names), run.hyperparameters),
        "status": "blocked" if blocked else "released",
        "checks": checks,
    }
    if blocked:
        return result
    coefficients = {}
    if training.family != "mlp":
        for name, value, scale in zip(names, run.parameters, scales, strict=True):
            coefficients[name] = float(value) * response_scale / scale
    history = [dict(entry) for entry in run.history]
    if training.family == "linear":
        for entry in history:
            for key in ("loss", "test_loss"):
                if entry.get(key) is not None:
                    entry[key] *= response_scale**2
    final = history[-1]
    if training.holdout:
        result["holdout"].update(
            n=final["test_n"],
            metrics={
                k.removeprefix("test_"): final[k]
                for k in ("test_loss", "test_accuracy")
                if k in final
            },
        )
    result.update(
        n=n,
        parameters=p,
        coefficients=coefficients,
        design_scales=dict(zip(names, scales, strict=True)),
        # The MLP's weights act on the scaled design (each column divided by
        # design_scales), in the order of :func:`linksight.federated.predict`.
        weights=[float(v) for v in run.parameters],
        response_scale=response_scale,
        history=history,
        metrics={k: final[k] for k in ("loss", "accuracy") if k in final},
    )
    return result


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run every exchange of one training task and send the outcome."""
    task = TaskSpec.model_validate_json(str(context.run_config["task"]))
    names = json.loads(str(context.run_config["design-names"]))
    scales = json.loads(str(context.run_config["design-scales"]))
    response_scale = float(context.run_config["response-scale"])
    stage_timeout = float(context.run_config["stage-timeout"])
    training = task.query.training
    assert training is not None
    hyper = federated.check_hyperparameters(training.family, training.hyperparameters)
    run = TrainingRun(
        task,
        {},
        federated.initial_parameters(training.family, len(names), hyper),
        hyper,
        privacy=plan_privacy(training),
    )
    try:
        run.nodes = _load_nodes(task)
        _wait_online(grid, run, ONLINE_TIMEOUT_SECONDS)
        _greet(grid, run, GREETING_TIMEOUT_SECONDS)
        _train(grid, context, run, stage_timeout)
        outcome = {
            "event": "completed",
            "result": build_result(run, names, scales, response_scale),
        }
    except (RunFailed, federated.TrainingError) as error:
        offline = _offline_stations(grid, run) if run.nodes else []
        message = str(error)
        if offline and "offline" not in message:
            message += f"; offline now: {', '.join(offline)}"
        logger.error("task %s failed: %s", task.task_id, message)
        print(f"LINKSIGHT-FAILED {json.dumps({'error': message})}", flush=True)
        outcome = {"event": "failed", "error": message}
    _send_outcome(grid, run, outcome)
    if outcome["event"] == "failed":
        raise RunFailed(outcome["error"])


def _train(grid: Grid, context: Context, run: TrainingRun, stage_timeout: float):
    training = run.task.query.training
    assert training is not None
    strategy = TrainingStrategy(run, training.secure_aggregation)
    legacy = LegacyContext(
        context,
        config=ServerConfig(num_rounds=training.rounds, round_timeout=stage_timeout),
        strategy=strategy,
    )
    thread, stop, ready = start_update_client_manager_thread(
        grid, legacy.client_manager
    )
    ready.wait()
    if training.secure_aggregation:
        # Every station reports a weight of 1, so max_weight 1 keeps the full
        # quantization range for the vector itself; Flower's default of 1000
        # scales each vector by 1/1000 before quantizing it.
        workflow = SecAggPlusWorkflow(
            num_shares=1.0,
            reconstruction_threshold=1.0,
            max_weight=1.0,
            quantization_range=federated.QUANTIZATION_RANGE,
            modulus_range=federated.MODULUS_RANGE,
            timeout=stage_timeout,
        )
    else:
        workflow = default_fit_workflow
    config = {Key.START_TIME: time.time(), Key.CURRENT_ROUND: 0}
    legacy.state.config_records[MAIN_CONFIGS_RECORD] = _config_record(config)
    try:
        deadline = time.monotonic() + ONLINE_TIMEOUT_SECONDS
        while len(legacy.client_manager.all()) < len(run.nodes):
            if time.monotonic() > deadline:
                raise RunFailed("the stations' SuperNodes did not register in time")
            time.sleep(0.2)
        # `rounds` Newton or FedAvg updates, then one exchange that only
        # evaluates the final parameters.
        for exchange in range(1, training.rounds + 2):
            run.exchange = exchange
            run.updated = False
            legacy.state.config_records[MAIN_CONFIGS_RECORD][Key.CURRENT_ROUND] = (
                exchange
            )
            legacy.state.array_records[MAIN_PARAMS_RECORD] = (
                compat.parameters_to_arrayrecord(
                    ndarrays_to_parameters([run.parameters]), True
                )
            )
            started = time.monotonic()
            recording = RecordingGrid(grid)
            workflow(recording, legacy)  # type: ignore[arg-type]
            if not run.updated or recording.silent:
                silent = sorted(run.station_of.get(n, str(n)) for n in recording.silent)
                detail = "; ".join(recording.errors[:3])
                raise RunFailed(
                    f"exchange {exchange} failed: no reply from station(s) "
                    f"{', '.join(silent) or 'none'} within {stage_timeout:.0f} s"
                    + (f" ({detail})" if detail else "")
                )
            pooled = strategy.pooled
            entry = {
                "exchange": exchange,
                "n": pooled.n,
                "loss": _finite(pooled.mean_loss),
                "seconds": round(time.monotonic() - started, 3),
            }
            if training.family != "linear":
                entry["accuracy"] = _finite(pooled.accuracy)
            if training.holdout:
                entry["test_n"] = pooled.test_n
                entry["test_loss"] = _finite(pooled.test_mean_loss)
                if training.family != "linear":
                    entry["test_accuracy"] = _finite(pooled.test_accuracy)
            if run.privacy is not None and exchange <= training.rounds:
                # Under differential privacy a training exchange releases
                # only the noisy payload, so it has no count or metrics.
                entry = {"exchange": exchange, "seconds": entry["seconds"]}
            run.history.append(entry)
            print(f"LINKSIGHT-ROUND {json.dumps(entry)}", flush=True)
            if exchange <= training.rounds:
                run.parameters = federated.next_parameters(
                    training.family,
                    run.parameters,
                    pooled,
                    run.hyperparameters,
                    privacy=run.privacy,
                    stations=len(run.nodes),
                )
    finally:
        stop.set()
        thread.join()


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _config_record(values: dict[str, Any]):
    from flwr.app import ConfigRecord

    return ConfigRecord(values)


__all__ = ["app", "Parameters"]

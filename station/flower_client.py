"""The platform's Flower ClientApp, run by a station's SuperNode.

The SuperNode passes ``station-config`` (the path of the station's TOML
config) in its node config. For every message the app checks that the run's
task is one this station's daemon accepted and that the hub's signature on
it verifies. It then reads this station's stored dataset through the
station's store, holds out the share of rows the request names (only
evaluated, never trained on), and returns its vector for the exchange
(:func:`linksight.federated.local_update`), divided by ``SUM_SCALE`` and
with a weight of 1. Under SecAgg+ neither the row count nor the update
leaves the station in the clear. A request with ``dp_epsilon`` makes the app
add this station's share of the differential privacy noise to the vector
(:mod:`linksight.differential_privacy`). The final message carries the run's
outcome, which the app stores for the daemon.

SuperNodes start a new ClientApp process for every message, so the
platform's modules are imported only where a message needs them: the
SecAgg+ key-exchange and unmask stages need none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context, Message
from flwr.app.message_type import MessageType
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common.secure_aggregation.secaggplus_constants import (
    RECORD_KEY_CONFIGS,
    Key,
)


class StationClient(NumPyClient):
    """Trains on one station's rows for one accepted task."""

    def __init__(self, config_path: Path, run_config: dict[str, Any]):
        from station.config import load_config
        from station.training import TaskFolder

        self.config = load_config(config_path)
        signed = json.loads(str(run_config["task"]))
        self.task = self._check_task(signed, str(run_config["signature"]))
        self.folder = TaskFolder(self.config.station.state_dir, self.task.task_id)

    def _check_task(self, task: dict[str, Any], signature: str):
        from linksight import signing
        from linksight.tasks import TaskSpec
        from station.training import TaskFolder

        name = self.config.station.name
        hub_key = signing.parse_public_key(self.config.station.hub_public_key)
        try:
            signing.verify(hub_key, task, signature)
        except signing.SignatureError as error:
            raise PermissionError(
                f"station {name}: the hub's signature on the run's task does not "
                "verify; refusing to train"
            ) from error
        spec = TaskSpec.model_validate(task)
        accepted = TaskFolder(self.config.station.state_dir, spec.task_id).accepted()
        if accepted is None or accepted.get("task") != task:
            raise PermissionError(
                f"station {name} has not accepted task {spec.task_id}; its daemon "
                "accepts a train task only after checking it against local policy"
            )
        return spec

    def _rows(self) -> tuple[np.ndarray, np.ndarray]:
        from station.store import DatasetStore
        from station.training import build_training_design, load_rows

        dataset = self.task.query.dataset
        store = DatasetStore(self.config.station.state_dir)
        current = store.current(dataset)
        if current is None:
            raise FileNotFoundError(f"dataset {dataset!r} is not imported here")
        design = build_training_design(self.task.query, current.schema)
        return load_rows(self.task.query, design, current.path)

    def fit(self, parameters, config):
        """Return this station's scaled vector for one exchange, weight 1."""
        from linksight import federated
        from linksight.differential_privacy import plan_privacy

        training = self.task.query.training
        assert training is not None
        hyper = federated.check_hyperparameters(
            training.family, training.hyperparameters
        )
        x, y = self._rows()
        held_out = None
        if training.holdout:
            mask = federated.holdout_mask(
                len(y), training.holdout, training.holdout_seed
            )
            held_out = (x[mask], y[mask])
            x, y = x[~mask], y[~mask]
        theta = np.asarray(parameters[0], dtype=float)
        exchange = int(config.get("exchange", 0))
        vector = federated.local_update(
            training.family,
            theta,
            x,
            y,
            hyper,
            held_out,
            privacy=plan_privacy(training),
            final=exchange > training.rounds,
            stations=len(self.task.parties),
        )
        history = json.loads(str(config.get("history", "[]")))
        self.folder.add_progress(
            {
                "exchange": exchange,
                "rounds": int(config.get("rounds", training.rounds)),
                "previous": history[-1] if history else None,
            }
        )
        return [vector / federated.SUM_SCALE], 1, {}

    def get_properties(self, config):
        """Return this station's name; the task was checked on creation."""
        return {"station": self.config.station.name}

    def evaluate(self, parameters, config):
        """Store the run's outcome, sent by the ServerApp after the last exchange."""
        outcome = json.loads(str(config["outcome"]))
        self.folder.write_outcome(outcome)
        return 0.0, 1, {}


def _client_fn(context: Context):
    config_path = Path(str(context.node_config["station-config"]))
    return StationClient(config_path, dict(context.run_config)).to_client()


def _secure_aggregation_mod(message: Message, context: Context, call_next):
    """Apply SecAgg+ to its own stage messages; pass every other message on."""
    configs = message.content.config_records.get(RECORD_KEY_CONFIGS)
    if (
        message.metadata.message_type == MessageType.TRAIN
        and configs is not None
        and Key.STAGE in configs
    ):
        return secaggplus_mod(message, context, call_next)
    return call_next(message, context)


app = ClientApp(client_fn=_client_fn, mods=[_secure_aggregation_mod])

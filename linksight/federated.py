"""The approved model families of federated training, in numpy.

Three families ship with the platform, and a training request can only name
one of them: ``logistic`` (logistic regression), ``linear`` (linear
regression) and ``mlp`` (one hidden layer of tanh units with a logistic
output, for a binary response). No code from the requester runs anywhere.

Every exchange between the ServerApp and the stations carries one vector per
station, summed under secure aggregation::

    [n, loss_sum, correct, n_test, test_loss_sum, test_correct, payload...]
    / SUM_SCALE

``n`` is the station's count of training rows, ``loss_sum`` and ``correct``
describe the current global model on them (log-loss and correct predictions
at 0.5, or the squared error for ``linear``), the three ``test`` entries
describe the same model on the station's held-out rows (zero when the
request holds out none, see :func:`holdout_mask`), and the payload is

* for ``logistic`` and ``linear``: the gradient X'(y - mu) and the upper
  triangle of the Hessian X'WX at the current coefficients, so that the sum
  over stations gives one Newton step on the pooled data;
* for ``mlp``: the station's parameters after its local gradient-descent
  epochs, times n, so that the sum divided by the pooled n is the weighted
  federated average (FedAvg).

Stations report a weight of 1, so SecAgg+ returns the mean of these vectors
and the server multiplies by the number of stations: no station's n leaves it
in the clear. SecAgg+ clips every entry to [-8, 8] (Flower's default
``clipping_range``), hence SUM_SCALE and MAX_STATION_ROWS.

The design matrix is that of :func:`station.regression.build_design`: an
intercept, numeric columns divided by their declared maximum absolute
value, and 0/1 indicators per level after the first of ``C(column)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from linksight import differential_privacy as dp
from linksight.differential_privacy import PrivacyPlan

FAMILIES = ("logistic", "linear", "mlp")
# Rows per unit in the vectors summed under secure aggregation.
SUM_SCALE = 10000.0
# SecAgg+ clips entries to [-8, 8]. With every design column and the
# response in [-1, 1] and each row's loss capped at MAX_ROW_LOSS, every sum
# of a station with at most this many rows stays below 8 * SUM_SCALE.
MAX_STATION_ROWS = 10000
# SecAgg+ quantizes each entry of [-8, 8] to one of QUANTIZATION_RANGE
# integers; Flower's default of 2**22 levels (a step of 3.8e-6) loses about
# 1e-4 of a Newton step's Hessian on a few hundred rows, 2**30 keeps about
# 1e-8. The masked sums wrap at MODULUS_RANGE, far above stations * 2**30.
QUANTIZATION_RANGE = 2**30
MODULUS_RANGE = 2**40
# Entries of a station's vector before the payload (module docstring).
HEAD_SIZE = 6
# The largest share of each station's rows a request may hold out.
MAX_HOLDOUT = 0.5
# Hyperparameters each family accepts, with their defaults.
HYPERPARAMETERS: dict[str, dict[str, float]] = {
    "logistic": {"l2": 0.0},
    "linear": {"l2": 0.0},
    "mlp": {"hidden": 8, "learning_rate": 0.5, "local_epochs": 20, "seed": 0},
}
# Log-loss (or squared error) per row is capped here, so that one badly
# predicted row cannot push a station's loss sum past the clipping range.
MAX_ROW_LOSS = 7.0


class TrainingError(ValueError):
    """A training request or update that cannot be used; the message says why."""


def check_hyperparameters(family: str, values: dict[str, float]) -> dict[str, float]:
    """Return `values` completed with the family's defaults, after checking them."""
    if family not in FAMILIES:
        raise TrainingError(
            f"unknown model family {family!r}; the approved families are "
            f"{', '.join(FAMILIES)}"
        )
    allowed = HYPERPARAMETERS[family]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise TrainingError(
            f"{family} takes no hyperparameter {', '.join(map(repr, unknown))}; it "
            f"takes {', '.join(allowed) or 'none'}"
        )
    merged = {**allowed, **values}
    limits = {
        "l2": (0.0, 1e6),
        "hidden": (1, 64),
        "learning_rate": (1e-6, 10.0),
        "local_epochs": (1, 1000),
        "seed": (0, 2**31 - 1),
    }
    for name, value in merged.items():
        low, high = limits[name]
        if not (low <= value <= high) or not math.isfinite(value):
            raise TrainingError(
                f"hyperparameter {name} = {value} is outside [{low}, {high}]"
            )
        if name in ("hidden", "local_epochs", "seed") and value != int(value):
            raise TrainingError(f"hyperparameter {name} = {value} must be an integer")
    return merged


def parameter_count(family: str, features: int, hyper: dict[str, float]) -> int:
    """Return the number of model parameters for `features` design columns."""
    if family == "mlp":
        # Input weights and hidden biases, then output weights and output bias.
        hidden = int(hyper["hidden"])
        return features * hidden + 2 * hidden + 1
    return features


def initial_parameters(family: str, features: int, hyper: dict[str, float]):
    """Return the starting parameters: zeros, or small random MLP weights."""
    if family != "mlp":
        return np.zeros(features)
    rng = np.random.default_rng(int(hyper["seed"]))
    hidden = int(hyper["hidden"])
    first = rng.normal(0.0, 1.0 / math.sqrt(features), size=(features, hidden))
    second = rng.normal(0.0, 1.0 / math.sqrt(hidden), size=hidden)
    return np.concatenate([first.ravel(), np.zeros(hidden), second, [0.0]])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def _log_loss(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    mu = np.clip(mu, 1e-12, 1 - 1e-12)
    rows = -(y * np.log(mu) + (1 - y) * np.log(1 - mu))
    return np.minimum(rows, MAX_ROW_LOSS)


@dataclass
class _Mlp:
    first: np.ndarray
    first_bias: np.ndarray
    second: np.ndarray
    second_bias: float


def _unpack_mlp(theta: np.ndarray, features: int, hidden: int) -> _Mlp:
    cut = features * hidden
    return _Mlp(
        theta[:cut].reshape(features, hidden),
        theta[cut : cut + hidden],
        theta[cut + hidden : cut + 2 * hidden],
        float(theta[-1]),
    )


def predict(family: str, theta: np.ndarray, x: np.ndarray, hyper: dict[str, float]):
    """Return predictions: probabilities, or fitted values for ``linear``."""
    if family == "linear":
        return x @ theta
    if family == "logistic":
        return _sigmoid(x @ theta)
    net = _unpack_mlp(theta, x.shape[1], int(hyper["hidden"]))
    hidden = np.tanh(x @ net.first + net.first_bias)
    return _sigmoid(hidden @ net.second + net.second_bias)


def _mlp_gradient(theta, x, y, hidden_units):
    net = _unpack_mlp(theta, x.shape[1], hidden_units)
    hidden = np.tanh(x @ net.first + net.first_bias)
    mu = _sigmoid(hidden @ net.second + net.second_bias)
    error = (mu - y) / len(y)
    grad_second = hidden.T @ error
    grad_second_bias = error.sum()
    back = np.outer(error, net.second) * (1 - hidden**2)
    grad_first = x.T @ back
    grad_first_bias = back.sum(axis=0)
    return np.concatenate(
        [grad_first.ravel(), grad_first_bias, grad_second, [grad_second_bias]]
    )


def holdout_mask(rows: int, fraction: float, seed: int) -> np.ndarray:
    """Return a boolean mask of the held-out rows among a station's `rows`.

    Exactly ``round(fraction * rows)`` rows are held out: the first ones of
    a permutation drawn by ``numpy.random.default_rng(seed)``. The same rows
    in the same order and the same seed give the same split.
    """
    if not 0.0 <= fraction <= MAX_HOLDOUT:
        raise TrainingError(
            f"holdout = {fraction} is outside [0, {MAX_HOLDOUT}]; hold out a "
            "share of each station's rows such as 0.2"
        )
    mask = np.zeros(rows, dtype=bool)
    held_out = round(fraction * rows)
    if held_out:
        order = np.random.default_rng(seed).permutation(rows)
        mask[order[:held_out]] = True
    return mask


def _metric_sums(family, theta, x, y, hyper) -> tuple[np.ndarray, np.ndarray]:
    """Return the predictions and [n, loss_sum, correct] of `theta` on x, y."""
    mu = predict(family, theta, x, hyper)
    if family == "linear":
        residual = y - mu
        loss_sum = float(np.minimum(residual**2, MAX_ROW_LOSS).sum())
        correct = 0.0
    else:
        loss_sum = float(_log_loss(y, mu).sum())
        correct = float(((mu >= 0.5) == (y >= 0.5)).sum())
    return mu, np.array([float(len(y)), loss_sum, correct])


def local_update(
    family: str,
    theta: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    hyper: dict[str, float],
    held_out: tuple[np.ndarray, np.ndarray] | None = None,
    privacy: PrivacyPlan | None = None,
    final: bool = False,
    stations: int = 1,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Return this station's vector for one exchange, before SUM_SCALE.

    The model trains on `x`, `y`; `held_out` (x and y of the held-out rows)
    is only evaluated. The layout is in the module docstring. Under
    differential privacy (`privacy`), a training exchange releases only the
    payload and the `final` exchange only the head, and the vector carries
    this station's share of the noise of `stations` stations
    (:mod:`linksight.differential_privacy`).
    """
    rows = len(y) + (0 if held_out is None else len(held_out[1]))
    if rows > MAX_STATION_ROWS:
        raise TrainingError(
            f"this station has {rows} rows in the model, more than the "
            f"{MAX_STATION_ROWS} that secure aggregation's clipping range allows"
        )
    if privacy is not None:
        # The sensitivities assume the scaled design and response in [-1, 1],
        # which the importer's range check ensures; clipping keeps the bound
        # even for rows stored under an older, wider schema.
        x, y = np.clip(x, -1.0, 1.0), np.clip(y, -1.0, 1.0)
    mu, training_sums = _metric_sums(family, theta, x, y, hyper)
    test_sums = np.zeros(3)
    if held_out is not None:
        _, test_sums = _metric_sums(family, theta, *held_out, hyper)
    head = np.concatenate([training_sums, test_sums])
    payload = _payload(family, theta, x, y, mu, hyper, privacy)
    if privacy is None:
        return np.concatenate([head, payload])
    if final:
        payload = np.zeros_like(payload)
    else:
        head = np.zeros_like(head)
    vector = np.concatenate([head, payload])
    scales = dp.noise_scales(family, x.shape[1], hyper, privacy, final)
    if dp.share_margin(vector, scales, stations) > 8 * SUM_SCALE:
        raise TrainingError(
            f"the noise for dp_epsilon = {privacy.target_epsilon} over "
            f"{privacy.exchanges} exchanges could push this station's sums past "
            "secure aggregation's clipping range; raise dp_epsilon or train fewer "
            "rounds"
        )
    return dp.add_noise_share(vector, scales, stations, rng)


def _payload(family, theta, x, y, mu, hyper, privacy) -> np.ndarray:
    """Return the payload: gradient and Hessian, or the mlp's parameters."""
    n = len(y)
    if family == "mlp":
        local = theta.copy()
        if n > 0:
            for _ in range(int(hyper["local_epochs"])):
                local -= hyper["learning_rate"] * _mlp_gradient(
                    local, x, y, int(hyper["hidden"])
                )
        if privacy is None:
            return n * local
        # Under differential privacy the stations' clipped updates are
        # averaged with equal weights, so that no row count is needed.
        assert privacy.clipping_norm is not None
        return dp.clip_update(local - theta, privacy.clipping_norm)
    weights = np.ones(n) if family == "linear" else mu * (1 - mu)
    residual = y - mu
    if family == "linear" and privacy is not None:
        residual = np.clip(residual, -dp.MAX_RESIDUAL, dp.MAX_RESIDUAL)
    gradient = x.T @ residual
    hessian = (x * weights[:, None]).T @ x
    upper = hessian[np.triu_indices(x.shape[1])]
    return np.concatenate([gradient, upper])


@dataclass
class Aggregate:
    """The pooled sums of one exchange, over every station."""

    n: float
    loss_sum: float
    correct: float
    payload: np.ndarray
    # The same sums over the held-out rows, which the model never trains on.
    test_n: float = 0.0
    test_loss_sum: float = 0.0
    test_correct: float = 0.0

    @property
    def mean_loss(self) -> float:
        """Mean log-loss per row, or mean squared error for ``linear``."""
        return self.loss_sum / self.n if self.n else math.nan

    @property
    def accuracy(self) -> float:
        """Share of rows predicted correctly at a threshold of 0.5."""
        return self.correct / self.n if self.n else math.nan

    @property
    def test_mean_loss(self) -> float:
        """Mean loss per held-out row, or NaN without held-out rows."""
        return self.test_loss_sum / self.test_n if self.test_n else math.nan

    @property
    def test_accuracy(self) -> float:
        """Share of held-out rows predicted correctly at a threshold of 0.5."""
        return self.test_correct / self.test_n if self.test_n else math.nan


def split_sums(vector: np.ndarray) -> Aggregate:
    """Split a summed vector (already multiplied back by SUM_SCALE)."""
    return Aggregate(
        n=round(float(vector[0])),
        loss_sum=float(vector[1]),
        correct=float(vector[2]),
        payload=vector[HEAD_SIZE:],
        test_n=round(float(vector[3])),
        test_loss_sum=float(vector[4]),
        test_correct=float(vector[5]),
    )


def next_parameters(
    family: str,
    theta: np.ndarray,
    pooled: Aggregate,
    hyper: dict[str, float],
    privacy: PrivacyPlan | None = None,
    stations: int = 1,
) -> np.ndarray:
    """Return the global parameters after one exchange's pooled sums.

    Under differential privacy a training exchange carries no row count, and
    an mlp's payload is the sum of the `stations` stations' clipped updates.
    """
    if privacy is None and pooled.n <= 0:
        raise TrainingError("no rows contributed to this round")
    if family == "mlp":
        if privacy is not None:
            return theta + pooled.payload / stations
        return pooled.payload / pooled.n
    p = len(theta)
    gradient = pooled.payload[:p]
    hessian = np.zeros((p, p))
    hessian[np.triu_indices(p)] = pooled.payload[p:]
    hessian = hessian + np.triu(hessian, 1).T
    if privacy is not None:
        hessian = dp.floor_eigenvalues(hessian, dp.hessian_floor(family, p, privacy))
    l2 = hyper["l2"]
    penalty = l2 * np.eye(p)
    penalty[0, 0] = 0.0  # the intercept is not penalised
    try:
        step = np.linalg.solve(hessian + penalty, gradient - penalty @ theta)
    except np.linalg.LinAlgError as error:
        raise TrainingError(
            "the pooled Hessian is singular: a design column is constant or a "
            "linear combination of others; drop it from the formula or set l2 > 0"
        ) from error
    return theta + step

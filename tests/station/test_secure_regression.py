"""The regression protocol with real MPyC parties on loopback.

Three party processes (``python -m station.mpc_party``) fit a model from
crafted sufficient statistics, and the opened coefficients and variances are
compared with the same least-squares solution in float64 NumPy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mpc_parties import loopback_parties, run_parties

from station.aggregates import MAX_ROWS_PER_STATION
from station.regression import fixed_point_size


def _statistics(x: np.ndarray, y: np.ndarray, copies: int) -> list[float]:
    """Return n, X'X (upper triangle), X'y, y'y of `copies` copies of the rows."""
    gram = x.T @ x * copies
    p = x.shape[1]
    triangle = [float(gram[i, j]) for i in range(p) for j in range(i, p)]
    cross = [float(v) for v in x.T @ y * copies]
    return [float(len(y) * copies), *triangle, *cross, float(y @ y * copies)]


def _run(tmp_path: Path, vectors: list[list[float]], p: int) -> list[dict[str, Any]]:
    parties = loopback_parties(len(vectors))
    configs = [
        {
            "parties": parties,
            "index": index,
            "bind_host": "127.0.0.1",
            "timeout_seconds": 120,
            "analysis": "ols",
            "vector": vector,
            "own_n": 0.0,
            "parameters": p,
            "names": ["Intercept"] + [f"x{i}" for i in range(1, p)],
            "factors": [],
            "min_count": 10,
            "min_residual_df": 10,
            "max_parameter_fraction": 0.1,
            "requester_contributes": False,
            "fraction_bits": fixed_point_size(len(vectors)),
        }
        for index, vector in enumerate(vectors)
    ]
    return [output for _, output in run_parties(configs, tmp_path, timeout=180)]


def test_ols_at_maximum_rows_and_range(tmp_path):
    # Every station holds MAX_ROWS_PER_STATION rows (copies of 40 distinct
    # ones) whose scaled values lie within 10% of the declared bound 1, so
    # each summed product is close to the largest the sizing allows.
    generator = np.random.default_rng(7)
    copies = MAX_ROWS_PER_STATION // 40
    vectors = []
    xs, ys = [], []
    for _ in range(3):
        x = np.column_stack(
            [
                np.ones(40),
                generator.uniform(0.9, 1.0, 40),
                generator.uniform(-1, -0.9, 40),
            ]
        )
        y = 0.5 * x[:, 1] - 0.3 * x[:, 2] + generator.normal(0, 0.01, 40)
        y = y / np.abs(y).max()
        xs.append(x)
        ys.append(y)
        vectors.append(_statistics(x, y, copies))
    pooled = np.sum(vectors, axis=0)
    p = 3
    gram = np.zeros((p, p))
    gram[np.triu_indices(p)] = pooled[1 : 1 + p * (p + 1) // 2]
    gram = gram + np.triu(gram, 1).T
    cross = pooled[1 + p * (p + 1) // 2 : -1]
    expected = np.linalg.solve(gram, cross)
    n = pooled[0]
    residual = pooled[-1] - expected @ cross
    expected_variances = residual / (n - p) * np.diag(np.linalg.inv(gram))

    outputs = _run(tmp_path, vectors, p)

    assert n == 3 * copies * 40
    assert n > 0.99 * 3 * MAX_ROWS_PER_STATION
    for output in outputs:
        assert output["ok"], output
        assert all(check["passed"] for check in output["checks"])
        values = output["values"]
        assert values["n"] == n
        assert values["coefficients"] == pytest.approx(expected, rel=1e-6)
        assert values["variances"] == pytest.approx(expected_variances, rel=1e-6)

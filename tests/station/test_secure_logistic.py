"""The logistic regression protocol with real MPyC parties on loopback.

Three party processes (``python -m station.mpc_party``) each read their own
Parquet file and fit a logistic regression by Newton's method under MPC.
The released table is compared with statsmodels' Logit on the pooled rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from mpc_parties import loopback_parties, run_parties
from nacl.public import PrivateKey
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from linksight.query import parse_query
from linksight.result_encryption import encode_key
from linksight.schema import ColumnSchema, DatasetSchema
from linksight.tasks import DisclosureSettings, Party, TaskSpec
from station import logistic
from station.regression import build_design, build_model_result

# Newton's method stops after a step below 1e-8, and the fixed-point numbers
# carry at least 34 bits beyond the pooled row count. A gap above 1e-4 thus
# means a wrong sum or an overflow, not rounding.
RELATIVE = 1e-4

SCHEMA = DatasetSchema(
    name="claims",
    columns=[
        ColumnSchema(name="age", type="integer", min=0, max=110),
        ColumnSchema(name="income", type="float", min=0, max=100_000),
        ColumnSchema(name="balance", type="float", min=-100_000, max=100_000),
        ColumnSchema(name="marker", type="integer", min=0, max=1),
        ColumnSchema(name="admitted", type="integer", min=0, max=1),
    ],
)


def _task(
    query: str, parties: list[dict[str, Any]], disclosure: DisclosureSettings
) -> TaskSpec:
    spec = parse_query(query, {"claims": SCHEMA})
    return TaskSpec(
        task_id="task-1",
        request_id="1",
        collaboration="claims-study",
        query=spec,
        query_text=query,
        parties=[Party(**party) for party in parties],
        requester="sam",
        requester_organisation="Research Institute",
        requester_key=encode_key(PrivateKey.generate().public_key),
        disclosure=disclosure,
        issued_at="2026-01-01T00:00:00+00:00",
    )


def _fit(
    tmp_path: Path,
    frames: list[pd.DataFrame],
    query: str,
    max_iterations: int = logistic.MAX_ITERATIONS,
    disclosure: DisclosureSettings | None = None,
    deadline_margin_seconds: float = logistic.DEADLINE_MARGIN_SECONDS,
) -> list[dict[str, Any]]:
    """Write one Parquet file per station, run the parties, return their results."""
    parties = loopback_parties(len(frames))
    task = _task(query, parties, disclosure or DisclosureSettings())
    design = build_design(task.query, SCHEMA)
    configs = []
    for index, frame in enumerate(frames):
        path = tmp_path / f"station-{index}.parquet"
        frame.to_parquet(path)
        rows = logistic.local_rows(task.query, design, path)
        counts = logistic.count_local(rows, design.parameters)
        party_input = logistic.party_input(task, design, rows, counts, mine=False)
        configs.append(
            {
                "parties": parties,
                "index": index,
                "bind_host": "127.0.0.1",
                "timeout_seconds": 240,
                **party_input,
                "max_iterations": max_iterations,
                "deadline_margin_seconds": deadline_margin_seconds,
            }
        )
    outputs = run_parties(configs, tmp_path / "parties", timeout=300)
    results = []
    for status, output in outputs:
        assert status == 0, output
        assert output["ok"], output
        results.append(build_model_result(task, design, output))
    return results


def _near_maximum_frames(generator: np.random.Generator) -> list[pd.DataFrame]:
    frames = []
    for _ in range(3):
        size = 300
        age = generator.integers(95, 111, size)
        income = generator.uniform(90_000, 100_000, size)
        balance = generator.uniform(-100_000, -90_000, size)
        eta = 0.25 * (age - 103) + 3e-4 * (income - 95_000) - 2e-4 * (balance + 95_000)
        admitted = generator.random(size) < 1 / (1 + np.exp(-eta))
        frames.append(
            pd.DataFrame(
                {
                    "age": age,
                    "income": income,
                    "balance": balance,
                    "marker": np.zeros(size, dtype=int),
                    "admitted": admitted.astype(int),
                }
            )
        )
    return frames


def test_logit_near_declared_maximum(tmp_path):
    # Every covariate lies within 15% of its declared bound: ages 95 to 110
    # (at most 110), incomes 90,000 to 100,000 (at most 100,000), balances
    # -100,000 to -90,000. Every scaled design entry is thus close to 1 in
    # magnitude, and X'WX is close to singular.
    frames = _near_maximum_frames(np.random.default_rng(11))
    pooled = pd.concat(frames, ignore_index=True)
    design = sm.add_constant(pooled[["age", "income", "balance"]].astype(float))
    reference = sm.Logit(pooled["admitted"].astype(float), design).fit(disp=0)
    names = {
        "Intercept": "const",
        "age": "age",
        "income": "income",
        "balance": "balance",
    }

    results = _fit(
        tmp_path, frames, "SELECT logit(admitted ~ age + income + balance) FROM claims"
    )

    assert reference.mle_retvals["converged"]
    for result in results:
        rows = {row["term"]: row for row in result["rows"]}
        assert result["status"] == "released", result["blocked"]
        assert result["model"]["n"] == len(pooled)
        assert result["model"]["converged"] is True
        assert list(rows) == list(names)
        for term, column in names.items():
            coefficient = rows[term]["coef"]
            std_err = rows[term]["std_err"]
            assert coefficient == pytest.approx(reference.params[column], rel=RELATIVE)
            assert std_err == pytest.approx(reference.bse[column], rel=RELATIVE)


def _separated_frames(generator: np.random.Generator) -> list[pd.DataFrame]:
    """Return three stations' rows in which every person with marker 1 is admitted."""
    frames = []
    for _ in range(3):
        size = 200
        marker = (np.arange(size) % 8 == 0).astype(int)
        admitted = np.where(marker == 1, 1, generator.random(size) < 0.4)
        frames.append(
            pd.DataFrame(
                {
                    "age": generator.integers(20, 90, size),
                    "income": generator.uniform(0, 100_000, size),
                    "balance": generator.uniform(-100_000, 100_000, size),
                    "marker": marker,
                    "admitted": admitted.astype(int),
                }
            )
        )
    return frames


def test_logit_separation_blocked(tmp_path):
    frames = _separated_frames(np.random.default_rng(5))
    pooled = pd.concat(frames, ignore_index=True)
    design = sm.add_constant(pooled[["age", "marker"]].astype(float))
    with pytest.warns(ConvergenceWarning):
        reference = sm.Logit(pooled["admitted"].astype(float), design).fit(disp=0)

    # From the fourth step on, the coefficient of (marker == 1) grows by
    # about 1 per step and the others stay put. Six steps instead of 25
    # keep the test short, and the limit is the only difference.
    results = _fit(
        tmp_path,
        frames,
        "SELECT logit(admitted ~ age + (marker == 1)) FROM claims",
        max_iterations=6,
    )

    assert not reference.mle_retvals["converged"]
    assert pooled.loc[pooled["marker"] == 1, "admitted"].min() == 1
    for result in results:
        failed = [check for check in result["checks"] if not check["passed"]]
        message = result["blocked"]["message"]
        assert result["status"] == "blocked"
        assert result["rows"] == []
        assert result["columns"] == []
        assert result["model"]["n"] is None
        assert result["model"]["converged"] is False
        assert result["model"]["iterations"] == 6
        assert '"coef"' not in json.dumps(result)
        assert result["blocked"]["rule"] == "converged"
        assert [check["statistic"] for check in failed] == ["(marker == 1)"]
        assert f"did not converge after {result['model']['iterations']} step(s)" in (
            message
        )
        assert "perfect separation is likely" in message
        assert "(still growing: (marker == 1))" in message


def test_logit_level_count_setting(tmp_path):
    # 75 persons have the marker: enough for min_count 10, but not for a
    # collaboration whose min_level_count is 80. The fit stops before its
    # first Newton step.
    frames = _separated_frames(np.random.default_rng(5))
    pooled = pd.concat(frames, ignore_index=True)
    disclosure = DisclosureSettings(min_count=10, min_level_count=80)

    results = _fit(
        tmp_path,
        frames,
        "SELECT logit(admitted ~ age + (marker == 1)) FROM claims",
        disclosure=disclosure,
    )

    assert int(pooled["marker"].sum()) == 75
    for result in results:
        failed = [check for check in result["checks"] if not check["passed"]]
        message = result["blocked"]["message"]
        assert result["status"] == "blocked"
        assert result["rows"] == []
        assert result["blocked"]["rule"] == "min_level_count"
        assert [(check["statistic"], check["cell"]) for check in failed] == [
            ("(marker == 1)", {"level": "true"})
        ]
        assert "has fewer than 80 persons" in message
        assert "min_level_count at (marker == 1)=true" in message


def test_logit_deadline_stops_fit(tmp_path):
    # A margin far beyond the 240 s deadline makes every party short of
    # time after the first step, as a slow separated fit would be.
    frames = _separated_frames(np.random.default_rng(5))

    results = _fit(
        tmp_path,
        frames,
        "SELECT logit(admitted ~ age + (marker == 1)) FROM claims",
        deadline_margin_seconds=10_000,
    )

    for result in results:
        message = result["blocked"]["message"]
        assert result["status"] == "blocked"
        assert result["rows"] == []
        assert result["model"]["iterations"] == 1
        assert result["model"]["converged"] is False
        assert '"coef"' not in json.dumps(result)
        assert result["blocked"]["rule"] == "mpc_deadline"
        assert "had not converged after 1 step(s)" in message
        assert "deadline of 120 s came near" in message
        assert "raise task_timeout_seconds" in message

"""The R client's testthat suite, run against a real network, and its numbers.

The R tests start their own hub and stations through
``python -m linksight.serve_network`` and compare each result with R on the
pooled rows. They also write each result to a JSON-lines file, and this
module compares those numbers with pandas on the pooled data, so that the R
client and the Python side agree on the same queries.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from linksight.demo import DEMO_QUERIES, compare_records
from linksight.network import lung_data

R_TESTS = Path(__file__).resolve().parents[2] / "clients" / "r" / "tests" / "testthat"

# Runs the suite and fails unless every test passed: no failure, error,
# warning or skip, and at least one test ran.
RUN_TESTTHAT = """
results <- as.data.frame(testthat::test_dir(
  commandArgs(trailingOnly = TRUE)[1],
  package = "linksight",
  load_package = "installed",
  reporter = "summary",
  stop_on_failure = FALSE
))
problems <- sum(results$failed) + sum(results$error) + sum(results$skipped) +
  sum(results$warning)
cat(sprintf("testthat: %d tests, %d problems\\n", nrow(results), problems))
quit(status = if (nrow(results) > 0L && problems == 0L) 0L else 1L)
"""

TOLERANCE = 1e-6

# The demo's lung queries that the R suite runs with the same text.
DEMO_BY_NAME = {q.name: q for q in DEMO_QUERIES}
RELEASED_DEMO_QUERIES = [
    "count by sex",
    "age by sex",
    "weight loss by sex",
    "poor performance score by sex",
]


@pytest.fixture(scope="module")
def r_results(rscript, r_environment, tmp_path_factory) -> dict[str, dict]:
    """Run the testthat suite once and return the results it recorded, by name."""
    results_path = tmp_path_factory.mktemp("r-results") / "results.jsonl"
    completed = subprocess.run(
        [rscript, "-e", RUN_TESTTHAT, str(R_TESTS)],
        env=dict(
            r_environment,
            LINKSIGHT_PYTHON=sys.executable,
            LINKSIGHT_R_RESULTS=str(results_path),
        ),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = results_path.read_text(encoding="utf-8").splitlines()
    return {entry["name"]: entry for entry in map(json.loads, lines)}


def federated_records(entry: dict) -> list[dict]:
    """Return the R result as the hub's rows: each statistic, and `label.n`
    for a statistic of a column."""
    records = []
    for values, counts in zip(entry["values"], entry["n"], strict=True):
        record = dict(values)
        for label, count in counts.items():
            if label not in entry["group_by"] and label != "count(*)":
                record[f"{label}.n"] = count
        records.append(record)
    return records


def test_r_suite_records_every_query(r_results):
    assert set(r_results) == {
        "count by sex",
        "age by sex",
        "weight loss by sex",
        "poor performance score by sex",
        "Karnofsky score by sex and status",
        "calories",
        "sex by ECOG score",
    }


@pytest.mark.parametrize("name", RELEASED_DEMO_QUERIES)
def test_r_result_equals_pandas(r_results, name):
    demo_query = DEMO_BY_NAME[name]
    entry = r_results[name]

    problems = compare_records(
        federated_records(entry), demo_query.pooled(lung_data()), entry["group_by"]
    )

    assert entry["query"] == demo_query.query
    assert entry["status"] == "released"
    assert problems == []


def test_r_blocked_crosstab_has_no_rows(r_results):
    entry = r_results["sex by ECOG score"]

    assert entry["status"] == "blocked"
    assert entry["values"] == []
    assert entry["group_by"] == ["sex", "ph.ecog"]


def test_r_karnofsky_by_sex_and_status_equals_pandas(r_results):
    entry = r_results["Karnofsky score by sex and status"]
    pooled = lung_data()
    subset = pooled[
        pooled["ph.ecog"].isin([0, 1])
        & pooled["wt.loss"].notna()
        & pooled["ph.karno"].notna()
    ]
    groups = subset.groupby(["sex", "status"])["ph.karno"]
    reference = {
        (int(sex), int(status)): {
            "mean(ph.karno)": float(values.mean()),
            "var(ph.karno)": float(values.var()),
            "n": int(values.count()),
        }
        for (sex, status), values in groups
    }

    for values, counts in zip(entry["values"], entry["n"], strict=True):
        expected = reference[(values["sex"], values["status"])]
        for label in ("mean(ph.karno)", "var(ph.karno)"):
            assert math.isclose(values[label], expected[label], rel_tol=TOLERANCE)
            assert counts[label] == expected["n"]
    assert len(entry["values"]) == len(reference)


def test_r_sum_and_count_equal_pandas(r_results):
    entry = r_results["calories"]
    calories = lung_data()["meal.cal"].dropna().astype(float)
    values = entry["values"][0]

    assert math.isclose(values["sum(meal.cal)"], calories.sum(), rel_tol=TOLERANCE)
    assert values["count(meal.cal)"] == len(calories)
    assert entry["n"][0]["sum(meal.cal)"] == len(calories)

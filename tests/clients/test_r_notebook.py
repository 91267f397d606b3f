"""The R example script runs end to end and gets the numbers of pandas."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from linksight.network import lung_data
from linksight.playground import start_playground
from linksight_kernel import Client
from linksight_kernel.results import Result

SCRIPT = Path(__file__).resolve().parents[2] / "notebooks" / "descriptive_statistics.R"

# Runs the script, then saves the results it left in its variables.
RUN_SCRIPT = """
arguments <- commandArgs(trailingOnly = TRUE)
source(arguments[1], echo = FALSE, print.eval = TRUE)
saved <- lapply(
  list(by_sex = by_sex, weight_loss = weight_loss, crosstab = crosstab, older = older),
  function(result) list(
    status = attr(result, "status"),
    values = as.data.frame(result),
    n = attr(result, "n")
  )
)
jsonlite::write_json(
  saved, arguments[2], digits = NA, dataframe = "rows", auto_unbox = TRUE
)
"""

TOLERANCE = 1e-6


QUERIES = {
    "by_sex": (
        "SELECT count(*), mean(age), var(age) FROM lung WHERE ph.ecog >= 1 GROUP BY sex"
    ),
    "weight_loss": "SELECT mean(wt.loss) FROM lung WHERE ph.ecog >= 1 GROUP BY sex",
    "older": "SELECT count(*) FROM lung WHERE age >= 65 GROUP BY status",
}


@pytest.fixture(scope="module")
def playground(tmp_path_factory):
    """A playground whose demo stewards approve the scientist's requests."""
    running = start_playground(
        tmp_path_factory.mktemp("r-playground"), auto_approve=True, approve_delay=0.5
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def script_results(rscript, r_environment, playground, tmp_path_factory):
    """Run the example script as the scientist and return its saved results."""
    network = playground.network
    output = tmp_path_factory.mktemp("r-script") / "results.json"
    completed = subprocess.run(
        [rscript, "-e", RUN_SCRIPT, str(SCRIPT), str(output)],
        env=dict(
            r_environment,
            LINKSIGHT_HUB_URL=network.hub_url,
            LINKSIGHT_TOKEN=network.scientist_token,
        ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = json.loads(output.read_text())
    results["stdout"] = completed.stdout
    results["stderr"] = completed.stderr
    return results


@pytest.fixture(scope="module")
def python_results(playground, script_results) -> dict[str, Result]:
    """The same queries through the Python client, after the script's."""
    network = playground.network
    with Client(
        network.hub_url, network.scientist_token, collaboration=network.collaboration
    ) as client:
        return {
            name: client.query(query, purpose="compare with R", progress="none")
            for name, query in QUERIES.items()
        }


def test_script_age_by_sex_equals_pandas(script_results):
    pooled = lung_data()
    impaired = pooled[pooled["ph.ecog"] >= 1].groupby("sex")["age"]
    reference = impaired.agg(["count", "mean", "var"])

    rows = script_results["by_sex"]["values"]
    n = script_results["by_sex"]["n"]

    assert [row["sex"] for row in rows] == [1, 2]
    for row, counts in zip(rows, n, strict=True):
        expected = reference.loc[row["sex"]]
        assert row["count(*)"] == expected["count"]
        assert math.isclose(row["mean(age)"], expected["mean"], rel_tol=TOLERANCE)
        assert math.isclose(row["var(age)"], expected["var"], rel_tol=TOLERANCE)
        assert counts["mean(age)"] == expected["count"]


def test_script_weight_loss_equals_pandas(script_results):
    pooled = lung_data()
    impaired = pooled[pooled["ph.ecog"] >= 1].groupby("sex")["wt.loss"]

    rows = script_results["weight_loss"]["values"]
    n = script_results["weight_loss"]["n"]

    for row, counts in zip(rows, n, strict=True):
        values = impaired.get_group(row["sex"]).dropna().astype(float)
        assert math.isclose(row["mean(wt.loss)"], values.mean(), rel_tol=TOLERANCE)
        assert counts["mean(wt.loss)"] == len(values)
    assert len(rows) == 2


def test_script_crosstab_is_blocked(script_results):
    crosstab = script_results["crosstab"]

    assert crosstab["status"] == "blocked"
    assert crosstab["values"] == []
    assert "blocked by disclosure control, rule min_count" in script_results["stderr"]


def test_script_older_patients_equals_pandas(script_results):
    pooled = lung_data()
    reference = pooled[pooled["age"] >= 65]["status"].value_counts()

    rows = script_results["older"]["values"]

    assert {row["status"]: row["count(*)"] for row in rows} == {
        int(status): int(count) for status, count in reference.items()
    }


def test_script_prints_results_and_progress(script_results):
    stdout = script_results["stdout"]

    assert "user: sam of Research Institute; roles: scientist" in stdout
    assert "Disclosure control: 16 of 16 checks passed" in stdout
    assert "completed, approved by 3 of 3 organisations" in script_results["stderr"]


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_script_equals_python_client(script_results, python_results, name):
    python = python_results[name]
    figures = python.df.reset_index().to_dict("records")
    counts = python.n.reset_index().to_dict("records")
    r_figures = script_results[name]["values"]
    r_counts = script_results[name]["n"]

    assert len(r_figures) == len(figures)
    for r_row, row in zip(r_figures, figures, strict=True):
        assert r_row.keys() == row.keys()
        for label, value in row.items():
            assert math.isclose(r_row[label], value, rel_tol=TOLERANCE), label
    for r_row, row in zip(r_counts, counts, strict=True):
        assert r_row == {label: int(value) for label, value in row.items()}

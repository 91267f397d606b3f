"""Logistic regression end to end on the UCI heart disease data of four hospitals.

A real hub and four stations, one per hospital, with their MPyC parties on
loopback. The released fit must equal statsmodels' Logit on the pooled rows
to a relative tolerance of 1e-6: Newton's method stops after a step below
1e-8, which leaves an error of about its square, and the fixed-point
numbers carry 72 fractional bits, so a larger gap means a wrong formula,
not rounding.
"""

from __future__ import annotations

import pytest
import statsmodels.api as sm

from linksight.network import LocalNetwork, heart_data
from linksight_kernel.results import Result

RELATIVE = 1e-6

# The first test also starts the network: a hub and four stations.
pytestmark = pytest.mark.timeout(600)

# The reference fit of disease (num > 0) on age, male sex and asymptomatic
# chest pain, by statsmodels on the pooled 920 rows, to four decimals.
PUBLISHED = {
    "Intercept": (-5.5133, 0.5588),
    "age": (0.0629, 0.0092),
    "(sex == 'Male')": (1.5506, 0.2133),
    "(cp == 'asymptomatic')": (2.2083, 0.1665),
}


@pytest.fixture(scope="module")
def heart_network(tmp_path_factory):
    """A hub and the four hospitals' stations holding the heart data."""
    # Each Newton step is a secure elimination: allow for a loaded machine.
    network = LocalNetwork(
        tmp_path_factory.mktemp("heart-network"),
        environment={"LINKSIGHT_HUB_TASK_TIMEOUT_SECONDS": "290"},
    )
    try:
        network.start_hub()
        network.set_up_heart_study()
        network.start_stations()
        network.set_rules(differencing_window=0)
        yield network
    finally:
        network.stop()


def _run(network, query: str) -> tuple[dict, dict]:
    request = network.submit(query, purpose="integration test")
    assert request["state"] == "awaiting_approval", request
    network.approve_all(request["id"])
    request = network.wait_for(request["id"], timeout=600)
    return request, network.result(request["id"])["result"]


def _pooled_fit():
    frame = heart_data()
    design = frame[["age"]].astype(float)
    design["male"] = (frame["sex"] == "Male").astype(float)
    design["asymptomatic"] = (frame["cp"] == "asymptomatic").astype(float)
    design = sm.add_constant(design)
    outcome = (frame["num"] > 0).astype(float)
    return sm.Logit(outcome, design).fit(disp=0)


def test_logit_equals_statsmodels(heart_network):
    query = (
        "SELECT logit((num > 0) ~ age + (sex == 'Male') + (cp == 'asymptomatic')) "
        "FROM heart"
    )
    request, result = _run(heart_network, query)
    fit = _pooled_fit()
    rows = {row["term"]: row for row in result["rows"]}
    intervals = fit.conf_int()
    references = dict(
        zip(PUBLISHED, ["const", "age", "male", "asymptomatic"], strict=True)
    )

    assert request["state"] == "completed", request
    assert result["status"] == "released"
    assert list(rows) == list(PUBLISHED)
    assert result["model"]["n"] == 920
    assert result["model"]["converged"] is True
    assert 4 <= result["model"]["iterations"] <= 10
    assert len(result["stations"]) == 4
    for name, reference in references.items():
        row = rows[name]
        published_coef, published_se = PUBLISHED[name]
        assert round(row["coef"], 4) == published_coef, name
        assert round(row["std_err"], 4) == published_se, name
        expected = {
            "coef": fit.params[reference],
            "std_err": fit.bse[reference],
            "z": fit.tvalues[reference],
            "p_value": fit.pvalues[reference],
            "ci_lower": intervals.loc[reference, 0],
            "ci_upper": intervals.loc[reference, 1],
        }
        for column, value in expected.items():
            assert row[column] == pytest.approx(value, rel=RELATIVE, abs=1e-300), (
                name,
                column,
            )

    shown = Result.from_json(heart_network.result(request["id"]), "heart-study")
    assert shown.is_model
    assert list(shown.df.index) == list(PUBLISHED)
    assert shown.model["iterations"] == result["model"]["iterations"]


def test_logit_small_outcome_level_blocked(heart_network):
    # Only 2 women have num == 4, so the event level breaks the level rule.
    query = "SELECT logit((num == 4) ~ age) FROM heart WHERE sex == 'Female'"
    request, result = _run(heart_network, query)
    failed = [c for c in result["checks"] if not c["passed"]]

    assert request["state"] == "blocked_by_disclosure_control"
    assert result["status"] == "blocked"
    assert result["rows"] == []
    assert result["blocked"]["rule"] == "min_level_count"
    assert [(c["statistic"], c["cell"]) for c in failed] == [
        ("(num == 4)", {"level": "1"})
    ]
    assert "(num == 4)=1" in result["blocked"]["message"]


def test_logit_small_covariate_level_blocked(heart_network):
    # 19 persons are 72 or older; among men without disease fewer than 10.
    frame = heart_data()
    men = frame[(frame["sex"] == "Male") & (frame["num"] == 0)]
    old = int((men["age"] >= 72).sum())
    query = (
        "SELECT logit((cp == 'asymptomatic') ~ (age >= 72)) FROM heart "
        "WHERE sex == 'Male' and num == 0"
    )
    request, result = _run(heart_network, query)
    failed = [c for c in result["checks"] if not c["passed"]]

    assert old < 10
    assert result["status"] == "blocked"
    assert result["blocked"]["rule"] == "min_level_count"
    assert [(c["statistic"], c["cell"]) for c in failed] == [
        ("(age >= 72)", {"level": "true"})
    ]


def test_logit_non_binary_response_rejected(heart_network):
    request = heart_network.submit("SELECT logit(num ~ age) FROM heart")

    assert request["state"] == "rejected"
    assert "binary_response" in str(request)

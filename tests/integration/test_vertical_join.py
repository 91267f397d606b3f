"""Vertical joins end to end: a real hub, three stations and their MPC parties.

The UCI heart disease data is split by columns over a hospital, a general
practice and an insurer, each holding 85% of the persons
(:func:`linksight.network.vertical_heart_split`). Every released figure is
checked against pandas' inner merge of the same three datasets: counts
exactly, means and variances to 1e-6 relative, and OLS coefficients and
standard errors against statsmodels to 1e-4 relative.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from linksight.network import LocalNetwork, vertical_heart_split

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def vertical_network(tmp_path_factory):
    """A hub and the vertical study's three stations."""
    network = LocalNetwork(tmp_path_factory.mktemp("vertical-network"))
    try:
        network.start_hub()
        network.set_up_vertical_study()
        network.start_stations()
        yield network
    finally:
        network.stop()


@pytest.fixture(scope="module")
def split() -> dict[str, pd.DataFrame]:
    parts = vertical_heart_split()
    # The gp's exports write 0 for a value that was not measured.
    gp = parts["gp"].astype({"trestbps": float, "chol": float})
    parts["gp"] = gp.replace({"trestbps": {0: np.nan}, "chol": {0: np.nan}})
    return parts


def _run(network: LocalNetwork, query: str) -> tuple[dict, dict]:
    request = network.submit(query, purpose="integration test")
    assert request["state"] == "awaiting_approval", request
    network.approve_all(request["id"])
    request = network.wait_for(request["id"], timeout=400)
    return request, network.result(request["id"])["result"]


def test_join_counts_means_match_pandas(vertical_network, split):
    # A filter on the hospital's and the insurer's columns, a mean from the gp.
    query = (
        "SELECT count(*), mean(chol), var(chol), mean(thalch), count(thalch) "
        "FROM hospital "
        "JOIN gp USING (person_id) JOIN insurer USING (person_id) "
        "WHERE age > 50 AND num > 0 GROUP BY sex"
    )

    request, result = _run(vertical_network, query)

    merged = split["hospital"].merge(split["gp"], on="person_id", how="inner")
    merged = merged.merge(split["insurer"], on="person_id", how="inner")
    chosen = merged[(merged["age"] > 50) & (merged["num"] > 0)]
    assert request["state"] == "completed", request
    assert result["status"] == "released"
    assert result["joined"] == len(merged)
    assert result["stations"] == ["gp", "hospital", "insurer"]
    rows = {row["sex"]: row for row in result["rows"]}
    assert set(rows) == {"Female", "Male"}
    for sex, row in rows.items():
        group = chosen[chosen["sex"] == sex]
        chol = group["chol"].dropna()
        assert row["count(*)"] == len(group)
        assert row["mean(chol).n"] == len(chol)
        assert row["mean(chol)"] == pytest.approx(chol.mean(), rel=1e-6)
        assert row["var(chol)"] == pytest.approx(chol.var(), rel=1e-6)
        assert row["mean(thalch)"] == pytest.approx(group["thalch"].mean(), rel=1e-6)
        assert row["count(thalch)"] == group["thalch"].count()
    assert "count(thalch).n" not in result["columns"]


def test_join_ols_matches_statsmodels(vertical_network, split):
    # Two datasets: the insurer's station takes part as a helper.
    query = (
        "SELECT ols(trestbps ~ age + chol + C(sex)) FROM hospital "
        "JOIN gp USING (person_id) WHERE age > 40"
    )

    request, result = _run(vertical_network, query)

    merged = split["hospital"].merge(split["gp"], on="person_id", how="inner")
    chosen = merged[merged["age"] > 40].dropna(subset=["trestbps", "chol"])
    pooled = smf.ols("trestbps ~ age + chol + C(sex)", chosen).fit()
    assert request["state"] == "completed", request
    assert result["status"] == "released"
    assert result["joined"] == len(merged)
    assert result["model"]["n"] == int(pooled.nobs)
    rows = {row["term"]: row for row in result["rows"]}
    # statsmodels puts the C(sex) indicator before the numeric terms.
    assert sorted(rows) == sorted(pooled.params.index)
    for term, row in rows.items():
        assert row["coef"] == pytest.approx(pooled.params[term], rel=1e-4)
        assert row["std_err"] == pytest.approx(pooled.bse[term], rel=1e-4)


def test_join_logit_rare_condition_blocked(vertical_network, split):
    # Few joined persons are older than 74, so the condition term's level
    # true fails min_level_count before any Newton step.
    query = (
        "SELECT logit((num > 0) ~ age + C(sex) + (age > 74)) FROM hospital "
        "JOIN insurer USING (person_id)"
    )

    request, result = _run(vertical_network, query)

    merged = split["hospital"].merge(split["insurer"], on="person_id", how="inner")
    failed = [check for check in result["checks"] if not check["passed"]]
    assert 0 < (merged["age"] > 74).sum() < 10
    assert request["state"] == "blocked_by_disclosure_control", request
    assert result["status"] == "blocked"
    assert result["kind"] == "logit"
    assert result["rows"] == []
    assert result["blocked"]["rule"] == "min_level_count"
    assert [(c["statistic"], c["cell"]) for c in failed] == [
        ("(age > 74)", {"level": "true"})
    ]


def test_join_crosstab_small_cells_blocked(vertical_network, split):
    # A crosstab of the hospital's columns, filtered on the insurer's: few
    # persons with severe disease are women, or have other than asymptomatic
    # chest pain, so some cells hold fewer than 10 persons.
    query = (
        "SELECT crosstab(sex, cp) FROM hospital JOIN gp USING (person_id) "
        "JOIN insurer USING (person_id) WHERE num > 2"
    )

    request, result = _run(vertical_network, query)

    merged = split["hospital"].merge(split["gp"], on="person_id", how="inner")
    merged = merged.merge(split["insurer"], on="person_id", how="inner")
    chosen = merged[merged["num"] > 2]
    counts = pd.crosstab(chosen["sex"], chosen["cp"])
    small = set()
    for sex in ("Female", "Male"):
        for cp in ("typical angina", "atypical angina", "non-anginal", "asymptomatic"):
            count = counts.loc[sex, cp] if cp in counts.columns else 0
            if count < 10:
                small.add((sex, cp))
    failed = [check for check in result["checks"] if not check["passed"]]
    assert request["state"] == "blocked_by_disclosure_control", request
    assert result["status"] == "blocked"
    assert result["rows"] == []
    assert result["blocked"]["rule"] == "min_count"
    assert "rule min_count" in result["blocked"]["message"]
    assert {(c["cell"]["sex"], c["cell"]["cp"]) for c in failed} == small
    assert all(check["statistic"] == "count(*)" for check in failed)


def test_join_or_across_datasets_rejected(vertical_network):
    query = (
        "SELECT count(*) FROM hospital JOIN gp USING (person_id) "
        "WHERE age > 50 OR chol > 250"
    )

    body = vertical_network.call(
        "POST",
        "/requests",
        vertical_network.scientist_token,
        json={
            "collaboration": vertical_network.collaboration,
            "query": query,
            "purpose": "integration test",
        },
        expected=(422,),
    )

    assert body["detail"]["code"] == "invalid_query"
    assert "combines datasets gp and hospital with or" in body["detail"]["message"]

"""Regression models end to end, compared with statsmodels on the pooled lung data.

The hub, three stations and their MPyC parties are real and run on loopback.
The released coefficients, standard errors, p-values and 95% intervals must
equal statsmodels' OLS on the pooled rows to a relative tolerance of 1e-6
(absolute 1e-9 for values near zero): the fixed-point numbers carry far more
precision than that, so a larger gap means a wrong formula, not rounding.
"""

from __future__ import annotations

import matplotlib
import pytest
import statsmodels.formula.api as smf

from linksight.network import lung_data
from linksight_kernel.results import Result

matplotlib.use("Agg")

RELATIVE = 1e-6
ABSOLUTE = 1e-9


def _run(network, query: str) -> tuple[dict, dict]:
    request = network.submit(query, purpose="integration test")
    assert request["state"] == "awaiting_approval", request
    network.approve_all(request["id"])
    request = network.wait_for(request["id"])
    return request, network.result(request["id"])["result"]


def _pooled_fit(formula: str, frame):
    # statsmodels' formulas read a dot as attribute access: rename ph.karno.
    renamed = frame.rename(columns=lambda c: c.replace(".", "_")).astype(float)
    # sex has no missing value; as an integer its level is named 2, not 2.0.
    renamed["sex"] = renamed["sex"].astype(int)
    return smf.ols(formula.replace(".", "_"), data=renamed).fit()


def test_ols_equals_statsmodels(lung_network):
    query = "SELECT ols(time ~ age + C(sex) + ph.karno) FROM lung WHERE status == 2"
    request, result = _run(lung_network, query)
    frame = lung_data()
    fit = _pooled_fit("time ~ age + C(sex) + ph.karno", frame[frame["status"] == 2])
    rows = {row["term"]: row for row in result["rows"]}
    names = [name.replace("ph_karno", "ph.karno") for name in fit.params.index]
    intervals = fit.conf_int()

    assert request["state"] == "completed"
    assert result["status"] == "released"
    assert sorted(rows) == sorted(names)
    assert result["model"]["n"] == fit.nobs
    assert result["model"]["df_resid"] == fit.df_resid
    for name, reference in zip(names, fit.params.index, strict=True):
        row = rows[name]
        expected = {
            "coef": fit.params[reference],
            "std_err": fit.bse[reference],
            "t": fit.tvalues[reference],
            "p_value": fit.pvalues[reference],
            "ci_lower": intervals.loc[reference, 0],
            "ci_upper": intervals.loc[reference, 1],
        }
        for column, value in expected.items():
            assert row[column] == pytest.approx(value, rel=RELATIVE, abs=ABSOLUTE), (
                name,
                column,
            )

    # The notebook client shows the same document as a coefficient table.
    shown = Result.from_json(lung_network.result(request["id"]), "lung-study")
    axes = shown.plot()
    assert shown.is_model
    assert list(shown.df.index) == list(rows)
    assert shown.df.loc["age", "coef"] == rows["age"]["coef"]
    assert shown.model["n"] == fit.nobs
    assert len(axes.get_yticklabels()) == len(rows) - 1


def test_ols_small_level_is_blocked(lung_network):
    # ph.ecog 3 has one person and 4 none: both break the level-count rule,
    # and the indicator of 4, all zeros, also makes X'X singular.
    query = "SELECT ols(time ~ age + C(ph.ecog)) FROM lung"
    request, result = _run(lung_network, query)
    failed = [c for c in result["checks"] if not c["passed"]]
    level_failures = [c for c in failed if c["rule"] == "min_level_count"]
    rank_failures = [c["statistic"] for c in failed if c["rule"] == "full_rank"]

    assert request["state"] == "blocked_by_disclosure_control"
    assert result["status"] == "blocked"
    assert result["rows"] == []
    assert result["blocked"]["rule"] == "min_level_count"
    assert rank_failures == ["C(ph.ecog)[T.4]"]
    assert [(c["statistic"], c["cell"]) for c in level_failures] == [
        ("C(ph.ecog)", {"level": "3"}),
        ("C(ph.ecog)", {"level": "4"}),
    ]
    assert "C(ph.ecog)=3" in result["blocked"]["message"]


def test_ols_many_parameters_blocked(lung_network):
    # 16 persons of 75 or older have ph.karno: n - p = 13 >= 10, but p = 3 > 1.6.
    query = "SELECT ols(time ~ age + ph.karno) FROM lung WHERE age >= 75"
    frame = lung_data()
    subset = frame[(frame["age"] >= 75)].dropna(subset=["ph.karno"])
    request, result = _run(lung_network, query)
    by_rule = {c["rule"]: c["passed"] for c in result["checks"]}

    assert len(subset) == 16
    assert result["status"] == "blocked"
    assert by_rule["min_count"] is True
    assert by_rule["min_residual_df"] is True
    assert by_rule["max_parameter_fraction"] is False
    assert result["blocked"]["rule"] == "max_parameter_fraction"

"""Kaplan-Meier curves and the log-rank test end to end on the NCCTG lung data.

A real hub and three stations with their MPyC parties on loopback: the
session's network of the other lung tests. The released curves must equal
lifelines' on the pooled rows at every released day (survival to 1e-9
relative, the 95% intervals to 1e-6), and the log-rank statistic must
equal lifelines' to 1e-6 relative. The daily counts are exact integers,
and the secure part of the statistic, with 32 fractional bits, came within
1e-8 of lifelines'.
"""

from __future__ import annotations

import matplotlib
import pytest
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test

from linksight.network import lung_data
from linksight_kernel.results import Result

matplotlib.use("Agg")

# The first test may also start the session's network.
pytestmark = pytest.mark.timeout(600)


def _run(network, query: str) -> tuple[dict, dict]:
    request = network.submit(query, purpose="integration test")
    assert request["state"] == "awaiting_approval", request
    network.approve_all(request["id"])
    request = network.wait_for(request["id"], timeout=600)
    return request, network.result(request["id"])["result"]


def _last_day_with_ten(times) -> int:
    """Return the last day on which at least 10 persons are at risk."""
    ordered = sorted(int(t) for t in times)
    return ordered[-10]


def test_km_equals_lifelines(lung_network):
    frame = lung_data()
    fitter = KaplanMeierFitter().fit(frame["time"], frame["status"] == 2)
    curve = fitter.survival_function_["KM_estimate"]
    intervals = fitter.confidence_interval_
    request, result = _run(lung_network, "SELECT km(time, status == 2) FROM lung")
    rows = result["rows"]

    assert request["state"] == "completed", request
    assert result["status"] == "released"
    assert result["survival"]["median"] == {"": 310}
    assert fitter.median_survival_time_ == 310
    assert result["survival"]["cut"] == _last_day_with_ten(frame["time"])
    assert result["survival"]["n"] == {"": 228}
    assert rows
    for row in rows:
        day = row["time"]
        assert row["at_risk"] >= 10, row
        assert row["at_risk"] == int((frame["time"] >= day).sum()), row
        assert row["survival"] == pytest.approx(curve.loc[day], rel=1e-9), row
        lower = intervals.loc[day, "KM_estimate_lower_0.95"]
        upper = intervals.loc[day, "KM_estimate_upper_0.95"]
        assert row["ci_lower"] == pytest.approx(lower, rel=1e-6), row
        assert row["ci_upper"] == pytest.approx(upper, rel=1e-6), row
    released_days = [row["time"] for row in rows]
    event_days = sorted(
        int(t) for t in frame.loc[frame["status"] == 2, "time"].unique()
    )
    assert released_days == [d for d in event_days if d <= result["survival"]["cut"]]


def test_km_by_sex_medians(lung_network):
    frame = lung_data()
    request, result = _run(
        lung_network, "SELECT km(time, status == 2) FROM lung GROUP BY sex"
    )
    medians = {}
    for sex in (1, 2):
        group = frame[frame["sex"] == sex]
        fitter = KaplanMeierFitter().fit(group["time"], group["status"] == 2)
        medians[str(sex)] = fitter.median_survival_time_
    cut = min(
        _last_day_with_ten(frame.loc[frame["sex"] == sex, "time"]) for sex in (1, 2)
    )

    assert result["status"] == "released", result
    assert result["columns"][0] == "sex"
    assert result["survival"]["median"] == medians
    assert result["survival"]["cut"] == cut
    assert all(row["at_risk"] >= 10 for row in result["rows"])

    shown = Result.from_json(lung_network.result(request["id"]), "lung-study")
    axes = shown.plot()
    assert shown.is_survival
    assert len(axes.get_lines()) == 2


def test_logrank_equals_lifelines(lung_network):
    frame = lung_data()
    men = frame[frame["sex"] == 1]
    women = frame[frame["sex"] == 2]
    reference = logrank_test(
        men["time"], women["time"], men["status"] == 2, women["status"] == 2
    )
    request, result = _run(
        lung_network, "SELECT logrank(time, status == 2) FROM lung GROUP BY sex"
    )
    (row,) = result["rows"]

    assert request["state"] == "completed", request
    assert round(row["chi_square"], 3) == 10.327
    assert row["chi_square"] == pytest.approx(reference.test_statistic, rel=1e-6)
    assert row["p_value"] == pytest.approx(reference.p_value, rel=1e-5)
    assert row["df"] == 1
    assert result["survival"]["n"] == {"1": 138, "2": 90}


def test_km_small_group_blocked(lung_network):
    # Only one person has an ECOG score of 3.
    request, result = _run(
        lung_network, "SELECT km(time, status == 2) FROM lung GROUP BY ph.ecog"
    )
    failed = [c for c in result["checks"] if not c["passed"]]

    assert request["state"] == "blocked_by_disclosure_control"
    assert result["status"] == "blocked"
    assert result["rows"] == []
    assert result["blocked"]["rule"] == "min_count"
    assert {c["cell"]["group"] for c in failed} >= {"3", "4"}
    assert "ph.ecog=3" in result["blocked"]["message"]

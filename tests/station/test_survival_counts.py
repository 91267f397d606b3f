"""Tests of the survival counts a station computes and the curve built from them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test

from station.secure_survival import LocalTable
from station.survival import kaplan_meier, logrank_terms, median_time


def _lines(frame: pd.DataFrame) -> list[list[int]]:
    grouped = frame.groupby(["t", "g"]).agg(rows=("e", "size"), events=("e", "sum"))
    return [[int(t), int(g), int(r), int(e)] for (t, g), (r, e) in grouped.iterrows()]


def _random_frame(seed: int) -> pd.DataFrame:
    generator = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            # Few distinct times, so that ties are common.
            "t": generator.integers(1, 40, size=300),
            "e": generator.integers(0, 2, size=300),
            "g": generator.integers(0, 2, size=300),
        }
    )


def test_daily_counts_match_pandas():
    frame = _random_frame(1)
    table = LocalTable(_lines(frame), 2)

    at_risk, events = table.daily(0, 45)

    for g in (0, 1):
        group = frame[frame["g"] == g]
        for day in range(46):
            assert at_risk[g][day] == int((group["t"] >= day).sum()), (g, day)
            ended = group[(group["t"] == day) & (group["e"] == 1)]
            assert events[g][day] == len(ended), (g, day)
    assert table.persons() == [int((frame["g"] == g).sum()) for g in (0, 1)]
    assert table.at_risk(20) == [at_risk[0][20], at_risk[1][20]]


def test_tail_padded_to_size():
    frame = pd.DataFrame({"t": [5, 7, 7, 9], "e": [1, 1, 0, 1], "g": [0, 1, 1, 0]})
    table = LocalTable(_lines(frame), 2)

    records = table.tail(6, 5)

    assert len(records) == 5
    assert sorted(r[:2] for r in records[:3]) == [[7.0, 0.0], [7.0, 1.0], [9.0, 1.0]]
    assert records[3:] == [[7.0, 0.0, 0.0, 0.0], [7.0, 0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="more than the 2 at risk"):
        table.tail(6, 2)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_curve_and_test_match_lifelines(seed):
    frame = _random_frame(seed)
    table = LocalTable(_lines(frame), 2)
    at_risk, events = table.daily(0, 45)
    pooled_at_risk = [a + b for a, b in zip(*at_risk, strict=True)]
    pooled_events = [a + b for a, b in zip(*events, strict=True)]
    fitter = KaplanMeierFitter().fit(frame["t"], frame["e"] == 1)
    intervals = fitter.confidence_interval_

    steps = kaplan_meier(list(range(46)), pooled_at_risk, pooled_events)
    score, covariance = logrank_terms(at_risk, events)
    first, second = frame[frame["g"] == 0], frame[frame["g"] == 1]
    reference = logrank_test(first["t"], second["t"], first["e"], second["e"])

    for step in steps:
        day = step["time"]
        expected = fitter.survival_function_.loc[day, "KM_estimate"]
        assert step["survival"] == pytest.approx(expected, rel=1e-12), day
        if 0 < step["survival"]:
            lower = intervals.loc[day, "KM_estimate_lower_0.95"]
            upper = intervals.loc[day, "KM_estimate_upper_0.95"]
            assert step["ci_lower"] == pytest.approx(lower, rel=1e-9), day
            assert step["ci_upper"] == pytest.approx(upper, rel=1e-9), day
    assert median_time(steps) == fitter.median_survival_time_
    statistic = score[0] ** 2 / covariance[0][0]
    assert statistic == pytest.approx(reference.test_statistic, rel=1e-12)


def test_curve_reaching_zero():
    steps = kaplan_meier([1, 2], [2, 1], [1, 1])

    assert [step["survival"] for step in steps] == [0.5, 0.0]
    assert steps[-1]["ci_lower"] == 0.0
    assert steps[-1]["ci_upper"] == 0.0
    assert median_time(steps) == 1

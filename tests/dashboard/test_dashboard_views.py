"""What the stewards' dashboard shows, computed from hub responses without a page."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from linksight.network import covid_schema_path, lung_schema_path
from linksight.query import parse_query
from linksight.rules import CollaborationRules
from linksight.schema import load_schema
from linksight_kernel.dashboard.views import (
    ONLINE_SECONDS,
    audit_csv,
    budget_use,
    describe_analysis,
    describe_columns,
    disclosure_checks,
    filter_audit,
    output_shape,
    parse_rule_changes,
    preview,
    request_html,
    rules_history,
    similar_requests,
    station_health,
)
from linksight_kernel.requests import Request
from station.daemon import REGISTER_SECONDS

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LUNG = load_schema(lung_schema_path())
STATIONS = {"lung": ["station-a", "station-b", "station-c"]}
ORGANISATIONS = {
    "station-a": "Hospital A",
    "station-b": "Hospital B",
    "station-c": "Hospital C",
}


def _request(
    request_id: int,
    query: str = "SELECT count(*), mean(age) FROM lung GROUP BY sex",
    submitter: str = "sam",
    state: str = "awaiting_approval",
    created: datetime = NOW,
    rejection: dict | None = None,
    dataset: str = "lung",
) -> Request:
    return Request.from_json(
        {
            "id": request_id,
            "collaboration": "lung-study",
            "dataset": dataset,
            "query": query,
            "purpose": "age <b>by</b> sex",
            "submitter": submitter,
            "state": state,
            "approvals": [],
            "touched_organisations": ["Hospital A", "Hospital B", "Hospital C"],
            "parties": [],
            "rejection": rejection,
            "error": None,
            "created_at": created.isoformat(),
            "updated_at": created.isoformat(),
            "expires_at": (created + timedelta(days=7)).isoformat(),
        }
    )


def _spec(query: str):
    return parse_query(query, {"lung": LUNG})


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "SELECT count(*), mean(age) FROM lung GROUP BY sex",
            "2 groups x 2 statistic(s) = 4 figures, each with the n behind it",
        ),
        ("SELECT var(age) FROM lung", "1 figure(s), each with the n behind it"),
        ("SELECT crosstab(sex, ph.ecog) FROM lung", "a table of 10 cells of counts"),
        (
            "SELECT ols(time ~ age + C(sex)) FROM lung",
            "3 coefficients with standard errors, confidence intervals and "
            "p-values, and n",
        ),
    ],
)
def test_output_shape_per_analysis(query, expected):
    assert output_shape(_spec(query), LUNG, 3) == expected


def test_output_shape_of_overlap():
    covid = load_schema(covid_schema_path())
    spec = parse_query("SELECT overlap(subject_id) FROM covid", {"covid": covid})

    # 1 unique + 3 exactly-k + 3 list sizes + 3 pairwise + 3 elsewhere + 3 invalid
    assert output_shape(spec, covid, 3) == "16 counts of persons over 3 lists"


def test_analysis_and_columns_in_words():
    spec = _spec("SELECT mean(age) FROM lung WHERE ph.ecog >= 1 GROUP BY sex")

    assert (
        describe_analysis(spec) == "mean(age), grouped by sex, on a subset of the rows"
    )
    assert describe_columns(spec) == [
        "age (statistic)",
        "ph.ecog (filter)",
        "sex (group by)",
    ]


def test_checks_follow_collaboration_rules():
    rules = CollaborationRules(min_count=15, differencing_window=0)
    spec = _spec("SELECT var(age) FROM lung GROUP BY sex")

    checks = disclosure_checks(spec, rules, requester_holds_data=True)

    assert checks[0] == "min_count: at least 15 persons behind every figure"
    assert any(c.startswith("min_count_without_requester") for c in checks)
    assert any(c.startswith("variance_needs_two") for c in checks)
    assert not any(c.startswith("differencing") for c in checks)


def test_checks_name_overlapping_filters():
    spec = _spec("SELECT count(*) FROM lung WHERE age >= 60")

    checks = disclosure_checks(spec, CollaborationRules(), requester_holds_data=False)
    narrow = disclosure_checks(
        spec, CollaborationRules(differencing_window=4), requester_holds_data=False
    )

    assert (
        "overlapping_filters: with each pair of the last 10 released queries, "
        "no count of fewer than 10 persons follows from the three"
    ) in checks
    assert any("pair of the last 4 released" in check for check in narrow)


def test_checks_of_regression():
    spec = _spec("SELECT ols(time ~ age) FROM lung")

    checks = disclosure_checks(spec, CollaborationRules(), requester_holds_data=False)

    assert "min_residual_df: n - parameters at least 10" in checks
    assert not any(c.startswith("min_count_without_requester") for c in checks)


def test_budget_counts_like_hub():
    rules = CollaborationRules(max_requests=5, budget_period_days=30)
    visible = [
        _request(1, created=NOW - timedelta(days=40)),
        _request(2, created=NOW - timedelta(days=3)),
        _request(
            3,
            state="rejected",
            rejection={"rule": "max_group_levels", "message": "too many cells"},
        ),
        _request(
            4,
            state="rejected",
            rejection={"rule": "steward_rejection", "message": "no"},
        ),
        _request(5, submitter="kim"),
        _request(6),
    ]

    # Counted: 2 (in the window), 4 (a steward's rejection) and 6 itself.
    assert budget_use(visible[-1], visible, rules, now=NOW) == (3, 5)


def test_similar_requests_earlier_only():
    visible = [
        _request(1, "SELECT count(*), mean(age) FROM lung GROUP BY ph.ecog"),
        _request(2, "SELECT crosstab(sex, ph.ecog) FROM lung", submitter="kim"),
        _request(3),
        _request(4, "SELECT count(*), mean(age) FROM lung GROUP BY sex"),
    ]

    similar = similar_requests(visible[2], visible)

    assert len(similar) == 1
    assert similar[0].startswith("request 1 by sam, awaiting approval")


def test_preview_of_unparsable_request():
    broken = _request(1, "SELECT mean(weight) FROM lung")

    found = preview(
        broken, {"lung": LUNG}, CollaborationRules(), STATIONS, [broken], "", {}
    )

    assert "no longer fits the registered schemas" in found.parse_error
    assert found.checks == []


def test_request_html_escapes_text():
    request = _request(7)
    found = preview(
        request,
        {"lung": LUNG},
        CollaborationRules(),
        STATIONS,
        [request],
        "Research Institute",
        ORGANISATIONS,
    )

    page = request_html(request, found)

    assert "age &lt;b&gt;by&lt;/b&gt; sex" in page
    assert "<b>sam</b> asks, in collaboration <b>lung-study</b>" in page
    assert "Waiting for: Hospital A, Hospital B, Hospital C" in page


def test_station_health_online_and_offline():
    stations = [
        {
            "name": "station-a",
            "organisation": "Hospital A",
            "last_seen": NOW.isoformat(),
        },
        {
            "name": "station-b",
            "organisation": "Hospital B",
            "last_seen": (NOW - timedelta(seconds=ONLINE_SECONDS + 1)).isoformat(),
            "version": "0.1.0",
        },
        {"name": "station-c", "organisation": "Hospital C", "last_seen": None},
    ]

    health = station_health(stations, now=NOW)

    assert health["status"].tolist() == ["online", "offline", "offline"]
    assert health["seen ago"].tolist() == ["0 s ago", "91 s ago", "never"]
    assert health["version"].tolist() == ["unknown", "0.1.0", "unknown"]


def test_online_window_spans_heartbeats():
    assert ONLINE_SECONDS >= 2 * REGISTER_SECONDS


def test_rules_history_lists_changes():
    created = NOW.isoformat()
    versions = [
        {
            "version": 3,
            "state": "proposed",
            "rules": {"min_count": 15, "max_requests": 20},
            "reason": "stricter",
            "proposed_by": "steward-a",
            "acceptances": [{"organisation": "Hospital A"}],
            "awaiting": ["Hospital B"],
            "activated_at": None,
        },
        {
            "version": 2,
            "state": "active",
            "rules": {"min_count": 12, "max_requests": 20},
            "reason": "rare diagnoses",
            "proposed_by": "steward-b",
            "acceptances": [],
            "awaiting": [],
            "activated_at": created,
        },
        {
            "version": 1,
            "state": "superseded",
            "rules": {"min_count": 10, "max_requests": None},
            "reason": "rules at creation",
            "proposed_by": "admin",
            "acceptances": [],
            "awaiting": [],
            "activated_at": created,
        },
    ]

    history = rules_history(versions)

    assert history.index.tolist() == [3, 2, 1]
    assert history.loc[3, "changes"] == "min_count: 12 -> 15"
    assert history.loc[2, "changes"] == "max_requests: null -> 20; min_count: 10 -> 12"
    assert history.loc[1, "changes"] == "rules at creation"
    assert history.loc[3, "awaiting"] == "Hospital B"


def test_parse_rule_changes_values():
    changes = parse_rule_changes(["min_count=15", 'allowed_analyses=["aggregate"]'])

    assert changes == {"min_count": 15, "allowed_analyses": ["aggregate"]}
    with pytest.raises(ValueError, match="write RULE=VALUE"):
        parse_rule_changes(["min_count"])


def _audit_frame() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "seq": 1,
                "time": "2026-01-01T10:00:00+00:00",
                "event": "request.submitted",
                "organisation": "Research Institute",
                "user": "sam",
                "objects": {"request": 1},
                "details": {},
            },
            {
                "seq": 2,
                "time": "2026-01-02T10:00:00+00:00",
                "event": "request.approved",
                "organisation": "Hospital A",
                "user": "steward-a",
                "objects": {"request": 1},
                "details": {"reason": "fine"},
            },
            {
                "seq": 3,
                "time": "2026-01-03T10:00:00+00:00",
                "event": "rules.proposed",
                "organisation": "Hospital A",
                "user": "steward-a",
                "objects": {"collaboration": "lung-study"},
                "details": {},
            },
        ]
    )


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"user": "steward-a"}, [2, 3]),
        ({"organisation": "Research Institute"}, [1]),
        ({"event": "request."}, [1, 2]),
        ({"request_id": 1}, [1, 2]),
        ({"since": datetime(2026, 1, 2, 10)}, [2, 3]),
        ({"until": datetime(2026, 1, 2, 10, tzinfo=UTC)}, [1]),
        ({"user": "steward-a", "since": datetime(2026, 1, 3)}, [3]),
    ],
)
def test_filter_audit(filters, expected):
    assert filter_audit(_audit_frame(), **filters)["seq"].tolist() == expected


def test_audit_csv_keeps_json():
    text = audit_csv(_audit_frame())

    exported = pd.read_csv(io.StringIO(text))
    assert exported["seq"].tolist() == [1, 2, 3]
    assert exported.loc[1, "details"] == '{"reason": "fine"}'


def test_unknown_analysis_kind_described():
    # A kind this dashboard does not know yet, such as a newer hub's.
    spec = _spec("SELECT count(*) FROM lung").model_copy(
        update={"kind": "cox", "aggregates": []}
    )

    assert describe_analysis(spec) == "a cox analysis"
    assert output_shape(spec, LUNG, 3) == "not estimated here for cox queries"
    assert disclosure_checks(spec, CollaborationRules(), False)[-1] == (
        "the checks of cox queries in docs/disclosure-control.md"
    )


def test_logistic_preview_lists_model_checks():
    spec = _spec("SELECT logit((status == 2) ~ age + C(sex)) FROM lung")

    checks = disclosure_checks(spec, CollaborationRules(), requester_holds_data=False)

    assert describe_analysis(spec).startswith("a logistic regression ")
    assert output_shape(spec, LUNG, 3).endswith("and the number of iterations")
    assert "min_residual_df: n - parameters at least 10" in checks
    assert any(check.startswith("min_level_count: at least 10") for check in checks)
    assert any(check.startswith("converged:") for check in checks)


@pytest.mark.parametrize(
    ("query", "analysis", "shape_start"),
    [
        (
            "SELECT km(time, status == 2) FROM lung GROUP BY sex",
            "Kaplan-Meier survival curves of time, event status == 2, grouped by sex",
            "the survival estimate with its 95% interval",
        ),
        (
            "SELECT logrank(time, status == 2) FROM lung GROUP BY sex",
            "a log-rank test of time, event status == 2, grouped by sex",
            "the chi-square statistic",
        ),
    ],
)
def test_survival_preview(query, analysis, shape_start):
    spec = _spec(query)

    checks = disclosure_checks(spec, CollaborationRules(), requester_holds_data=False)

    assert describe_analysis(spec) == analysis
    assert output_shape(spec, LUNG, 3).startswith(shape_start)
    assert output_shape(spec, LUNG, 3).endswith("for each of 2 groups")
    assert checks[-1].startswith("min_count: every released step rests on at least")


def test_training_preview_releases_pooled_only():
    spec = _spec("SELECT train(logistic, status ~ age + C(sex), rounds = 4) FROM lung")

    checks = disclosure_checks(spec, CollaborationRules(), requester_holds_data=False)

    assert describe_analysis(spec) == (
        "federated training of a logistic model status ~ age + C(sex), 4 rounds"
    )
    assert output_shape(spec, LUNG, 3) == (
        "the trained model's parameters and its metrics"
    )
    assert "max_parameter_fraction: parameters at most 0.1 of n" in checks
    assert (
        checks[-1]
        == "only the pooled n, loss and accuracy, never one station's figures"
    )

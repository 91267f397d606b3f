"""The Python client against a real hub, stations and MPC parties on loopback."""

from __future__ import annotations

import pandas as pd
import pytest

from linksight.network import lung_data
from linksight.query import QueryError
from linksight_kernel import (
    Client,
    DisclosureBlockedError,
    NotFoundError,
    PermissionDeniedError,
    RequestRejectedError,
)

QUERY = "SELECT count(*), mean(age) FROM lung WHERE ph.ecog >= 1 GROUP BY sex"


@pytest.fixture(scope="module")
def client(playground):
    with Client() as connected:
        yield connected


@pytest.fixture(scope="module")
def released(client):
    return client.query(QUERY, purpose="client test", progress="text")


def test_client_identifies_scientist(client):
    me = client.me()
    assert me["name"] == "sam"
    assert me["roles"] == ["scientist"]


def test_repr_hides_token(client, playground):
    assert playground.network.scientist_token not in repr(client)
    assert repr(client) == f"Client(hub_url={playground.network.hub_url!r})"


def test_collaborations_listed(client):
    frame = client.collaborations()
    assert frame["collaboration"].tolist() == [
        "heart-study",
        "lung-study",
        "vertical-study",
        "waiting-lists",
    ]


def test_datasets_listed(client):
    frame = client.datasets()
    assert frame["dataset"].tolist() == ["lung"]
    assert frame.loc[0, "stations"] == "station-a, station-b, station-c"


def test_schema_shows_uses_not_values(client):
    frame = client.schema("lung")
    assert frame.loc["sex", "allowed uses"] == "group by, filter"
    assert frame.loc["age", "allowed uses"] == "statistic, filter"
    assert frame.loc["age", "values"] == "18 to 110"
    assert frame.loc["ph.ecog", "values"] == "levels 0, 1, 2, 3, 4"


def test_unknown_dataset_suggests_name(client):
    with pytest.raises(NotFoundError) as caught:
        client.schema("lnug")
    assert str(caught.value) == (
        "dataset 'lnug' not found (did you mean 'lung'?); available: lung"
    )


def test_released_result_equals_pandas(released):
    frame = lung_data()
    impaired = frame[frame["ph.ecog"] >= 1].groupby("sex")["age"]
    assert released.released
    assert released.df["count(*)"].tolist() == impaired.count().tolist()
    assert released.df["mean(age)"].to_numpy() == pytest.approx(
        impaired.mean().to_numpy(), abs=1e-6
    )
    assert released.n["mean(age)"].tolist() == impaired.count().tolist()


def test_result_carries_checks_and_audit(released):
    checks = released.checks
    assert set(checks["rule"]) == {"min_count", "dominance", "p_percent"}
    assert checks["passed"].all()
    assert released.audit_seq > 0
    assert released.audit_reference == f"hub audit record {released.audit_seq}"
    assert len(released.sha256) == 64
    assert "8 of 8 disclosure checks passed" in released._repr_html_()


def test_result_plot_draws_bars(released):
    import matplotlib

    matplotlib.use("Agg")
    ax = released.plot("mean(age)")
    assert len(ax.patches) == 2
    assert [t.get_text() for t in ax.texts] == ["n=101", "n=63"]


def test_blocked_query_raises_with_checks(client):
    with pytest.raises(DisclosureBlockedError) as caught:
        client.query("SELECT crosstab(sex, ph.ecog) FROM lung", progress="none")
    result = caught.value.result
    failed = result.checks[~result.checks["passed"]]
    assert caught.value.request.state == "blocked_by_disclosure_control"
    assert result.blocked_rule == "min_count"
    assert failed["cell"].tolist() == [
        "sex=1, ph.ecog=3",
        "sex=1, ph.ecog=4",
        "sex=2, ph.ecog=3",
        "sex=2, ph.ecog=4",
    ]
    assert result.df.empty
    with pytest.raises(ValueError, match="no figures to plot"):
        result.plot()


def test_invalid_query_never_sent(client):
    before = len(client.requests())
    with pytest.raises(QueryError) as caught:
        client.submit("SELECT mean(agee) FROM lung")
    assert "did you mean 'age'?" in str(caught.value)
    assert len(client.requests()) == before


def test_steward_rejection_raises(playground):
    kim = Client(profile="kim")
    steward = kim.as_profile("steward-b")
    request = kim.submit("SELECT mean(time) FROM lung", purpose="rejection test")
    steward.reject(request.id, "not within the study protocol")
    with pytest.raises(RequestRejectedError) as caught:
        kim.outcome(kim.wait(request.id, progress="none"))
    assert str(caught.value) == (
        f"request {request.id} was rejected by rule steward_rejection: steward "
        "'steward-b' of 'Hospital B' rejected the request: not within the "
        "study protocol"
    )


def test_manual_approval_runs_request(playground):
    kim = Client(profile="kim")
    request = kim.submit("SELECT count(*) FROM lung GROUP BY status")
    assert request.state == "awaiting_approval"
    for steward in ("steward-a", "steward-b", "steward-c"):
        kim.as_profile(steward).approve(request.id, "fits the protocol")
    final = kim.wait(request.id, progress="none")
    result = kim.outcome(final)
    expected = lung_data().groupby("status").size()
    assert final.approved_by == ["Hospital A", "Hospital B", "Hospital C"]
    assert final.stations_finished == ["station-a", "station-b", "station-c"]
    assert result.df["count(*)"].tolist() == expected.tolist()


def test_scientist_cannot_approve(client):
    request = Client(profile="kim").submit("SELECT mean(meal.cal) FROM lung")
    with pytest.raises(PermissionDeniedError) as caught:
        client.approve(request.id)
    assert caught.value.status == 403


def test_budget_without_limit(client):
    budget = client.budget()
    assert budget["limit"] is None
    assert budget["used"] >= 1


def test_progress_text_bar_names_stations(playground, capsys):
    with Client() as client:
        client.query("SELECT mean(time) FROM lung GROUP BY sex", progress="text")
    err = capsys.readouterr().err
    assert "awaiting approval: 0 of 3 organisations approved" in err
    assert "station-a completed, station-b completed, station-c completed" in err
    assert "approved by Hospital A, Hospital B, Hospital C" in err


def test_result_table_has_n_columns(released):
    assert isinstance(released.table, pd.DataFrame)
    assert list(released.table.columns) == ["count(*)", "mean(age)", "mean(age).n"]


def test_rotated_key_opens_older_result(client):
    result = client.query(
        "SELECT count(*) FROM lung GROUP BY sex", purpose="key test", progress="none"
    )
    old = client.register_result_key()

    new = client.rotate_result_key()
    reopened = client.result(result.request_id)

    assert new["fingerprint"] != old["fingerprint"]
    assert client.me()["name"] == "sam"
    assert reopened.sha256 == result.sha256
    kept = client.result_key_path.with_name(f"result.key.{old['fingerprint']}")
    assert kept.is_file()
    assert oct(client.result_key_path.stat().st_mode & 0o777) == "0o600"

"""The %linksight magics in a real IPython shell against the session playground."""

from __future__ import annotations

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.testing.globalipapp import start_ipython

from linksight_kernel import DisclosureBlockedError, Request, Result
from linksight_kernel.requests import REQUEST_STATES


@pytest.fixture(scope="module")
def shell(playground):
    ipython = start_ipython()
    ipython.run_line_magic("load_ext", "linksight_kernel")
    yield ipython
    ipython.run_line_magic("reset", "-f")


@pytest.fixture(scope="module")
def connected(shell):
    shell.run_line_magic("linksight", "connect")
    return shell


def test_help_lists_every_command(shell):
    help_text = shell.find_line_magic("linksight").__doc__
    for command in (
        "connect",
        "datasets",
        "schema",
        "status",
        "requests",
        "revoke",
        "budget",
        "approve",
    ):
        assert f"%linksight {command}" in help_text
    assert "Withdraw a request of yours that has not started running." in help_text
    assert "List your requests, oldest first, with their state" in help_text
    assert "%%linksight [-c COLLABORATION] [-o OUTPUT]" in help_text


def test_not_connected_says_how(shell):
    magics = shell.magics_manager.registry["LinksightMagics"]
    saved, magics.client = magics.client, None
    try:
        with pytest.raises(UsageError) as caught:
            shell.run_line_magic("linksight", "datasets")
    finally:
        magics.client = saved
    assert str(caught.value) == "not connected: run %linksight connect URL first"


def test_connect_prints_identity(shell, capsys, playground):
    shell.run_line_magic("linksight", "connect")
    out = capsys.readouterr().out
    assert out == (
        f"connected to {playground.network.hub_url} as sam of Research Institute "
        "(scientist); collaborations: heart-study, lung-study, vertical-study, "
        "waiting-lists\n"
    )


def test_connect_to_nothing_keeps_connection(connected, playground):
    magics = connected.magics_manager.registry["LinksightMagics"]
    before = magics.client

    with pytest.raises(UsageError) as caught:
        connected.run_line_magic("linksight", "connect http://127.0.0.1:1")

    assert "the hub at http://127.0.0.1:1 did not respond" in str(caught.value)
    assert magics.client is before
    assert magics.client.hub_url == playground.network.hub_url


def test_unknown_command_suggests(connected):
    with pytest.raises(UsageError) as caught:
        connected.run_line_magic("linksight", "shema lung")
    assert str(caught.value) == (
        "unknown command 'shema' (did you mean 'schema'?); commands: connect, "
        "collaborations, datasets, schema, status, requests, revoke, budget, "
        "approve, result"
    )


def test_datasets_returns_frame(connected):
    frame = connected.run_line_magic("linksight", "datasets")
    assert isinstance(frame, pd.DataFrame)
    assert frame["dataset"].tolist() == ["lung"]


def test_schema_returns_frame(connected):
    frame = connected.run_line_magic("linksight", "schema lung")
    assert frame.loc["wt.loss", "type"] == "integer"


def test_invalid_query_cell_shows_caret(connected):
    with pytest.raises(UsageError) as caught:
        connected.run_cell_magic("linksight", "", "SELECT mean(age FROM lung")
    assert str(caught.value) == (
        "invalid query: unclosed parenthesis after mean: add ')' before FROM "
        "(column 12)\n  SELECT mean(age FROM lung\n             ^"
    )


def test_empty_cell_says_what_to_write(connected):
    with pytest.raises(UsageError, match="the cell has no query"):
        connected.run_cell_magic("linksight", "", "  \n")


def test_query_cell_over_hub_limit(connected):
    cell = "SELECT count(*) FROM lung\nWHERE age IN (" + ", ".join(["60"] * 2600)
    cell += ")\nGROUP BY sex"

    with pytest.raises(UsageError) as caught:
        connected.run_cell_magic("linksight", "--no-progress", cell)

    assert str(caught.value) == (
        f"invalid request: the query is {len(cell):,} characters long, more than "
        "the hub's limit of 10,000; shorten it, or split the analysis into "
        "several queries"
    )


def test_query_cell_stores_result(connected):
    value = connected.run_cell_magic(
        "linksight",
        "-o ages --no-progress",
        "SELECT mean(age) FROM lung GROUP BY sex",
    )
    stored = connected.user_ns["ages"]
    assert isinstance(value, Result)
    assert stored is value
    assert stored.df.index.tolist() == [1, 2]


def test_blocked_cell_raises_and_keeps_checks(connected):
    with pytest.raises(DisclosureBlockedError, match="rule min_count"):
        connected.run_cell_magic(
            "linksight",
            "-o table --no-progress",
            "SELECT crosstab(sex, ph.ecog) FROM lung",
        )
    stored = connected.user_ns["table"]
    assert isinstance(stored, Result)
    assert not stored.checks["passed"].all()


def test_blocked_error_renders_without_traceback(connected):
    error = DisclosureBlockedError("request 1: blocked", request=None)  # type: ignore[arg-type]
    assert error._render_traceback_() == ["DisclosureBlockedError: request 1: blocked"]


def test_steward_approves_with_profile(shell, capsys):
    shell.run_line_magic("linksight", "connect --profile kim")
    shell.run_cell_magic(
        "linksight", "--no-wait -o waiting", "SELECT count(*) FROM lung GROUP BY sex"
    )
    request = shell.user_ns["waiting"]
    assert isinstance(request, Request)
    assert request.state == "awaiting_approval"
    for steward in ("steward-a", "steward-b", "steward-c"):
        shell.run_line_magic("linksight", f"approve {request.id} --as {steward}")
    out = capsys.readouterr().out
    assert f"approved as steward-c; request {request.id} (lung-study): " in out
    result = shell.run_line_magic("linksight", f"result {request.id} -o counts")
    assert result.df["count(*)"].sum() == 228
    status = shell.run_line_magic("linksight", f"status {request.id}")
    assert status["decision"].tolist() == ["approved", "approved", "approved"]
    assert status["steward"].tolist() == ["steward-a", "steward-b", "steward-c"]
    shell.run_line_magic("linksight", "connect")


def test_own_request_cannot_be_approved(shell):
    shell.run_line_magic("linksight", "connect --profile kim")
    shell.run_cell_magic(
        "linksight", "--no-wait -o mine", "SELECT mean(time) FROM lung"
    )
    request_id = shell.user_ns["mine"].id
    with pytest.raises(UsageError) as caught:
        shell.run_line_magic("linksight", f"approve {request_id}")
    shell.run_line_magic("linksight", "connect")
    assert "this endpoint needs the steward role" in str(caught.value)


def test_budget_prints_use(connected, capsys):
    connected.run_line_magic("linksight", "budget")
    out = capsys.readouterr().out
    assert out.startswith("no query budget in lung-study: you have used ")


def test_revoke_and_requests_list_state(shell, capsys):
    shell.run_line_magic("linksight", "connect --profile kim")
    try:
        shell.run_cell_magic(
            "linksight", "--no-wait -o to_revoke", "SELECT count(*) FROM lung"
        )
        shell.run_cell_magic(
            "linksight", "--no-wait -o to_keep", "SELECT mean(age) FROM lung"
        )
        revoked_id = shell.user_ns["to_revoke"].id
        kept_id = shell.user_ns["to_keep"].id
        capsys.readouterr()
        shell.run_line_magic("linksight", f"revoke {revoked_id} --reason 'a typo'")
        printed = capsys.readouterr().out
        with pytest.raises(UsageError) as again:
            shell.run_line_magic("linksight", f"revoke {revoked_id}")
        listed = shell.run_line_magic("linksight", "requests")
        revoked = shell.run_line_magic("linksight", "requests --state revoked")
        in_lung = shell.run_line_magic("linksight", "requests -c lung-study")
        in_heart = shell.run_line_magic("linksight", "requests -c heart-study")
    finally:
        shell.run_line_magic("linksight", "connect")

    assert printed == f"revoked; request {revoked_id} (lung-study): revoked\n"
    assert f"request {revoked_id} is revoked" in str(again.value)
    assert listed.index.name == "request"
    assert listed.loc[revoked_id, "state"] == "revoked"
    assert listed.loc[kept_id, "state"] == "awaiting_approval"
    assert listed.loc[kept_id, "progress"].startswith("awaiting approval: 0 of 3")
    assert listed.loc[kept_id, "query"] == "SELECT mean(age) FROM lung"
    assert set(listed["submitter"]) == {"kim"}
    assert revoked_id in revoked.index
    assert kept_id not in revoked.index
    assert set(revoked["state"]) == {"revoked"}
    assert {revoked_id, kept_id} <= set(in_lung.index)
    assert in_heart.empty
    assert list(in_heart.columns) == [
        "collaboration",
        "submitter",
        "state",
        "progress",
        "submitted",
        "query",
    ]


def test_requests_unknown_state_suggests(connected):
    with pytest.raises(UsageError) as caught:
        connected.run_line_magic("linksight", "requests --state revokd")

    assert str(caught.value) == (
        "unknown state 'revokd' (did you mean 'revoked'?); states: submitted, "
        "awaiting_approval, approved, running, completed, failed, "
        "blocked_by_disclosure_control, rejected, revoked, expired"
    )


def test_requests_unknown_collaboration(connected):
    with pytest.raises(UsageError) as caught:
        connected.run_line_magic("linksight", "requests -c lung")

    assert str(caught.value) == (
        "collaboration 'lung' is not one of yours; yours: heart-study, "
        "lung-study, vertical-study, waiting-lists"
    )


def test_request_states_match_hub():
    from governance.states import RequestState

    assert REQUEST_STATES == tuple(state.value for state in RequestState)

"""The steward's `linksight requests` and `linksight audit` commands."""

from __future__ import annotations

import csv
import re

from typer.testing import CliRunner

from linksight.cli import app
from linksight_kernel.client import Client

runner = CliRunner()
QUERY = "SELECT mean(age) FROM lung GROUP BY status"


def _submit_as_kim(playground) -> int:
    with Client(profile="kim") as client:
        return client.submit(QUERY, purpose="steward CLI test").id


def test_requests_list_show_approve(playground):
    request_id = _submit_as_kim(playground)
    listed = runner.invoke(
        app,
        ["requests", "list", "--state", "awaiting_approval", "--profile", "steward-a"],
    )
    shown = runner.invoke(
        app, ["requests", "show", str(request_id), "--profile", "steward-a"]
    )
    approved = runner.invoke(
        app,
        [
            "requests",
            "approve",
            str(request_id),
            "--reason",
            "fits the study",
            "--profile",
            "steward-a",
        ],
    )
    assert listed.exit_code == 0, listed.output
    assert re.search(rf"\b{request_id}\b", listed.stdout)
    assert shown.exit_code == 0, shown.output
    assert f"query: {QUERY}" in shown.stdout
    assert "requested by: kim" in shown.stdout
    assert "purpose: steward CLI test" in shown.stdout
    assert approved.exit_code == 0, approved.output
    assert approved.stdout.startswith("approved;")


def test_requests_reject_needs_reason(playground):
    request_id = _submit_as_kim(playground)
    empty = runner.invoke(
        app,
        [
            "requests",
            "reject",
            str(request_id),
            "--reason",
            " ",
            "--profile",
            "steward-b",
        ],
    )
    rejected = runner.invoke(
        app,
        [
            "requests",
            "reject",
            str(request_id),
            "--reason",
            "purpose too broad",
            "--profile",
            "steward-b",
        ],
    )
    with Client(profile="kim") as client:
        state = client.request(request_id).state
    assert empty.exit_code == 2
    assert "a rejection needs a reason" in empty.stderr
    assert rejected.exit_code == 0, rejected.output
    assert state == "rejected"


def test_requests_list_unknown_state(playground):
    outcome = runner.invoke(
        app, ["requests", "list", "--state", "done", "--profile", "steward-a"]
    )
    assert outcome.exit_code == 2
    assert "unknown state 'done'" in outcome.stderr
    assert "awaiting_approval" in outcome.stderr


def test_audit_show_export_verify(playground, tmp_path):
    request_id = _submit_as_kim(playground)
    shown = runner.invoke(
        app, ["audit", "show", "--request", str(request_id), "--profile", "steward-a"]
    )
    missing_folder = runner.invoke(
        app,
        [
            "audit",
            "export",
            "--out",
            str(tmp_path / "no-such-folder" / "audit.csv"),
            "--profile",
            "steward-a",
        ],
    )
    out = tmp_path / "audit.csv"
    exported = runner.invoke(
        app,
        [
            "audit",
            "export",
            "--out",
            str(out),
            "--user",
            "kim",
            "--profile",
            "steward-a",
        ],
    )
    station_config = playground.network.stations[0].config_path
    verified = runner.invoke(
        app,
        [
            "audit",
            "verify",
            "--station-config",
            str(station_config),
            "--profile",
            "steward-a",
        ],
    )
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert shown.exit_code == 0, shown.output
    assert "request.submitted" in shown.stdout
    assert missing_folder.exit_code == 1
    assert "check that its folder exists" in missing_folder.stderr
    assert exported.exit_code == 0, exported.output
    assert rows
    assert {row["user"] for row in rows} == {"kim"}
    assert all(len(row["hash"]) == 64 for row in rows)
    assert verified.exit_code == 0, verified.output
    assert "hub: intact" in verified.stdout
    assert "station-a: intact" in verified.stdout


def test_audit_needs_steward(playground):
    outcome = runner.invoke(app, ["audit", "show", "--profile", "kim"])
    assert outcome.exit_code == 1
    assert "steward" in outcome.stderr


def test_rules_propose_accept_show(playground):
    collaboration = ["--collaboration", "waiting-lists"]
    proposed = runner.invoke(
        app,
        [
            "rules",
            "propose",
            "max_group_levels=30",
            "--reason",
            "fewer cells",
            *collaboration,
            "--profile",
            "steward-a",
        ],
    )
    version = re.search(r"version (\d+)", proposed.stdout).group(1)
    runner.invoke(
        app, ["rules", "accept", version, *collaboration, "--profile", "steward-b"]
    )
    accepted = runner.invoke(
        app, ["rules", "accept", version, *collaboration, "--profile", "steward-c"]
    )
    shown = runner.invoke(app, ["rules", "show", *collaboration, "--profile", "kim"])
    assert proposed.exit_code == 0, proposed.output
    assert "awaiting Hospital B, Hospital C" in proposed.stdout
    assert accepted.exit_code == 0, accepted.output
    assert f"version {version}: active" in accepted.stdout
    assert "max_group_levels = 30" in shown.stdout


def test_rules_propose_then_withdraw(playground):
    collaboration = ["--collaboration", "waiting-lists"]
    proposed = runner.invoke(
        app,
        [
            "rules",
            "propose",
            "max_group_levels=25",
            "--reason",
            "try it",
            *collaboration,
            "--profile",
            "steward-b",
        ],
    )
    version = re.search(r"version (\d+)", proposed.stdout).group(1)
    withdrawn = runner.invoke(
        app, ["rules", "withdraw", version, *collaboration, "--profile", "steward-b"]
    )
    again = runner.invoke(
        app, ["rules", "withdraw", version, *collaboration, "--profile", "steward-b"]
    )
    assert proposed.exit_code == 0, proposed.output
    assert withdrawn.exit_code == 0, withdrawn.output
    assert f"version {version}: withdrawn" in withdrawn.stdout
    assert again.exit_code == 1
    assert version in again.stderr


def test_rules_propose_malformed_change(playground):
    outcome = runner.invoke(
        app,
        ["rules", "propose", "min_count", "--reason", "x", "--profile", "steward-a"],
    )
    assert outcome.exit_code == 2
    assert "write RULE=VALUE" in outcome.stderr


def test_rules_propose_typo_suggests_rule(playground):
    outcome = runner.invoke(
        app,
        [
            "rules",
            "propose",
            "max_group_level=30",
            "--reason",
            "fewer cells",
            "--collaboration",
            "waiting-lists",
            "--profile",
            "steward-a",
        ],
    )

    assert outcome.exit_code == 1
    assert "unknown rule 'max_group_level'" in outcome.stderr
    assert "(did you mean 'max_group_levels'?)" in outcome.stderr
    assert "proposed" not in outcome.stdout

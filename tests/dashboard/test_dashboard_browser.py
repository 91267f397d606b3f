"""The stewards' dashboard in headless Chromium, against a real hub and stations.

Each test drives the page as a steward would: it selects, types and clicks,
and reads what the page shows. The hub, the stations and their MPC parties
are real processes on 127.0.0.1.
"""

from __future__ import annotations

import sqlite3
import time

import pandas as pd
import psutil
import pytest
from playwright.sync_api import expect
from typer.testing import CliRunner

import linksight
from linksight.cli import app
from linksight.network import lung_data
from linksight_kernel.client import Client
from linksight_kernel.errors import RequestRejectedError

QUERY = "SELECT count(*) FROM lung GROUP BY sex"
runner = CliRunner()
WAIT_MS = 30_000


def _tab(page, title: str, css: str):
    page.get_by_role("tab", name=title).click()
    return page.locator(f".{css}")


def _select_request(panel, request_id: int) -> None:
    panel.locator("button.ls-refresh-requests").click()
    options = panel.locator(".ls-requests select option")
    expect(options.filter(has_text=f"#{request_id} ")).to_have_count(1, timeout=WAIT_MS)
    label = options.filter(has_text=f"#{request_id} ").inner_text()
    panel.locator(".ls-requests select").select_option(label=label)
    expect(panel.locator(".ls-request-detail")).to_contain_text(
        f"Request {request_id}:", timeout=WAIT_MS
    )


def _refresh_until(panel, button: str, target, text: str, seconds: float) -> str:
    """Click a Refresh button until `target` shows `text`; return what it shows."""
    deadline = time.monotonic() + seconds
    shown = ""
    while time.monotonic() < deadline:
        panel.locator(f"button.{button}").click()
        panel.page.wait_for_timeout(1000)
        shown = target.inner_text()
        if text in shown:
            break
    return shown


def test_approval_in_dashboard_completes(steward_network, open_dashboard):
    with Client() as scientist:
        request = scientist.submit(QUERY, purpose="dashboard approval test")
    page = open_dashboard("steward-a")
    panel = _tab(page, "Approval queue", "ls-tab-approvals")

    _select_request(panel, request.id)
    detail = panel.locator(".ls-request-detail")
    preview = panel.locator(".ls-request-preview")
    expect(detail).to_contain_text("sam asks, in collaboration lung-study")
    expect(detail).to_contain_text("count(*), grouped by sex")
    expect(preview).to_contain_text("2 groups x 1 statistic(s) = 2 figures")
    expect(preview).to_contain_text("min_count: at least 10 persons")
    expect(preview).to_contain_text("sam has 1 request(s) in the last 30 days")
    panel.locator(".ls-reason textarea").fill("within the lung study protocol")
    panel.locator("button.ls-approve").click()
    expect(panel.locator(".ls-message")).to_contain_text(
        f"approved request {request.id}", timeout=WAIT_MS
    )
    for station in steward_network.stations[1:]:
        steward_network.call(
            "POST",
            f"/requests/{request.id}/approve",
            station.steward_token,
            json={"reason": "test approval"},
        )
    shown = _refresh_until(
        panel, "ls-refresh-requests", detail, "completed", seconds=120
    )

    assert f"Request {request.id}: completed" in shown
    assert "Hospital A: approved by steward-a (within the lung study protocol)" in shown
    with Client() as scientist:
        result = scientist.outcome(scientist.request(request.id))
    pooled = lung_data().groupby("sex").size()
    assert result.df["count(*)"].tolist() == pooled.tolist()


def test_collaboration_tab_shows_health(steward_network, open_dashboard):
    page = open_dashboard("steward-a")
    panel = _tab(page, "Collaboration", "ls-tab-collaboration")
    panel.locator("button.ls-refresh-collaboration").click()
    stations = panel.locator(".ls-stations")
    expect(stations).to_contain_text("3 of 3 stations online", timeout=WAIT_MS)
    rows = stations.locator("tbody tr")
    datasets = panel.locator(".ls-datasets")

    expect(rows).to_have_count(3)
    for index, station in enumerate(steward_network.stations):
        cells = rows.nth(index).locator("td").all_inner_texts()
        assert cells[:3] == [station.name, station.organisation, "online"]
        assert cells[5] == linksight.__version__
    expect(datasets).to_contain_text("lung: 10 columns, 3 stations")
    expect(datasets).to_contain_text("ECOG performance score")


def test_rejection_reason_reaches_scientist(steward_network, open_dashboard):
    with Client(profile="kim") as kim:
        request = kim.submit(QUERY, purpose="dashboard rejection test")
    page = open_dashboard("steward-a")
    panel = _tab(page, "Approval queue", "ls-tab-approvals")
    _select_request(panel, request.id)

    panel.locator("button.ls-reject").click()
    expect(panel.locator(".ls-message")).to_contain_text(
        "a rejection needs a reason", timeout=WAIT_MS
    )
    panel.locator(".ls-reason textarea").fill("purpose too broad for this study")
    panel.locator("button.ls-reject").click()
    expect(panel.locator(".ls-message")).to_contain_text(
        f"rejected request {request.id}", timeout=WAIT_MS
    )

    with Client(profile="kim") as kim:
        rejected = kim.request(request.id)
        with pytest.raises(RequestRejectedError) as raised:
            kim.outcome(rejected)
    assert rejected.state == "rejected"
    assert "purpose too broad for this study" in str(raised.value)
    assert "steward-a" in str(raised.value)


def test_rule_change_accepted_by_every_steward(steward_network, open_dashboard):
    page = open_dashboard("steward-a")
    panel = _tab(page, "Rules", "ls-tab-rules")
    panel.locator(".ls-rule select").select_option("min_count")
    panel.locator(".ls-rule-value input").fill("12")
    panel.locator(".ls-rule-reason input").fill("rare diagnoses in the cohort")
    panel.locator("button.ls-propose").click()
    expect(panel.locator(".ls-message")).to_contain_text("proposed", timeout=WAIT_MS)
    proposed = panel.locator(".ls-proposal").inner_text()
    accept_disabled_for_proposer = panel.locator("button.ls-accept").is_disabled()

    other = open_dashboard("steward-b")
    rules = _tab(other, "Rules", "ls-tab-rules")
    rules.locator("button.ls-refresh-rules").click()
    expect(rules.locator(".ls-proposal")).to_contain_text(
        "min_count: 10 -> 12", timeout=WAIT_MS
    )
    rules.locator("button.ls-accept").click()
    expect(rules.locator(".ls-message")).to_contain_text(
        "still awaiting Hospital C", timeout=WAIT_MS
    )
    version = proposed.split("Version ", 1)[1].split(",", 1)[0]
    # The last steward accepts on the command line, which works on the
    # same versions.
    accepted = runner.invoke(
        app, ["rules", "accept", version, "--profile", "steward-c", "-c", "lung-study"]
    )
    panel.locator("button.ls-refresh-rules").click()
    expect(panel.locator(".ls-proposal")).to_contain_text(
        "no open proposal", timeout=WAIT_MS
    )
    in_force = panel.locator(".ls-active-rules").inner_text()
    history = panel.locator(".ls-history").inner_text()

    assert "min_count: 10 -> 12" in proposed
    assert "Awaiting: Hospital B, Hospital C" in proposed
    assert accept_disabled_for_proposer
    assert accepted.exit_code == 0, accepted.output
    assert f"accepted version {version}: active" in accepted.output
    assert "min_count\t12" in in_force
    assert "rare diagnoses in the cohort" in history
    active = [
        version
        for version in steward_network.call(
            "GET",
            f"/collaborations/{steward_network.collaboration}/rules",
            steward_network.admin_token,
        )
        if version["state"] == "active"
    ]
    assert active[0]["rules"]["min_count"] == 12


def test_export_downloads_filtered_csv(steward_network, open_dashboard):
    page = open_dashboard("steward-a")
    panel = _tab(page, "Audit trail", "ls-tab-audit")
    panel.locator("button.ls-refresh-audit").click()
    panel.locator(".ls-audit-user select").select_option("steward-a")
    panel.locator("button.ls-apply-filters").click()
    expect(panel.locator(".ls-message")).to_contain_text("records match")

    panel.locator("button.ls-export").click()
    with page.expect_download(timeout=WAIT_MS) as download:
        panel.locator("a.ls-download-link").click()
    exported = pd.read_csv(download.value.path())

    records = steward_network.call("GET", "/audit", steward_network.admin_token)
    expected = [r["seq"] for r in records if r["user"] == "steward-a"]
    assert download.value.suggested_filename.endswith(".csv")
    assert exported["seq"].tolist() == expected
    assert set(exported["user"]) == {"steward-a"}
    assert {"prev_hash", "hash", "objects"} <= set(exported.columns)


def test_verify_catches_tampered_record(steward_network, open_dashboard):
    page = open_dashboard("steward-a")
    panel = _tab(page, "Audit trail", "ls-tab-audit")
    verification = panel.locator(".ls-verification")
    panel.locator("button.ls-verify").click()
    expect(verification).to_contain_text("hub: intact", timeout=WAIT_MS)
    intact = verification.inner_text()

    database = steward_network.root / "hub" / "hub.db"
    with sqlite3.connect(database) as connection:
        (original,) = connection.execute(
            "SELECT outcome FROM audit_log WHERE seq = 3"
        ).fetchone()
        connection.execute("UPDATE audit_log SET outcome = 'edited' WHERE seq = 3")
    try:
        panel.locator("button.ls-verify").click()
        expect(verification).to_contain_text("BROKEN", timeout=WAIT_MS)
        broken = verification.inner_text()
    finally:
        with sqlite3.connect(database) as connection:
            connection.execute(
                "UPDATE audit_log SET outcome = ? WHERE seq = 3", (original,)
            )

    for station in steward_network.stations:
        assert f"{station.name}: intact" in intact
    assert "hub: BROKEN" in broken
    assert "BROKEN hub: record 3:" in broken
    assert "hub: intact" not in broken


def _kernels(server) -> set[int]:
    pids = set()
    for child in psutil.Process(server.process.pid).children(recursive=True):
        try:
            if "ipykernel_launcher" in " ".join(child.cmdline()):
                pids.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return pids


def test_closed_page_kernel_is_culled(dashboard_server, open_dashboard):
    open_dashboard("steward-a")
    page = open_dashboard("steward-b")
    before = _kernels(dashboard_server)
    page.context.close()

    deadline = time.monotonic() + 60
    left = before
    while time.monotonic() < deadline:
        left = before & _kernels(dashboard_server)
        if len(left) < len(before):
            break
        time.sleep(0.5)

    assert len(before) == 2
    # The culler's pass that stopped the closed page's kernel left the open
    # page's kernel, which is connected.
    assert len(left) == 1


def test_pages_reach_only_loopback(blocked_hosts, open_dashboard):
    policies = open_dashboard.policies

    assert blocked_hosts == []
    # The policy keeps the page from loading anything from other hosts, such
    # as the icon fonts Voila's template links from a CDN.
    for profile, policy in policies.items():
        assert "default-src 'self'" in policy, profile

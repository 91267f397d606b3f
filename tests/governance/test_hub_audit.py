"""The hub's audit log: what it records, and that tampering is detected."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hub_network import COLLABORATION, Network


def database_path(network: Network) -> Path:
    """Return the hub's SQLite file."""
    return network.settings.state_dir / "hub.db"


@pytest.fixture
def audited(network: Network) -> Network:
    """The network after one request was submitted and approved."""
    request_id = network.submit()["id"]
    network.approve_all(request_id)
    return network


def test_audit_chain_verifies(audited: Network) -> None:
    report = audited.ok("GET", "/audit/verify", audited.stewards["Hospital A"])
    assert report["ok"] is True
    assert report["records"] > 10
    assert report["first_bad_seq"] is None


def test_edited_record_detected(audited: Network) -> None:
    with sqlite3.connect(database_path(audited)) as connection:
        connection.execute(
            "UPDATE audit_log SET outcome = 'rejected' WHERE event = 'request.approved'"
        )

    report = audited.ok("GET", "/audit/verify", audited.admin)
    assert report["ok"] is False
    assert "edited" in report["reason"]


def test_deleted_record_detected(audited: Network) -> None:
    with sqlite3.connect(database_path(audited)) as connection:
        connection.execute("DELETE FROM audit_log WHERE seq = 5")

    report = audited.ok("GET", "/audit/verify", audited.admin)
    assert report["ok"] is False
    assert report["first_bad_seq"] == 6
    assert "deleted" in report["reason"]


def test_submission_record_fields(audited: Network) -> None:
    records = audited.ok("GET", "/audit?request_id=1", audited.admin)
    submitted = next(r for r in records if r["event"] == "request.submitted")
    assert submitted["organisation"] == "Research Institute"
    assert submitted["user"] == "sam"
    assert submitted["role"] == "scientist"
    assert submitted["purpose"] == "survival by sex for a grant proposal"
    assert submitted["objects"] == {
        "collaboration": COLLABORATION,
        "dataset": "lung",
        "request": 1,
    }
    assert submitted["outcome"] == "accepted"


def test_state_changes_recorded(audited: Network) -> None:
    records = audited.ok("GET", "/audit?request_id=1", audited.admin)
    changes = [
        (r["details"]["from"], r["details"]["to"])
        for r in records
        if r["event"] == "request.state_changed"
    ]
    assert changes == [
        ("submitted", "awaiting_approval"),
        ("awaiting_approval", "approved"),
    ]
    assert any(r["event"] == "task.issued" for r in records)


def test_denied_approval_recorded(audited: Network) -> None:
    request_id = audited.submit(token=audited.dual)["id"]
    audited.call("POST", f"/requests/{request_id}/approve", audited.dual)

    records = audited.ok("GET", f"/audit?request_id={request_id}", audited.admin)
    denied = records[-1]
    assert denied["event"] == "request.approved"
    assert denied["outcome"] == "own_request"
    assert denied["user"] == "dual"


def test_audit_holds_no_tokens(audited: Network) -> None:
    with sqlite3.connect(database_path(audited)) as connection:
        rows = connection.execute("SELECT * FROM audit_log").fetchall()
    text = json.dumps(rows)
    for token in [audited.admin, audited.scientist, *audited.stations.values()]:
        assert token not in text


def test_scientist_reading_audit_forbidden(audited: Network) -> None:
    response = audited.call("GET", "/audit", audited.scientist)
    assert response.status_code == 403
    assert "admin or steward" in response.json()["detail"]["message"]

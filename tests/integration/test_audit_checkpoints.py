"""Tampering with the real audit files, found by `linksight audit verify`.

A network runs one query while its stations co-sign the hub's chain every
second. Then the stations stop, and each test edits, deletes, reorders or
truncates records in the hub's SQLite file or a station's ledger, runs
`linksight audit verify` against the running hub, and restores the file.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import MetaData, create_engine, update
from typer.testing import CliRunner

from linksight.audit import AuditLog, audit_table, record_hash
from linksight.checkpoints import Checkpoint, sign_checkpoint
from linksight.cli import app
from linksight.network import LocalNetwork, NetworkError
from linksight.signing import load_or_create_private_key
from station.checkpointer import Checkpointer, HubChainRejected, audit_key_path
from station.config import load_config
from station.hub_client import StationHubClient
from station.ledger import StationLedger

runner = CliRunner()


@pytest.fixture(scope="module")
def audited_network(tmp_path_factory) -> Iterator[LocalNetwork]:
    """A network after one query, with every station's checkpoint current."""
    network = LocalNetwork(tmp_path_factory.mktemp("audit-checkpoints"))
    try:
        network.start_hub()
        network.set_up_lung_study()
        for station in network.stations:
            text = station.config_path.read_text()
            station.config_path.write_text(
                text.replace(
                    "poll_seconds = 0.5", "poll_seconds = 0.5\ncheckpoint_seconds = 1"
                )
            )
        network.start_stations()
        request = network.submit("SELECT count(*) FROM lung GROUP BY sex")
        network.approve_all(request["id"])
        final = network.wait_for(request["id"])
        if final["state"] != "completed":
            raise NetworkError(f"the query ended {final['state']}")
        _wait_for_checkpoints(network)
        for station in network.stations:
            network.stop_station(station.name)
        yield network
    finally:
        network.stop()


def _wait_for_checkpoints(network: LocalNetwork, timeout: float = 30.0) -> None:
    """Wait until every station has signed the hub's current chain head."""
    steward = network.stations[0].steward_token
    names = {station.name for station in network.stations}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        head = network.call("GET", "/audit/head", steward)["seq"]
        checkpoints = network.call("GET", "/audit/checkpoints", steward)
        done = {
            c["checkpoint"]["station"]
            for c in checkpoints
            if c["checkpoint"]["hub_seq"] == head
        }
        if done >= names:
            return
        time.sleep(0.3)
    raise NetworkError(f"stations did not co-sign the hub's head in {timeout} s")


def _verify(network: LocalNetwork, *station_configs: Path):
    arguments = ["audit", "verify", "--hub-url", network.hub_url]
    for path in station_configs:
        arguments += ["--station-config", str(path)]
    return runner.invoke(
        app,
        arguments,
        env={"LINKSIGHT_TOKEN": network.stations[0].steward_token},
    )


def _hub_database(network: LocalNetwork) -> Path:
    return network.root / "hub" / "hub.db"


def _station_database(network: LocalNetwork, index: int = 0) -> Path:
    return network.stations[index].config_path.parent / "state" / "station.db"


@pytest.fixture
def restore(tmp_path) -> Iterator[Callable[[Path], None]]:
    """Keep a copy of each database handed in, and put it back afterwards.

    The copy goes back through SQLite's backup API, so the running hub
    keeps a consistent file.
    """
    saved: list[tuple[Path, Path]] = []

    def keep(database: Path) -> None:
        copy = tmp_path / f"pristine-{len(saved)}.db"
        with sqlite3.connect(database) as source, sqlite3.connect(copy) as target:
            source.backup(target)
        saved.append((database, copy))

    yield keep
    for database, copy in saved:
        with sqlite3.connect(copy) as source, sqlite3.connect(database) as target:
            source.backup(target)


def _execute(database: Path, *statements: str) -> None:
    with sqlite3.connect(database) as connection:
        for statement in statements:
            connection.execute(statement)


def _swap(database: Path, first: int, second: int) -> str:
    """Return SQL that swaps two records' content, leaving their numbers."""
    columns = (
        "time, event, organisation, user, role, purpose, objects, outcome, "
        "details, prev_hash, hash"
    )
    return f"""
        UPDATE audit_log SET ({columns}) = (
            SELECT {columns} FROM audit_log AS other
            WHERE other.seq = CASE audit_log.seq WHEN {first} THEN {second}
                                                 ELSE {first} END)
        WHERE seq IN ({first}, {second})
    """


def _rewrite(database: Path, seq: int, outcome: str, drop_after: int | None = None):
    """Change record `seq` and recompute every later hash, as a forger would."""
    engine = create_engine(f"sqlite:///{database}")
    table = audit_table(MetaData())
    log = AuditLog(engine, table)
    with engine.begin() as connection:
        if drop_after is not None:
            connection.execute(table.delete().where(table.c.seq > drop_after))
        records = log.records(connection)
        prev_hash = records[seq - 2]["hash"] if seq > 1 else "0" * 64
        for record in records[seq - 1 :]:
            if record["seq"] == seq:
                record["outcome"] = outcome
            record["prev_hash"] = prev_hash
            record["hash"] = record_hash(prev_hash, record)
            connection.execute(
                update(table)
                .where(table.c.seq == record["seq"])
                .values(
                    outcome=record["outcome"],
                    prev_hash=record["prev_hash"],
                    hash=record["hash"],
                )
            )
            prev_hash = record["hash"]
    engine.dispose()
    return log


def _count(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT max(seq) FROM audit_log").fetchone()[0]


def test_untouched_trail_verifies(audited_network):
    config = audited_network.stations[0].config_path
    outcome = _verify(audited_network, config)
    assert outcome.exit_code == 0, outcome.output
    assert "audit trail intact" in outcome.stdout
    assert "hub: intact" in outcome.stdout
    assert "station-a: intact" in outcome.stdout
    for station in audited_network.stations:
        assert f"{station.name} up to record" in outcome.stdout


def test_hub_edit_detected(audited_network, restore):
    database = _hub_database(audited_network)
    restore(database)
    _execute(database, "UPDATE audit_log SET outcome = 'approved' WHERE seq = 10")
    outcome = _verify(audited_network)
    assert outcome.exit_code == 1
    assert "BROKEN hub: record 10: content does not match its hash" in outcome.stdout


def test_hub_delete_detected(audited_network, restore):
    database = _hub_database(audited_network)
    restore(database)
    _execute(database, "DELETE FROM audit_log WHERE seq = 10")
    outcome = _verify(audited_network)
    assert outcome.exit_code == 1
    assert "BROKEN hub: record 11: expected sequence number 10" in outcome.stdout


def test_hub_reorder_detected(audited_network, restore):
    database = _hub_database(audited_network)
    restore(database)
    _execute(database, _swap(database, 10, 11))
    outcome = _verify(audited_network)
    assert outcome.exit_code == 1
    assert "BROKEN hub: record 10: link to the previous record" in outcome.stdout


def test_hub_truncation_detected(audited_network, restore):
    database = _hub_database(audited_network)
    restore(database)
    last = _count(database)
    _execute(database, f"DELETE FROM audit_log WHERE seq > {last - 5}")
    outcome = _verify(audited_network)
    assert outcome.exit_code == 1
    assert "hub: BROKEN" in outcome.stdout
    assert "truncated" in outcome.stdout
    assert f"the chain ends at record {last - 5}" in outcome.stdout
    # The hash chain alone is intact: only the checkpoints show the loss.
    assert "content does not match" not in outcome.stdout


def test_hub_rewrite_detected_by_checkpoint(audited_network, restore):
    database = _hub_database(audited_network)
    restore(database)
    _rewrite(database, 10, "approved")
    outcome = _verify(audited_network)
    lines = [line for line in outcome.stdout.splitlines() if line.startswith("BROKEN")]
    assert outcome.exit_code == 1
    assert len(lines) == 3  # one per station whose checkpoint it contradicts
    assert any("station-b signed at" in line for line in lines)
    assert all("the history was rewritten" in line for line in lines)
    assert all("records 1 to" in line for line in lines)


def test_hidden_checkpoints_found_at_station(audited_network, restore):
    # The hub truncates its chain and deletes every checkpoint it stored;
    # the station's own copy still shows what it signed.
    database = _hub_database(audited_network)
    restore(database)
    last = _count(database)
    _execute(
        database,
        f"DELETE FROM audit_log WHERE seq > {last - 5}",
        "DELETE FROM audit_checkpoints",
    )
    without_station = _verify(audited_network)
    with_station = _verify(audited_network, audited_network.stations[0].config_path)
    assert without_station.exit_code == 0, without_station.output
    assert with_station.exit_code == 1
    assert "BROKEN hub: record" in with_station.stdout
    assert "station-a signed the hub's chain up to record" in with_station.stdout


def test_station_refuses_rewritten_hub_chain(audited_network, restore, tmp_path):
    database = _hub_database(audited_network)
    restore(database)
    _rewrite(database, 10, "approved")
    # A call with an unknown token appends a record to the rewritten chain.
    rejected = httpx.get(
        f"{audited_network.hub_url}/audit/head",
        headers={"Authorization": "Bearer not-a-token"},
    )
    station = audited_network.stations[0]
    config = load_config(station.config_path)
    copy = tmp_path / "station-state"
    shutil.copytree(config.station.state_dir, copy)
    config.station.state_dir = copy
    ledger = StationLedger(copy)
    hub = StationHubClient(audited_network.hub_url, config.token())
    with pytest.raises(HubChainRejected) as refusal:
        Checkpointer(config, ledger, hub).run()
    hub.close()
    last = ledger.audit.records()[-1]
    assert rejected.status_code == 401
    assert "does not extend record" in str(refusal.value)
    assert "link to the signed head of record" in str(refusal.value)
    assert last["event"] == "hub_chain_rejected"
    assert last["outcome"] == "failure"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("edit", "BROKEN station-a: record 2: content does not match its hash"),
        ("delete", "BROKEN station-a: record 3: expected sequence number 2"),
        ("reorder", "BROKEN station-a: record 2: link to the previous record"),
        ("truncate", "truncated"),
        ("rewrite", "the station's history was rewritten"),
    ],
)
def test_station_tampering_detected(audited_network, restore, kind, expected):
    station = audited_network.stations[0]
    database = _station_database(audited_network)
    restore(database)
    hub_records = audited_network.call(
        "GET", "/audit", audited_network.stations[0].steward_token
    )
    anchored = max(
        r["details"]["station_seq"]
        for r in hub_records
        if r["event"] == "audit.checkpoint_signed" and r["user"] == station.name
    )
    if kind == "edit":
        _execute(database, "UPDATE audit_log SET outcome = 'refused' WHERE seq = 2")
    elif kind == "delete":
        _execute(database, "DELETE FROM audit_log WHERE seq = 2")
    elif kind == "reorder":
        _execute(database, _swap(database, 2, 3))
    elif kind == "truncate":
        _execute(database, f"DELETE FROM audit_log WHERE seq >= {anchored - 1}")
    else:
        _rewrite(database, 2, "refused")
    outcome = _verify(audited_network, station.config_path)
    assert anchored >= 3
    assert outcome.exit_code == 1
    assert "station-a: BROKEN" in outcome.stdout
    assert expected in outcome.stdout
    assert "hub: intact" in outcome.stdout


NEN_7513_FIELDS = (
    "event",
    "time",
    "organisation",
    "user",
    "role",
    "purpose",
    "objects",
    "outcome",
)


def test_records_carry_nen_7513_fields(audited_network):
    steward = audited_network.stations[0].steward_token
    hub_records = audited_network.call("GET", "/audit", steward)
    station_records = StationLedger(
        _station_database(audited_network).parent
    ).audit.records()
    task_records = [r for r in station_records if r["event"].startswith("task_")]
    request_records = [r for r in hub_records if "request" in r["objects"]]
    for record in hub_records + station_records:
        assert set(NEN_7513_FIELDS) <= set(record), record
        # A call without a valid token has no known organisation or role.
        known = ("event", "time", "outcome")
        if record["event"] != "auth.failed":
            known += ("organisation", "role")
        for name in known:
            assert record[name], (name, record)
    assert task_records
    assert request_records
    for record in task_records + request_records:
        assert record["user"], record
        assert record["purpose"], record
        assert record["objects"]["request"], record
        assert record["objects"]["collaboration"] == "lung-study", record
    for record in task_records:
        assert record["user"] == audited_network.scientist
        assert record["role"] == "scientist"
        assert record["organisation"] == "Research Institute"
        assert record["objects"]["station"] == "station-a"
        assert record["objects"]["dataset"] == "lung"


def _unauthorised_call(network: LocalNetwork) -> None:
    """Append one record (auth.failed) to the hub's chain."""
    response = httpx.get(
        f"{network.hub_url}/audit/head",
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert response.status_code == 401


def _restart_stations_without_timer(network: LocalNetwork) -> None:
    """Start the stations again with an hour between their own checkpoints.

    Each signs once at start; after that only a request or a task makes it
    sign again.
    """
    for station in network.stations:
        text = station.config_path.read_text()
        station.config_path.write_text(
            text.replace("checkpoint_seconds = 1", "checkpoint_seconds = 3600")
        )
        network.start_station(station.name)
    # Each station's chain gained station_started, so it signs a new head.
    steward = network.stations[0].steward_token
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        signed = {
            (c["checkpoint"]["station"], c["checkpoint"]["station_seq"])
            for c in network.call("GET", "/audit/checkpoints", steward)
        }
        heads = {
            (s.name, StationLedger(_station_state(s)).audit.head()[0])
            for s in network.stations
        }
        if heads <= signed:
            return
        time.sleep(0.3)
    raise NetworkError("restarted stations did not sign their new heads in 60 s")


def _station_state(station) -> Path:
    return station.config_path.parent / "state"


def test_unsigned_tail_closed_by_request(audited_network):
    _restart_stations_without_timer(audited_network)
    _unauthorised_call(audited_network)
    steward = audited_network.stations[0].steward_token
    head = audited_network.call("GET", "/audit/head", steward)["seq"]
    signed = max(
        c["checkpoint"]["hub_seq"]
        for c in audited_network.call("GET", "/audit/checkpoints", steward)
    )
    before = _verify(audited_network)
    strict = runner.invoke(
        app,
        [
            "audit",
            "verify",
            "--hub-url",
            audited_network.hub_url,
            "--max-unsigned",
            "0",
        ],
        env={"LINKSIGHT_TOKEN": audited_network.stations[0].steward_token},
    )
    requested = runner.invoke(
        app,
        [
            "audit",
            "checkpoint",
            "--hub-url",
            audited_network.hub_url,
            "--timeout",
            "60",
        ],
        env={"LINKSIGHT_TOKEN": audited_network.stations[0].steward_token},
    )
    after = _verify(audited_network)

    assert head - signed >= 1
    assert before.exit_code == 0, before.output
    assert f"unsigned tail: {head - signed} record(s)" in before.stdout
    assert "run `linksight audit checkpoint`" in before.stdout
    assert strict.exit_code == 1
    assert f"UNSIGNED {head - signed} record(s) follow the newest" in strict.stdout
    assert requested.exit_code == 0, requested.output
    assert "co-signed by station-a, station-b, station-c; 0 record(s)" in (
        requested.stdout
    )
    assert after.exit_code == 0, after.output
    assert "unsigned tail: none" in after.stdout


def test_audit_key_rotation(audited_network, restore):
    # Runs after the test above, with the stations running.
    station = audited_network.stations[0]
    steward = station.steward_token
    config = load_config(station.config_path)
    retired_key = load_or_create_private_key(audit_key_path(config.station.state_dir))

    rotated = runner.invoke(
        app, ["station", "rotate-audit-key", "--config", str(station.config_path)]
    )
    rotation = [
        r
        for r in audited_network.call("GET", "/audit", steward)
        if r["event"] == "audit.key_rotated"
    ]
    requested = runner.invoke(
        app,
        ["audit", "checkpoint", "--hub-url", audited_network.hub_url],
        env={"LINKSIGHT_TOKEN": steward},
    )
    across = _verify(audited_network, station.config_path)
    own = StationLedger(config.station.state_dir).audit.records()

    assert rotated.exit_code == 0, rotated.output
    assert "audit key of station-a rotated" in rotated.stdout
    assert len(rotation) == 1
    assert requested.exit_code == 0, requested.output
    assert across.exit_code == 0, across.output
    assert "station-a: intact" in across.stdout
    assert "1 key rotation(s)" in across.stdout
    rotations = [r for r in own if r["event"] == "audit_key_rotated"]
    assert len(rotations) == 1
    assert (
        rotations[0]["details"]["new_public_key"]
        == (rotation[0]["details"]["rotation"]["new_public_key"])
    )

    # A checkpoint signed with the retired key after the rotation: the hub
    # rejects it, and a copy forced into the hub's table fails verification.
    head = audited_network.call("GET", "/audit/head", steward)
    head_seq, head_hash = head["seq"], head["hash"]
    late = sign_checkpoint(
        retired_key,
        Checkpoint(
            station=station.name,
            hub_seq=head_seq,
            hub_hash=head_hash,
            station_seq=own[-1]["seq"],
            station_hash=own[-1]["hash"],
            signed_at="2026-12-31T00:00:00+00:00",
        ),
    )
    posted = httpx.post(
        f"{audited_network.hub_url}/audit/checkpoints",
        headers={"Authorization": f"Bearer {config.token()}"},
        json=late.model_dump(mode="json"),
    )
    database = _hub_database(audited_network)
    restore(database)
    _execute(
        database,
        "INSERT INTO audit_checkpoints (station_id, hub_seq, hub_hash, "
        "station_seq, station_hash, signed_at, signature, public_key, received_at) "
        f"SELECT station_id, {head_seq}, '{head_hash}', {own[-1]['seq']}, "
        f"'{own[-1]['hash']}', '{late.checkpoint.signed_at}', '{late.signature}', "
        f"'{late.public_key}', received_at FROM audit_checkpoints "
        f"WHERE public_key = '{late.public_key}' LIMIT 1",
    )
    forged = _verify(audited_network)

    assert posted.status_code == 409
    assert posted.json()["detail"]["code"] == "key_changed"
    assert forged.exit_code == 1
    assert f"a key retired at record {rotation[0]['seq']}" in forged.stdout

"""What `linksight audit verify` checks, on the auditor's machine.

The hub's chain is read from the hub and verified here, not by the hub: a
hub that rewrote its history would also report it intact. Its records are
compared with the checkpoints the stations signed: the hub's copies and,
with a station's config, the station's own copies under the station's own
key. Each station's chain is compared with the heads of it that the hub
recorded in its chain. See :mod:`linksight.checkpoints` for what each check detects.

Records after the newest checkpoint (the unsigned tail) are counted and
reported: no station has vouched for them yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linksight.audit import verify_chain
from linksight.checkpoints import (
    AuditFinding,
    KeySchedule,
    SignedCheckpoint,
    check_checkpoints,
    check_station_chain,
    key_schedules,
    unsigned_tail,
)
from linksight.signing import (
    SignatureError,
    load_or_create_private_key,
    public_key_text,
)
from station.checkpointer import audit_key_path
from station.config import StationConfig
from station.ledger import StationLedger


@dataclass
class AuditVerification:
    """The findings of one verification, and a summary line per chain."""

    summaries: list[str] = field(default_factory=list)
    findings: list[AuditFinding] = field(default_factory=list)
    # The newest hub record any station co-signed, and the records after it.
    newest_cosigned: int = 0
    unsigned_records: int = 0

    @property
    def ok(self) -> bool:
        """Whether no chain or checkpoint is inconsistent."""
        return not self.findings

    def broken(self, chain: str) -> bool:
        """Return whether any finding concerns `chain`, "hub" or a station's name."""
        return any(finding.chain == chain for finding in self.findings)

    def add(self, findings: list[AuditFinding]) -> None:
        """Add findings, leaving out one already listed."""
        for finding in findings:
            if finding.describe() not in {f.describe() for f in self.findings}:
                self.findings.append(finding)


def verify_audit_trail(
    records: list[dict[str, Any]],
    checkpoints: list[SignedCheckpoint],
    stations: list[StationConfig],
) -> AuditVerification:
    """Verify the hub's `records` and `checkpoints`, and the chains of `stations`."""
    result = AuditVerification()
    report = verify_chain(records)
    if not report.ok:
        result.add([AuditFinding("hub", report.first_bad_seq, None, report.reason)])
    schedules, rotation_findings = key_schedules(records)
    result.add(rotation_findings)
    pinned: dict[str, str] = {}
    for config in stations:
        name = config.station.name
        findings, summary, key = _verify_station(config, records, schedules.get(name))
        result.add(findings)
        result.summaries.append(summary)
        if key is not None:
            pinned[name] = key
    result.add(check_checkpoints(records, checkpoints, pinned))
    signed_up_to: dict[str, int] = {}
    for signed in checkpoints:
        station = signed.checkpoint.station
        signed_up_to[station] = max(
            signed_up_to.get(station, 0), signed.checkpoint.hub_seq
        )
    cosigned = ", ".join(
        f"{station} up to record {seq}" for station, seq in sorted(signed_up_to.items())
    )
    hub_state = "BROKEN" if result.broken("hub") else "intact"
    hub_summary = f"hub: {hub_state}, {len(records)} records"
    if report.ok:
        hub_summary += f", head {report.head[:16]}"
    hub_summary += f"; co-signed by {cosigned or 'no station yet'}"
    result.summaries.insert(0, hub_summary)
    result.newest_cosigned, result.unsigned_records = unsigned_tail(
        records, checkpoints
    )
    if result.unsigned_records:
        last = result.newest_cosigned + result.unsigned_records
        tail = (
            f"unsigned tail: {result.unsigned_records} record(s), "
            f"{result.newest_cosigned + 1} to {last}, follow the newest co-signed "
            f"record {result.newest_cosigned} and rest on the hub alone; run "
            "`linksight audit checkpoint` to have the stations sign them"
        )
    else:
        tail = "unsigned tail: none, every record is co-signed"
    result.summaries.insert(1, tail)
    for index, config in enumerate(stations, start=2):
        name = config.station.name
        state = "BROKEN" if result.broken(name) else "intact"
        result.summaries[index] = f"{name}: {state}, {result.summaries[index]}"
    return result


def _verify_station(
    config: StationConfig,
    hub_records: list[dict[str, Any]],
    schedule: KeySchedule | None,
) -> tuple[list[AuditFinding], str, str | None]:
    name = config.station.name
    state_dir = config.station.state_dir
    database = state_dir / "station.db"
    if not database.exists():
        finding = AuditFinding(
            name,
            None,
            name,
            f"no station database at {database}; run the verification where "
            "the station's state directory is",
        )
        return [finding], "no database", None
    ledger = StationLedger(state_dir)
    own_records = ledger.audit.records()
    findings: list[AuditFinding] = []
    report = verify_chain(own_records)
    if not report.ok:
        findings.append(AuditFinding(name, report.first_bad_seq, name, report.reason))
    anchors = [
        record
        for record in hub_records
        if record["event"] == "audit.checkpoint_signed"
        and record["role"] == "station"
        and record["user"] == name
    ]
    findings += check_station_chain(name, own_records, anchors)
    key_path = audit_key_path(state_dir)
    key: str | None = None
    if key_path.exists():
        try:
            key = public_key_text(load_or_create_private_key(key_path))
        except (SignatureError, ValueError) as error:
            findings.append(
                AuditFinding(name, None, name, f"cannot read {key_path}: {error}")
            )
    own_checkpoints = ledger.checkpoints()
    if key is not None:
        findings += check_checkpoints(hub_records, own_checkpoints, {name: key})
    own_rotations = [
        record["details"]["new_public_key"]
        for record in own_records
        if record["event"] == "audit_key_rotated"
    ]
    hub_rotations = [new for _, new in schedule.rotations] if schedule else []
    if own_rotations != hub_rotations:
        findings.append(
            AuditFinding(
                name,
                None,
                name,
                f"the station's chain records {len(own_rotations)} audit key "
                f"rotation(s) but the hub's chain {len(hub_rotations)}, or with "
                "other keys: a rotation is missing or was forged",
            )
        )
    anchored = f"head anchored in {len(anchors)} hub record(s)"
    summary = (
        f"{len(own_records)} records, {anchored}, "
        f"{len(own_checkpoints)} checkpoint(s) of its own"
    )
    if own_rotations:
        summary += f", {len(own_rotations)} key rotation(s)"
    return findings, summary, key


def load_station_configs(paths: list[Path]) -> list[StationConfig]:
    """Read the station configs named on the command line."""
    from station.config import load_config

    return [load_config(path) for path in paths]

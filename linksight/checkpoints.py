"""Checkpoints of the hub's audit chain, co-signed by the stations.

A hash chain detects an edited, deleted or reordered record, but not the
removal of the newest records (truncation), and whoever holds the whole
chain can rewrite it from any point on and recompute every hash. So the
stations anchor the hub's chain: each station periodically, and after
each task, fetches the hub's chain head (sequence number and hash),
checks that it extends the last head the station signed by rechecking the
records in between, and signs a checkpoint with its own Ed25519 key:

    {"station", "hub_seq", "hub_hash", "station_seq", "station_hash",
     "signed_at"}

The hub keeps the signed checkpoints, and the station keeps its own copy in
its state directory. The checkpoint also carries the station's own chain
head, which the hub writes into its chain, so a station's chain is anchored
at the hub in turn.

A history that the hub alone rewrote or truncated no longer contains a
signed head, and :func:`check_checkpoints` names the record and the station
whose checkpoint it contradicts. Records appended after the newest
checkpoint are anchored by nothing yet (the unsigned tail): the checkpoint
interval bounds that window, and a steward can close it at once by
requesting a checkpoint, which every station signs at its next poll.

A station rotates its audit key by signing a key rotation with both the old
and the new key. The hub writes it into its chain as ``audit.key_rotated``,
and the station into its own. A checkpoint of hub record ``seq`` must then
be signed with the key in force at ``seq``: the old key before the
rotation's record, the new key from it on. A checkpoint signed with a
retired key after its rotation is rejected by the hub and reported by
:func:`check_checkpoints`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, Field

from linksight import signing
from linksight.audit import GENESIS_HASH, ChainReport, record_hash

# Distinguishes a checkpoint signature from any other signature by the same key.
CHECKPOINT_KIND = "linksight.audit-checkpoint.v1"
# The same for a key rotation, signed by the old and the new key.
KEY_ROTATION_KIND = "linksight.audit-key-rotation.v1"

HASH_PATTERN = "^[0-9a-f]{64}$"


class Checkpoint(BaseModel):
    """The chain heads one station signs: the hub's and its own."""

    station: str = Field(min_length=1, max_length=100)
    hub_seq: int = Field(ge=0)
    hub_hash: str = Field(pattern=HASH_PATTERN)
    station_seq: int = Field(ge=0)
    station_hash: str = Field(pattern=HASH_PATTERN)
    signed_at: str = Field(min_length=1, max_length=40)

    def payload(self) -> dict[str, Any]:
        """Return what the station signs: the fields and the checkpoint kind."""
        return {"kind": CHECKPOINT_KIND, **self.model_dump()}


class SignedCheckpoint(BaseModel):
    """A checkpoint with the station's signature and public key (base64)."""

    checkpoint: Checkpoint
    signature: str = Field(min_length=1, max_length=200)
    public_key: str = Field(min_length=1, max_length=100)

    def verify(self, public_key: str | None = None) -> None:
        """Raise SignatureError unless the signature verifies.

        With `public_key`, the signature must verify under that key (one the
        auditor obtained from the station itself); otherwise under the key
        stored with the checkpoint.
        """
        key = signing.parse_public_key(public_key or self.public_key)
        signing.verify(key, self.checkpoint.payload(), self.signature)


def sign_checkpoint(key: Ed25519PrivateKey, checkpoint: Checkpoint) -> SignedCheckpoint:
    """Sign `checkpoint` with a station's Ed25519 key."""
    return SignedCheckpoint(
        checkpoint=checkpoint,
        signature=signing.sign(key, checkpoint.payload()),
        public_key=signing.public_key_text(key),
    )


class KeyRotation(BaseModel):
    """A station's change of its audit signing key, from one public key to another."""

    station: str = Field(min_length=1, max_length=100)
    old_public_key: str = Field(min_length=1, max_length=100)
    new_public_key: str = Field(min_length=1, max_length=100)
    rotated_at: str = Field(min_length=1, max_length=40)

    def payload(self) -> dict[str, Any]:
        """Return what both keys sign: the fields and the rotation kind."""
        return {"kind": KEY_ROTATION_KIND, **self.model_dump()}


class SignedKeyRotation(BaseModel):
    """A key rotation with the signatures of the old and the new key (base64)."""

    rotation: KeyRotation
    old_signature: str = Field(min_length=1, max_length=200)
    new_signature: str = Field(min_length=1, max_length=200)

    def verify(self) -> None:
        """Raise SignatureError unless both keys signed the rotation.

        The old key's signature shows that the holder of the retired key
        handed over; the new key's shows that the new key's holder has it.
        """
        payload = self.rotation.payload()
        if self.rotation.old_public_key == self.rotation.new_public_key:
            raise signing.SignatureError("the new audit key equals the old one")
        for which, key_text, signature in (
            ("old", self.rotation.old_public_key, self.old_signature),
            ("new", self.rotation.new_public_key, self.new_signature),
        ):
            key = signing.parse_public_key(key_text)
            try:
                signing.verify(key, payload, signature)
            except signing.SignatureError:
                raise signing.SignatureError(
                    f"the {which} key's signature does not verify"
                ) from None


def sign_key_rotation(
    station: str, old_key: Ed25519PrivateKey, new_key: Ed25519PrivateKey, at: str
) -> SignedKeyRotation:
    """Sign the rotation from `old_key` to `new_key` with both keys."""
    rotation = KeyRotation(
        station=station,
        old_public_key=signing.public_key_text(old_key),
        new_public_key=signing.public_key_text(new_key),
        rotated_at=at,
    )
    payload = rotation.payload()
    return SignedKeyRotation(
        rotation=rotation,
        old_signature=signing.sign(old_key, payload),
        new_signature=signing.sign(new_key, payload),
    )


@dataclass(frozen=True)
class KeySchedule:
    """A station's audit keys: the first one and each rotation's hub record."""

    station: str
    first_key: str
    # (hub record of the rotation, new public key), oldest first.
    rotations: list[tuple[int, str]]

    def key_at(self, hub_seq: int) -> str:
        """Return the key that must sign a checkpoint of hub record `hub_seq`."""
        key = self.first_key
        for seq, new_key in self.rotations:
            if hub_seq >= seq:
                key = new_key
        return key

    @property
    def current_key(self) -> str:
        """The key in force now, after every rotation."""
        return self.rotations[-1][1] if self.rotations else self.first_key


def key_schedules(
    records: list[dict[str, Any]],
) -> tuple[dict[str, KeySchedule], list[AuditFinding]]:
    """Read every station's key rotations from the hub's `records`.

    Each ``audit.key_rotated`` record must carry a rotation that both keys
    signed and whose old key is the key the previous rotation brought in.
    Returns the schedules of the stations that rotated, and a finding for
    each rotation that fails, which is then left out.
    """
    schedules: dict[str, KeySchedule] = {}
    findings: list[AuditFinding] = []
    for record in records:
        if record.get("event") != "audit.key_rotated":
            continue
        seq = record["seq"]
        try:
            signed = SignedKeyRotation.model_validate(record["details"])
            signed.verify()
        except (ValueError, signing.SignatureError) as error:
            findings.append(
                AuditFinding(
                    "hub",
                    seq,
                    record.get("user"),
                    f"the key rotation does not verify ({error}): forged or altered",
                )
            )
            continue
        rotation = signed.rotation
        station = rotation.station
        schedule = schedules.get(station)
        if schedule is None:
            schedule = KeySchedule(station, rotation.old_public_key, [])
            schedules[station] = schedule
        elif schedule.current_key != rotation.old_public_key:
            findings.append(
                AuditFinding(
                    "hub",
                    seq,
                    station,
                    f"{station}'s key rotation starts from a key other than the "
                    "one its previous rotation brought in",
                )
            )
            continue
        schedule.rotations.append((seq, rotation.new_public_key))
    return schedules, findings


def unsigned_tail(
    records: list[dict[str, Any]], checkpoints: list[SignedCheckpoint]
) -> tuple[int, int]:
    """Return the newest co-signed hub record and how many records follow it.

    Records after the newest checkpoint of any station are covered by no
    station's signature yet, so the hub alone could still drop or change
    them.
    """
    last_seq = records[-1]["seq"] if records else 0
    signed = max((s.checkpoint.hub_seq for s in checkpoints), default=0)
    signed = min(signed, last_seq)
    return signed, last_seq - signed


def verify_extension(
    records: list[dict[str, Any]], after_seq: int, after_hash: str
) -> ChainReport:
    """Check that `records` continue a chain whose record `after_seq` has `after_hash`.

    `records` must be the records numbered after_seq + 1 onwards, oldest
    first. A station calls this before it signs a new head, so that it never
    signs a history that dropped or changed records it signed before.
    """
    prev_hash = after_hash if after_seq else GENESIS_HASH
    for expected_seq, record in enumerate(records, start=after_seq + 1):
        seq = record.get("seq")
        if seq != expected_seq:
            return ChainReport(
                False,
                len(records),
                seq,
                f"expected record {expected_seq} after the checkpoint of record "
                f"{after_seq}: records were deleted or reordered",
            )
        if record.get("prev_hash") != prev_hash:
            linked_record = (
                f"the signed head of record {after_seq}"
                if seq == after_seq + 1
                else "the previous record"
            )
            return ChainReport(
                False,
                len(records),
                seq,
                f"link to {linked_record} does not match: the history up to record "
                f"{seq - 1} was changed",
            )
        if record_hash(prev_hash, record) != record.get("hash"):
            return ChainReport(
                False, len(records), seq, "content does not match its hash: edited"
            )
        prev_hash = record["hash"]
    return ChainReport(True, len(records), head=prev_hash)


@dataclass(frozen=True)
class AuditFinding:
    """One inconsistency: whose chain, which record, which station, and what."""

    chain: str
    seq: int | None
    station: str | None
    message: str

    def describe(self) -> str:
        """Return the finding as one line for people."""
        where = f"record {self.seq}" if self.seq is not None else "chain"
        return f"{self.chain}: {where}: {self.message}"


def check_checkpoints(
    records: list[dict[str, Any]],
    checkpoints: list[SignedCheckpoint],
    pinned_keys: dict[str, str] | None = None,
) -> list[AuditFinding]:
    """Compare the hub's chain `records` with the stations' signed checkpoints.

    Every checkpoint's signature must verify, under the station's key in
    `pinned_keys` where the auditor has one, and the hub's record at the
    checkpoint's sequence number must carry the signed hash. For a station
    that rotated its key, each checkpoint must verify under the key in
    force at its record (see :func:`key_schedules`), and a pinned key must
    be the newest one. Returns one finding per station, for its earliest
    contradicted checkpoint, naming the last checkpoint of that station
    that still matches.
    """
    pinned_keys = pinned_keys or {}
    schedules, _ = key_schedules(records)
    by_seq = {record["seq"]: record for record in records}
    last_seq = records[-1]["seq"] if records else 0
    findings: list[AuditFinding] = []
    stations = sorted({signed.checkpoint.station for signed in checkpoints})
    for station in stations:
        own = sorted(
            (s for s in checkpoints if s.checkpoint.station == station),
            key=lambda s: s.checkpoint.hub_seq,
        )
        keys = {s.public_key for s in own}
        pinned = pinned_keys.get(station)
        schedule = schedules.get(station)
        if schedule is not None:
            finding = _check_rotated(own, schedule, pinned, by_seq, last_seq)
            if finding is not None:
                findings.append(finding)
            continue
        if pinned is None and len(keys) > 1:
            findings.append(
                AuditFinding(
                    "hub",
                    None,
                    station,
                    f"{station}'s checkpoints carry {len(keys)} different public "
                    "keys; verify with the station's own key (--station-config)",
                )
            )
        matched = 0
        for signed in own:
            finding = _check_one(signed, by_seq, last_seq, pinned, matched)
            if finding is not None:
                findings.append(finding)
                break
            matched = signed.checkpoint.hub_seq
    return findings


def _check_rotated(
    own: list[SignedCheckpoint],
    schedule: KeySchedule,
    pinned: str | None,
    by_seq: dict[int, dict[str, Any]],
    last_seq: int,
) -> AuditFinding | None:
    station = schedule.station
    if pinned is not None and pinned != schedule.current_key:
        return AuditFinding(
            "hub",
            None,
            station,
            f"{station}'s own audit key is not the key its newest rotation in "
            "the hub's chain brought in: a rotation is missing or was forged",
        )
    matched = 0
    for signed in own:
        seq = signed.checkpoint.hub_seq
        expected = schedule.key_at(seq)
        if signed.public_key != expected:
            retired = [r for r, _ in schedule.rotations if r <= seq]
            when = f" at record {retired[-1]}" if retired else ""
            return AuditFinding(
                "hub",
                seq,
                station,
                f"the checkpoint {station} is said to have signed at "
                f"{signed.checkpoint.signed_at} carries a key that is not in "
                f"force at record {seq}: signed with a key retired{when}",
            )
        finding = _check_one(signed, by_seq, last_seq, expected, matched)
        if finding is not None:
            return finding
        matched = seq
    return None


def _check_one(
    signed: SignedCheckpoint,
    by_seq: dict[int, dict[str, Any]],
    last_seq: int,
    pinned: str | None,
    matched: int,
) -> AuditFinding | None:
    checkpoint = signed.checkpoint
    station = checkpoint.station
    seq = checkpoint.hub_seq
    try:
        signed.verify(pinned)
    except signing.SignatureError:
        key = "the station's own key" if pinned else "the key stored with it"
        return AuditFinding(
            "hub",
            seq,
            station,
            f"the checkpoint {station} is said to have signed at "
            f"{checkpoint.signed_at} does not verify under {key}: forged or altered",
        )
    if seq == 0:
        return None
    since = (
        f"one of records {matched + 1} to {seq}"
        if matched + 1 < seq
        else f"record {seq}"
    )
    if seq > last_seq:
        return AuditFinding(
            "hub",
            seq,
            station,
            f"{station} signed the hub's chain up to record {seq} at "
            f"{checkpoint.signed_at}, but the chain ends at record {last_seq}: "
            f"truncated, records {last_seq + 1} to {seq} or more were removed",
        )
    record = by_seq.get(seq)
    actual = record["hash"] if record is not None else "no record"
    if actual != checkpoint.hub_hash:
        return AuditFinding(
            "hub",
            seq,
            station,
            f"hash {actual[:16]} differs from {checkpoint.hub_hash[:16]}, which "
            f"{station} signed at {checkpoint.signed_at}: the history was "
            f"rewritten: {since} was changed, deleted or reordered",
        )
    return None


def check_station_chain(
    station: str,
    records: list[dict[str, Any]],
    anchors: list[dict[str, Any]],
) -> list[AuditFinding]:
    """Compare a station's own chain with the heads of it that the hub recorded.

    `anchors` are the hub's ``audit.checkpoint_signed`` records of this
    station, each with ``station_seq`` and ``station_hash`` in its details.
    A station chain that lost records after a recorded head no longer
    contains that head.
    """
    by_seq = {record["seq"]: record for record in records}
    last_seq = records[-1]["seq"] if records else 0
    for anchor in anchors:
        details = anchor["details"]
        seq = int(details["station_seq"])
        if seq == 0:
            continue
        hub_record = anchor["seq"]
        if seq > last_seq:
            return [
                AuditFinding(
                    station,
                    seq,
                    station,
                    f"the hub's record {hub_record} holds this station's head at "
                    f"record {seq}, but its chain ends at record {last_seq}: "
                    f"truncated, records {last_seq + 1} to {seq} or more were removed",
                )
            ]
        record = by_seq.get(seq)
        if record is None or record["hash"] != details["station_hash"]:
            return [
                AuditFinding(
                    station,
                    seq,
                    station,
                    f"record {seq} differs from the head the hub recorded in its "
                    f"record {hub_record}: the station's history was rewritten",
                )
            ]
    return []

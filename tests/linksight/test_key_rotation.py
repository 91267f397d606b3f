"""Audit key rotations and the unsigned tail, read from hub records."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from linksight.checkpoints import (
    Checkpoint,
    SignedCheckpoint,
    key_schedules,
    sign_checkpoint,
    sign_key_rotation,
    unsigned_tail,
)
from linksight.signing import SignatureError, public_key_text

AT = "2026-12-05T00:00:00+00:00"


def _rotation_record(seq: int, signed) -> dict:
    return {
        "seq": seq,
        "event": "audit.key_rotated",
        "user": signed.rotation.station,
        "details": signed.model_dump(mode="json"),
    }


def _checkpoint(key, hub_seq: int) -> SignedCheckpoint:
    return sign_checkpoint(
        key,
        Checkpoint(
            station="station-a",
            hub_seq=hub_seq,
            hub_hash="0" * 64,
            station_seq=1,
            station_hash="0" * 64,
            signed_at=AT,
        ),
    )


def test_rotation_schedule_switches_key():
    first, second, third = (Ed25519PrivateKey.generate() for _ in range(3))
    records = [
        _rotation_record(5, sign_key_rotation("station-a", first, second, AT)),
        _rotation_record(9, sign_key_rotation("station-a", second, third, AT)),
    ]

    schedules, findings = key_schedules(records)
    schedule = schedules["station-a"]

    assert findings == []
    assert schedule.key_at(4) == public_key_text(first)
    assert schedule.key_at(5) == public_key_text(second)
    assert schedule.key_at(8) == public_key_text(second)
    assert schedule.key_at(9) == public_key_text(third)
    assert schedule.current_key == public_key_text(third)


def test_rotation_forged_signature_reported():
    old, new, forger = (Ed25519PrivateKey.generate() for _ in range(3))
    signed = sign_key_rotation("station-a", old, new, AT)
    # Someone without the old key puts a signature by another key in its place.
    forged = sign_key_rotation("station-a", forger, new, AT)
    signed.old_signature = forged.old_signature

    schedules, findings = key_schedules([_rotation_record(7, signed)])

    assert schedules == {}
    assert len(findings) == 1
    assert findings[0].seq == 7
    assert "the old key's signature does not verify" in findings[0].message


def test_rotation_from_other_key_reported():
    first, second, stranger, third = (Ed25519PrivateKey.generate() for _ in range(4))
    records = [
        _rotation_record(5, sign_key_rotation("station-a", first, second, AT)),
        _rotation_record(9, sign_key_rotation("station-a", stranger, third, AT)),
    ]

    schedules, findings = key_schedules(records)

    assert schedules["station-a"].current_key == public_key_text(second)
    assert len(findings) == 1
    assert findings[0].seq == 9
    assert "starts from a key other than" in findings[0].message


def test_rotation_to_same_key_rejected():
    key = Ed25519PrivateKey.generate()
    signed = sign_key_rotation("station-a", key, key, AT)
    with pytest.raises(SignatureError, match="the new audit key equals the old one"):
        signed.verify()


def test_unsigned_tail_counts_after_newest():
    key = Ed25519PrivateKey.generate()
    records = [{"seq": seq} for seq in range(1, 13)]
    checkpoints = [_checkpoint(key, 4), _checkpoint(key, 9)]

    assert unsigned_tail(records, checkpoints) == (9, 3)
    assert unsigned_tail(records, []) == (0, 12)
    assert unsigned_tail([], []) == (0, 0)

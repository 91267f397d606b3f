"""Co-signing checkpoints of the hub's audit chain.

The station fetches the hub's chain head, reads the records between the head
it signed last and the new one, and rechecks their links and hashes
(:func:`linksight.checkpoints.verify_extension`). Only a head that extends
the previous one is signed, with the station's own Ed25519 key in
``state_dir/audit_ed25519.pem``, together with the head of the station's own
chain. The hub stores the signed checkpoint, and the station keeps a copy in
its ledger. A hub whose chain no longer extends the signed head gets no
signature, and the station writes ``hub_chain_rejected`` to its own chain.

:func:`rotate_audit_key` replaces that key: the hub registers the new key,
the old public key stays in both chains for verifying older checkpoints,
and the station writes ``audit_key_rotated`` to its own chain.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from linksight.audit import GENESIS_HASH
from linksight.checkpoints import (
    Checkpoint,
    SignedCheckpoint,
    SignedKeyRotation,
    sign_checkpoint,
    sign_key_rotation,
    verify_extension,
)
from linksight.signing import (
    generate_private_key,
    load_or_create_private_key,
    public_key_text,
)
from station.config import StationConfig
from station.hub_client import HubError, StationHubClient
from station.ledger import StationLedger

logger = logging.getLogger("linksight.station")

KEY_FILE = "audit_ed25519.pem"

# Records fetched per call while checking the hub's chain.
RECORDS_PAGE = 1000


class HubChainRejected(Exception):
    """The hub's chain does not extend the head this station signed before."""


def audit_key_path(state_dir: Path) -> Path:
    """Return where a station keeps the Ed25519 key that signs checkpoints."""
    return state_dir / KEY_FILE


class Checkpointer:
    """Signs checkpoints of the hub's audit chain for one station."""

    def __init__(
        self, config: StationConfig, ledger: StationLedger, hub: StationHubClient
    ):
        self.config = config
        self.ledger = ledger
        self.hub = hub
        self.key_path = audit_key_path(config.station.state_dir)
        load_or_create_private_key(self.key_path)

    def requested(self) -> bool:
        """Return whether a steward requested a checkpoint newer than the last one.

        Returns False when the hub cannot be reached, and the next poll reads
        the request again.
        """
        try:
            requested = self.hub.checkpoint_requested()
        except HubError as error:
            logger.warning("checkpoint request not read: %s", error)
            return False
        last = self.ledger.last_checkpoint()
        return requested > (last.checkpoint.hub_seq if last is not None else 0)

    def run(self) -> SignedCheckpoint | None:
        """Sign and send a checkpoint if either chain head moved.

        Returns the checkpoint sent, or None when nothing changed or the hub
        could not be reached (the next run tries again). Raises
        HubChainRejected when the hub's chain does not extend the last
        signed head.
        """
        try:
            return self._run()
        except HubError as error:
            logger.warning("audit checkpoint not sent: %s", error)
            return None

    def _run(self) -> SignedCheckpoint | None:
        hub_seq, hub_hash = self.hub.audit_head()
        station_seq, station_hash = self.ledger.audit.head()
        last = self.ledger.last_checkpoint()
        if last is not None:
            signed = last.checkpoint
            heads = (hub_seq, hub_hash, station_seq, station_hash)
            if heads == (
                signed.hub_seq,
                signed.hub_hash,
                signed.station_seq,
                signed.station_hash,
            ):
                return None
            after_seq, after_hash = signed.hub_seq, signed.hub_hash
        else:
            after_seq, after_hash = 0, GENESIS_HASH
        self._check_extension(after_seq, after_hash, hub_seq, hub_hash)
        checkpoint = Checkpoint(
            station=self.config.station.name,
            hub_seq=hub_seq,
            hub_hash=hub_hash,
            station_seq=station_seq,
            station_hash=station_hash,
            signed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        # Read on every run, so that a key rotated by the CLI takes effect here.
        key = load_or_create_private_key(self.key_path)
        signed_checkpoint = sign_checkpoint(key, checkpoint)
        self.hub.post_checkpoint(signed_checkpoint)
        self.ledger.record_checkpoint(signed_checkpoint)
        logger.info(
            "audit checkpoint signed: hub record %d, own record %d",
            hub_seq,
            station_seq,
        )
        return signed_checkpoint

    def _check_extension(
        self, after_seq: int, after_hash: str, hub_seq: int, hub_hash: str
    ) -> None:
        if hub_seq < after_seq:
            self._reject(
                f"the hub's chain ends at record {hub_seq}, before record "
                f"{after_seq} that this station signed: the hub's chain was truncated"
            )
        if hub_seq == after_seq and hub_hash != after_hash:
            self._reject(
                f"the hub's chain does not extend record {after_seq} that this "
                "station signed: the hub now reports another hash for it, so its "
                "chain was rewritten"
            )
        records: list[dict] = []
        while after_seq + len(records) < hub_seq:
            page = self.hub.audit_records(
                after_seq + len(records),
                min(RECORDS_PAGE, hub_seq - after_seq - len(records)),
            )
            if not page:
                break
            records.extend(page)
        records = records[: hub_seq - after_seq]
        report = verify_extension(records, after_seq, after_hash)
        if not report.ok:
            self._reject(
                f"the hub's chain does not extend record {after_seq} that this "
                f"station signed: record {report.first_bad_seq}: {report.reason}"
            )
        if len(records) != hub_seq - after_seq or report.head != hub_hash:
            self._reject(
                f"the hub's records {after_seq + 1} to {hub_seq} do not end in "
                "the head it reported"
            )

    def _reject(self, reason: str) -> None:
        logger.error("audit checkpoint not signed, hub chain rejected: %s", reason)
        self.ledger.audit.append(
            "hub_chain_rejected",
            organisation=self.config.station.organisation,
            user=self.config.station.name,
            role="station",
            outcome="failure",
            purpose="audit checkpoint",
            objects={"hub": self.config.station.hub_url},
            details={"reason": reason},
        )
        raise HubChainRejected(reason)


def rotate_audit_key(
    config: StationConfig, ledger: StationLedger, hub: StationHubClient
) -> SignedKeyRotation:
    """Replace this station's audit key with a new one, registered at the hub.

    Both keys sign the rotation, and the hub writes it into its chain. Only
    then does the new key replace the old one in the state directory. The
    old public key is kept beside it as ``audit_ed25519.retired-<time>.pub``,
    and both public keys go into an ``audit_key_rotated`` record of this
    station's chain. Raises HubError, with the old key still in place, when
    the hub rejects the rotation or cannot be reached.
    """
    state_dir = config.station.state_dir
    path = audit_key_path(state_dir)
    if not path.exists():
        raise FileNotFoundError(
            f"no audit key at {path}: the station creates one when it first "
            "starts, so start it once before rotating"
        )
    old_key = load_or_create_private_key(path)
    staged = path.with_name(KEY_FILE + ".new")
    new_key = generate_private_key(staged)
    now = datetime.now(UTC)
    signed = sign_key_rotation(
        config.station.name, old_key, new_key, now.isoformat(timespec="seconds")
    )
    try:
        hub.post_key_rotation(signed)
    except HubError:
        staged.unlink()
        raise
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    retired = state_dir / f"audit_ed25519.retired-{stamp}.pub"
    retired.write_text(public_key_text(old_key) + "\n")
    os.replace(staged, path)
    ledger.audit.append(
        "audit_key_rotated",
        organisation=config.station.organisation,
        user=config.station.name,
        role="station",
        outcome="success",
        purpose="audit key rotation",
        objects={"hub": config.station.hub_url},
        details={
            "old_public_key": signed.rotation.old_public_key,
            "new_public_key": signed.rotation.new_public_key,
            "rotated_at": signed.rotation.rotated_at,
        },
    )
    logger.info("audit key rotated for station %s", config.station.name)
    return signed

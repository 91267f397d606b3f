"""Co-signing checkpoints of the hub's audit chain.

The station fetches the hub's chain head, reads the records between the head
it signed last and the new one, and rechecks their links and hashes
(:func:`linksight.checkpoints.verify_extension`). Only a head that extends
the previous one is signed, with the station's own Ed25519 key in
``state_dir/audit_ed25519.pem``, together with the head of the station's own
chain. The hub stores the signed checkpoint, and the station keeps a copy in
its ledger. A hub whose chain no longer extends the signed head gets no
signature, and the station writes ``hub_chain_rejected`` to its own chain.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from linksight.audit import GENESIS_HASH
from linksight.checkpoints import (
    Checkpoint,
    SignedCheckpoint,
    sign_checkpoint,
    verify_extension,
)
from linksight.signing import load_or_create_private_key
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
        self.key = load_or_create_private_key(audit_key_path(config.station.state_dir))

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
        signed_checkpoint = sign_checkpoint(self.key, checkpoint)
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

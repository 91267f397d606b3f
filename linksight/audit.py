"""Hash-chained audit logs, one format for the hub and every station.

Each record stores the SHA-256 hash of the previous record's hash and its own
canonical JSON content. Editing, deleting or reordering a record changes a
hash that a later record depends on, so :func:`verify_chain` finds it.

Records carry the NEN 7513 fields: event, time, organisation, user, role,
purpose, the objects touched and the outcome. Details never hold record
values, shares or secrets.

Removing the newest records (truncation) leaves a shorter chain that still
verifies, and whoever holds a chain can rewrite it and recompute every hash.
:mod:`linksight.checkpoints` anchors the chain heads elsewhere to detect both.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)

from linksight.signing import canonical_json

GENESIS_HASH = "0" * 64

HASHED_FIELDS = (
    "seq",
    "time",
    "event",
    "organisation",
    "user",
    "role",
    "purpose",
    "objects",
    "outcome",
    "details",
)


def audit_table(metadata: MetaData, name: str = "audit_log") -> Table:
    """Declare the audit table in `metadata`."""
    return Table(
        name,
        metadata,
        Column("seq", Integer, primary_key=True, autoincrement=False),
        Column("time", String(40), nullable=False),
        Column("event", String(80), nullable=False, index=True),
        Column("organisation", String(200), nullable=False),
        Column("user", String(200), nullable=False),
        Column("role", String(40), nullable=False),
        Column("purpose", Text, nullable=False),
        Column("objects", JSON, nullable=False),
        Column("outcome", String(80), nullable=False),
        Column("details", JSON, nullable=False),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
    )


def record_hash(prev_hash: str, record: dict[str, Any]) -> str:
    """Return the chain hash of `record` after the record whose hash is `prev_hash`."""
    content = {field: record[field] for field in HASHED_FIELDS}
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(canonical_json(content))
    return digest.hexdigest()


@dataclass(frozen=True)
class ChainReport:
    """The outcome of verifying a chain."""

    ok: bool
    records: int
    first_bad_seq: int | None = None
    reason: str = ""
    head: str = GENESIS_HASH

    def describe(self) -> str:
        """Return a one-line summary for people."""
        if self.ok:
            return f"chain intact: {self.records} records, head {self.head[:16]}"
        return f"chain broken at record {self.first_bad_seq}: {self.reason}"


def verify_chain(records: list[dict[str, Any]]) -> ChainReport:
    """Check sequence numbers, links and hashes of `records`, oldest first."""
    prev_hash = GENESIS_HASH
    for expected_seq, record in enumerate(records, start=1):
        seq = record["seq"]
        if seq != expected_seq:
            return ChainReport(
                False,
                len(records),
                seq,
                f"expected sequence number {expected_seq}: a record was deleted "
                "or reordered",
            )
        if record["prev_hash"] != prev_hash:
            return ChainReport(
                False,
                len(records),
                seq,
                "link to the previous record does not match: a record before it "
                "was changed, deleted or reordered",
            )
        if record_hash(prev_hash, record) != record["hash"]:
            return ChainReport(
                False, len(records), seq, "content does not match its hash: edited"
            )
        prev_hash = record["hash"]
    return ChainReport(True, len(records), head=prev_hash)


class AuditLog:
    """An append-only, hash-chained audit table in a SQLAlchemy database."""

    def __init__(self, engine: Engine, table: Table):
        self.engine = engine
        self.table = table
        self._lock = threading.Lock()

    def append(
        self,
        event: str,
        *,
        organisation: str,
        user: str,
        role: str,
        outcome: str,
        purpose: str = "",
        objects: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
        connection: Connection | None = None,
    ) -> dict[str, Any]:
        """Append one record and return it with its sequence number and hash.

        With `connection`, the record is written in that connection's open
        transaction, so it commits or rolls back with the change it records.
        The caller must then hold the database's write lock for the whole
        transaction (on SQLite, BEGIN IMMEDIATE), because two writers that
        read the same last record would both claim the next sequence number.
        Without `connection`, the record is committed at once.
        """
        content: dict[str, Any] = {
            "event": event,
            "organisation": organisation,
            "user": user,
            "role": role,
            "purpose": purpose,
            "objects": objects or {},
            "outcome": outcome,
            "details": details or {},
        }
        with self._lock:
            if connection is not None:
                return self._insert(connection, content)
            with self.engine.begin() as own_connection:
                return self._insert(own_connection, content)

    def _insert(
        self, connection: Connection, content: dict[str, Any]
    ) -> dict[str, Any]:
        last = connection.execute(
            select(self.table.c.seq, self.table.c.hash)
            .order_by(self.table.c.seq.desc())
            .limit(1)
        ).first()
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        record: dict[str, Any] = {
            "seq": seq,
            "time": datetime.now(UTC).isoformat(timespec="microseconds"),
            **content,
        }
        record["prev_hash"] = prev_hash
        record["hash"] = record_hash(prev_hash, record)
        connection.execute(insert(self.table).values(**record))
        return record

    def records(self, connection: Connection | None = None) -> list[dict[str, Any]]:
        """Return every record, oldest first, read through `connection` if given."""
        if connection is not None:
            return self._select_all(connection)
        with self.engine.connect() as own_connection:
            return self._select_all(own_connection)

    def _select_all(self, connection: Connection) -> list[dict[str, Any]]:
        rows = connection.execute(select(self.table).order_by(self.table.c.seq))
        return [dict(row._mapping) for row in rows]

    def records_after(
        self, seq: int, limit: int, connection: Connection | None = None
    ) -> list[dict[str, Any]]:
        """Return at most `limit` records numbered above `seq`, oldest first."""
        query = (
            select(self.table)
            .where(self.table.c.seq > seq)
            .order_by(self.table.c.seq)
            .limit(limit)
        )
        if connection is not None:
            return [dict(row._mapping) for row in connection.execute(query)]
        with self.engine.connect() as own_connection:
            return [dict(row._mapping) for row in own_connection.execute(query)]

    def head(self, connection: Connection | None = None) -> tuple[int, str]:
        """Return the newest record's sequence number and hash (0 and genesis)."""
        query = (
            select(self.table.c.seq, self.table.c.hash)
            .order_by(self.table.c.seq.desc())
            .limit(1)
        )
        if connection is not None:
            row = connection.execute(query).first()
        else:
            with self.engine.connect() as own_connection:
                row = own_connection.execute(query).first()
        return (row[0], row[1]) if row is not None else (0, GENESIS_HASH)

    def verify(self, connection: Connection | None = None) -> ChainReport:
        """Verify the whole chain, read through `connection` if given."""
        return verify_chain(self.records(connection))

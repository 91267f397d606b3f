"""The station's own database: its audit chain, the tasks it has handled, the
figures of the overlap queries it released, and its signed checkpoints of the
hub's audit chain."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    insert,
    select,
    update,
)

from linksight.audit import AuditLog, audit_table
from linksight.checkpoints import Checkpoint, SignedCheckpoint

TERMINAL_STATES = ("completed", "failed", "refused")


class StationLedger:
    """Audit log and task journal in ``state_dir/station.db`` (SQLite).

    The journal makes task handling idempotent: a task the hub delivers again
    after this station finished it is not run twice.
    """

    def __init__(self, state_dir: Path):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(f"sqlite:///{state_dir / 'station.db'}")
        metadata = MetaData()
        self.tasks = Table(
            "tasks",
            metadata,
            Column("task_id", String(64), primary_key=True),
            Column("request_id", String(64), nullable=False),
            Column("state", String(20), nullable=False),
            Column("error", Text, nullable=True),
            # The final event as sent to the hub (JSON), to send again when
            # the hub lists the task after missing the first report.
            Column("report", Text, nullable=True),
            Column("updated_at", String(40), nullable=False),
        )
        # Released overlap figures, for the differencing check of later
        # queries. They were opened to every party and to the scientist, so
        # keeping them here reveals nothing new to this station.
        self.overlap_releases = Table(
            "overlap_releases",
            metadata,
            Column("seq", Integer, primary_key=True, autoincrement=True),
            Column("collaboration", String(100), nullable=False, index=True),
            Column("dataset", String(100), nullable=False),
            Column("request_id", String(64), nullable=False),
            Column("figures", Text, nullable=False),
            Column("released_at", String(40), nullable=False),
        )
        # This station's own copy of the checkpoints it signed, so that an
        # auditor can compare the hub's chain with them even if the hub
        # deleted its copies.
        self.hub_checkpoints = Table(
            "hub_checkpoints",
            metadata,
            Column("seq", Integer, primary_key=True, autoincrement=True),
            Column("checkpoint", Text, nullable=False),
            Column("signature", String(200), nullable=False),
            Column("public_key", String(100), nullable=False),
        )
        self.audit = AuditLog(self.engine, audit_table(metadata))
        metadata.create_all(self.engine)

    def task_state(self, task_id: str) -> str | None:
        """Return this station's state of a task, or None if never seen."""
        with self.engine.connect() as connection:
            return connection.execute(
                select(self.tasks.c.state).where(self.tasks.c.task_id == task_id)
            ).scalar()

    def task_report(self, task_id: str) -> dict[str, Any] | None:
        """Return the final event this station reported for a task, if any."""
        with self.engine.connect() as connection:
            report = connection.execute(
                select(self.tasks.c.report).where(self.tasks.c.task_id == task_id)
            ).scalar()
        return json.loads(report) if report else None

    def set_task_state(
        self,
        task_id: str,
        request_id: str,
        state: str,
        error: str | None = None,
        report: dict[str, Any] | None = None,
    ) -> None:
        """Record a task's state at this station, with its final report if any."""
        now = datetime.now(UTC).isoformat()
        report_text = json.dumps(report) if report is not None else None
        with self.engine.begin() as connection:
            exists = connection.execute(
                select(self.tasks.c.task_id).where(self.tasks.c.task_id == task_id)
            ).first()
            if exists:
                connection.execute(
                    update(self.tasks)
                    .where(self.tasks.c.task_id == task_id)
                    .values(
                        state=state, error=error, report=report_text, updated_at=now
                    )
                )
            else:
                connection.execute(
                    insert(self.tasks).values(
                        task_id=task_id,
                        request_id=request_id,
                        state=state,
                        error=error,
                        report=report_text,
                        updated_at=now,
                    )
                )

    def record_overlap_release(
        self,
        collaboration: str,
        dataset: str,
        request_id: str,
        figures: dict[str, int],
    ) -> None:
        """Keep the released figures of an overlap query, by figure key."""
        with self.engine.begin() as connection:
            connection.execute(
                insert(self.overlap_releases).values(
                    collaboration=collaboration,
                    dataset=dataset,
                    request_id=request_id,
                    figures=json.dumps(figures, sort_keys=True),
                    released_at=datetime.now(UTC).isoformat(),
                )
            )

    def overlap_releases_for(
        self, collaboration: str, dataset: str, limit: int
    ) -> list[dict[str, Any]]:
        """Return the newest `limit` released overlap answers, newest first."""
        table = self.overlap_releases
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(table.c.request_id, table.c.figures)
                .where(table.c.collaboration == collaboration)
                .where(table.c.dataset == dataset)
                .order_by(table.c.seq.desc())
                .limit(limit)
            ).all()
        return [
            {"request_id": row.request_id, "figures": json.loads(row.figures)}
            for row in rows
        ]

    def record_checkpoint(self, signed: SignedCheckpoint) -> None:
        """Keep a checkpoint this station signed and the hub accepted."""
        with self.engine.begin() as connection:
            connection.execute(
                insert(self.hub_checkpoints).values(
                    checkpoint=signed.checkpoint.model_dump_json(),
                    signature=signed.signature,
                    public_key=signed.public_key,
                )
            )

    def checkpoints(self) -> list[SignedCheckpoint]:
        """Return the checkpoints this station signed, oldest first."""
        table = self.hub_checkpoints
        with self.engine.connect() as connection:
            rows = connection.execute(select(table).order_by(table.c.seq)).all()
        return [
            SignedCheckpoint(
                checkpoint=Checkpoint.model_validate_json(row.checkpoint),
                signature=row.signature,
                public_key=row.public_key,
            )
            for row in rows
        ]

    def last_checkpoint(self) -> SignedCheckpoint | None:
        """Return the newest checkpoint this station signed, if any."""
        checkpoints = self.checkpoints()
        return checkpoints[-1] if checkpoints else None

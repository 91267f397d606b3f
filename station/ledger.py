"""The station's own database: its audit chain and the tasks it has handled."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Column,
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
            Column("updated_at", String(40), nullable=False),
        )
        self.audit = AuditLog(self.engine, audit_table(metadata))
        metadata.create_all(self.engine)

    def task_state(self, task_id: str) -> str | None:
        """Return this station's state of a task, or None if never seen."""
        with self.engine.connect() as connection:
            return connection.execute(
                select(self.tasks.c.state).where(self.tasks.c.task_id == task_id)
            ).scalar()

    def set_task_state(
        self, task_id: str, request_id: str, state: str, error: str | None = None
    ) -> None:
        """Record a task's state at this station."""
        now = datetime.now(UTC).isoformat()
        with self.engine.begin() as connection:
            exists = connection.execute(
                select(self.tasks.c.task_id).where(self.tasks.c.task_id == task_id)
            ).first()
            if exists:
                connection.execute(
                    update(self.tasks)
                    .where(self.tasks.c.task_id == task_id)
                    .values(state=state, error=error, updated_at=now)
                )
            else:
                connection.execute(
                    insert(self.tasks).values(
                        task_id=task_id,
                        request_id=request_id,
                        state=state,
                        error=error,
                        updated_at=now,
                    )
                )

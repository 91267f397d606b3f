"""The hub's database connection: engine, sessions and the audit log.

SQLite is the default store. Each transaction there starts with
``BEGIN IMMEDIATE``, which takes the database's write lock at once. Two
requests handled in parallel then queue for the lock (for up to
:data:`SQLITE_BUSY_TIMEOUT_SECONDS`) instead of failing with "database is
locked" when both try to upgrade a read to a write. It also makes reading
the last audit record and appending the next one a single step.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, inspect, make_url, select
from sqlalchemy.orm import Session, sessionmaker

from governance.models import AUDIT_TABLE, Base, User
from linksight.audit import AuditLog

SQLITE_BUSY_TIMEOUT_SECONDS = 30.0


def create_hub_engine(database_url: str) -> Engine:
    """Create the engine for `database_url`, preparing SQLite as the hub needs.

    For a SQLite file, the parent directory is created, foreign keys are
    enforced and every transaction begins with BEGIN IMMEDIATE.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        # NOTE: only SQLite transactions are serialised here. On PostgreSQL,
        # two hub workers appending audit records at once can claim the same
        # sequence number, and the second fails with an IntegrityError (500).
        # Locking the audit table at the start of each write would fix it.
        return create_engine(url, pool_pre_ping=True)

    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={
            "check_same_thread": False,
            "timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
        },
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself instead of the sqlite3 module,
        # which would begin a deferred transaction.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys = ON")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def sqlite_file(database_url: str) -> Path | None:
    """Return the file of a SQLite database URL, or None for another database.

    An in-memory SQLite database has no file either.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def describe_url(database_url: str) -> str:
    """Return `database_url` with any password masked, for logs."""
    return make_url(database_url).render_as_string(hide_password=True)


class Database:
    """The engine, a session factory and the audit log of one hub."""

    def __init__(self, database_url: str):
        self.url = database_url
        self.engine = create_hub_engine(database_url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.audit_log = AuditLog(self.engine, AUDIT_TABLE)

    def create_schema(self) -> None:
        """Create every missing table; existing tables are left as they are."""
        Base.metadata.create_all(self.engine)

    def is_initialised(self) -> bool:
        """Return whether the schema exists and contains at least one user."""
        if not inspect(self.engine).has_table(User.__tablename__):
            return False
        with self.sessions() as session:
            count = session.scalar(select(func.count()).select_from(User))
            session.commit()
        return bool(count)

    def session(self) -> Session:
        """Open a new ORM session."""
        return self.sessions()

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

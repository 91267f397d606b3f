"""The hub's relational model (SQLAlchemy 2 ORM).

The hub stores the principals (organisations, users, stations) and what
each collaboration agreed on: members, rules, and the public schemas of the
datasets its stations have. It also stores the life of each request: the
approvals, the signed task, each station's report and the released result.
It never stores a record value, and tokens only as SHA-256 hashes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from linksight.audit import audit_table


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime, stored naive because SQLite drops zones."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"datetime {value} has no time zone; pass UTC times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every hub table; the audit table shares its metadata."""

    type_annotation_map = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


AUDIT_TABLE = audit_table(Base.metadata)

collaboration_members = Table(
    "collaboration_members",
    Base.metadata,
    Column("collaboration_id", ForeignKey("collaborations.id"), primary_key=True),
    Column("organisation_id", ForeignKey("organisations.id"), primary_key=True),
)


class Organisation(Base):
    """A member of the network: a hospital, GP practice, insurer and so on."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class User(Base):
    """A person with one or more roles (admin, steward, scientist)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    roles: Mapped[list[str]]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    organisation: Mapped[Organisation] = relationship()


class ResultKey(Base):
    """A user's X25519 public key, to which stations seal the user's results.

    One key per user; registering again replaces it. The task of a request
    carries the key that was registered when the hub signed the task.
    """

    __tablename__ = "result_keys"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(default=utc_now)


class Station(Base):
    """An organisation's data station, with the MPC endpoint it registered."""

    __tablename__ = "stations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    mpc_host: Mapped[str | None] = mapped_column(String(255))
    mpc_port: Mapped[int | None]
    version: Mapped[str | None] = mapped_column(String(100))
    last_seen: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    organisation: Mapped[Organisation] = relationship()


class ApiToken(Base):
    """A bearer token of one user or one station, stored only as its hash.

    A principal may hold several tokens, so that a new one can be issued
    before the old one is revoked.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User | None] = relationship()
    station: Mapped[Station | None] = relationship()


class Collaboration(Base):
    """Organisations that agreed on rules for querying each other's datasets."""

    __tablename__ = "collaborations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    rules: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    members: Mapped[list[Organisation]] = relationship(
        secondary=collaboration_members, order_by=Organisation.name
    )


class RuleVersion(Base):
    """One version of a collaboration's rules: the first, or a proposed change.

    ``state`` is proposed, active, superseded or withdrawn. A proposal
    becomes active when a steward of every member organisation that has a
    steward has accepted it; the version it replaces becomes superseded.
    """

    __tablename__ = "rule_versions"
    __table_args__ = (UniqueConstraint("collaboration_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    collaboration_id: Mapped[int] = mapped_column(ForeignKey("collaborations.id"))
    version: Mapped[int]
    rules: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    proposed_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    activated_at: Mapped[datetime | None]

    collaboration: Mapped[Collaboration] = relationship()
    acceptances: Mapped[list[RuleAcceptance]] = relationship(
        back_populates="version",
        cascade="all, delete-orphan",
        order_by="RuleAcceptance.id",
    )


class RuleAcceptance(Base):
    """A member organisation's acceptance of a proposed rule version."""

    __tablename__ = "rule_acceptances"
    __table_args__ = (UniqueConstraint("version_id", "organisation_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("rule_versions.id"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    steward: Mapped[str] = mapped_column(String(100))
    accepted_at: Mapped[datetime] = mapped_column(default=utc_now)

    version: Mapped[RuleVersion] = relationship(back_populates="acceptances")
    organisation: Mapped[Organisation] = relationship()


class DatasetRegistration(Base):
    """A station's registration of a dataset it has, with its public schema."""

    __tablename__ = "dataset_registrations"
    __table_args__ = (UniqueConstraint("collaboration_id", "station_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    collaboration_id: Mapped[int] = mapped_column(ForeignKey("collaborations.id"))
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    name: Mapped[str] = mapped_column(String(100))
    schema: Mapped[dict[str, Any]]
    registered_at: Mapped[datetime] = mapped_column(default=utc_now)

    station: Mapped[Station] = relationship()


class QueryRequest(Base):
    """A scientist's query, from submission to its released result.

    ``state`` takes the values of :class:`governance.states.RequestState`.
    """

    __tablename__ = "requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    collaboration_id: Mapped[int] = mapped_column(ForeignKey("collaborations.id"))
    dataset: Mapped[str] = mapped_column(String(100))
    query: Mapped[str] = mapped_column(Text)
    query_spec: Mapped[dict[str, Any]]
    purpose: Mapped[str] = mapped_column(Text)
    submitter_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    state: Mapped[str] = mapped_column(String(40), index=True)
    rejection: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[datetime]
    task_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    signed_task: Mapped[dict[str, Any] | None]
    result: Mapped[dict[str, Any] | None]
    result_audit_seq: Mapped[int | None]

    collaboration: Mapped[Collaboration] = relationship()
    submitter: Mapped[User] = relationship()
    parties: Mapped[list[RequestParty]] = relationship(
        back_populates="request", cascade="all, delete-orphan"
    )
    approvals: Mapped[list[Approval]] = relationship(
        back_populates="request", cascade="all, delete-orphan", order_by="Approval.id"
    )


class RequestParty(Base):
    """A station that has the queried dataset, and what it reported.

    The parties are fixed at submission, so a station that registers the
    dataset later never joins a request its organisation did not approve.
    ``status`` is pending, started, completed, failed or refused.
    """

    __tablename__ = "request_parties"
    __table_args__ = (UniqueConstraint("request_id", "station_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    reported_at: Mapped[datetime | None]

    request: Mapped[QueryRequest] = relationship(back_populates="parties")
    station: Mapped[Station] = relationship()
    progress: Mapped[PartyProgress | None] = relationship(cascade="all, delete-orphan")


class PartyProgress(Base):
    """The last round a station reported during a training run.

    A table of its own, rather than columns of ``request_parties``, so that
    ``create_all`` adds it to an existing hub database.
    """

    __tablename__ = "party_progress"

    party_id: Mapped[int] = mapped_column(
        ForeignKey("request_parties.id"), primary_key=True
    )
    round: Mapped[int]
    rounds: Mapped[int]
    reported_at: Mapped[datetime]


class Approval(Base):
    """One organisation's decision on a request, made by one of its stewards."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("request_id", "organisation_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    steward_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decision: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    time: Mapped[datetime] = mapped_column(default=utc_now)

    request: Mapped[QueryRequest] = relationship(back_populates="approvals")
    organisation: Mapped[Organisation] = relationship()
    steward: Mapped[User] = relationship()

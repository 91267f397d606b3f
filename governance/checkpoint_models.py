"""The table of the stations' signed checkpoints of the hub's audit chain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from governance.models import Base, Station, utc_now


class AuditCheckpoint(Base):
    """A head of the hub's audit chain, signed by one station.

    The station's public key is stored with each checkpoint. The first one
    a station sends is also written into the audit chain, and the hub
    rejects a checkpoint signed with a different key.
    """

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"), index=True)
    hub_seq: Mapped[int]
    hub_hash: Mapped[str] = mapped_column(String(64))
    station_seq: Mapped[int]
    station_hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[str] = mapped_column(String(40))
    signature: Mapped[str] = mapped_column(String(200))
    public_key: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(default=utc_now)

    station: Mapped[Station] = relationship()

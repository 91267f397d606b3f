"""Reading and verifying the hub's audit log, and the stations' checkpoints of it."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from governance.api_models import AuditRecordOut, ChainReportOut
from governance.audit_trail import audited_error, record
from governance.checkpoint_models import AuditCheckpoint
from governance.context import Hub
from governance.dependencies import (
    AuditReaderDep,
    HubDep,
    PrincipalDep,
    RowIdQuery,
    SessionDep,
    StationDep,
    forbidden,
)
from governance.errors import ApiError, error_responses
from governance.models import Station
from governance.principals import Principal
from linksight.audit import GENESIS_HASH
from linksight.checkpoints import Checkpoint, SignedCheckpoint, SignedKeyRotation
from linksight.signing import SignatureError

router = APIRouter(
    prefix="/audit", tags=["audit"], responses=error_responses(401, 403, 429)
)

# Records per page of GET /audit/records.
MAX_RECORDS_PAGE = 1000


class ChainHead(BaseModel):
    """The newest record of the hub's audit chain: 0 and the genesis hash if empty."""

    seq: int
    hash: str
    checkpoint_requested: int = Field(
        default=0,
        description="the record of the newest checkpoint request; a station "
        "whose last checkpoint is older signs the head at once",
    )


def _newest_record_of(
    session: Session, hub: Hub, event: str, user: str | None = None
) -> dict[str, Any] | None:
    """Return the newest audit record of `event` (by `user`), or None."""
    table = hub.database.audit_log.table
    query = select(func.max(table.c.seq)).where(table.c.event == event)
    if user is not None:
        query = query.where(table.c.user == user)
    seq = session.connection().execute(query).scalar()
    if seq is None:
        return None
    return hub.database.audit_log.records_after(seq - 1, 1, session.connection())[0]


def require_station_or_reader(
    request: Request, principal: PrincipalDep, session: SessionDep, hub: HubDep
) -> Principal:
    """Let through stations, which check the chain before co-signing it,
    and admins and stewards, who audit it."""
    if principal.kind == "station" or principal.roles & {"admin", "steward"}:
        return principal
    message = (
        "this endpoint needs a station, or a user with the admin or steward "
        f"role; {principal.describe()} cannot call it"
    )
    raise forbidden(
        session, hub, request, principal, "station or role admin or steward", message
    )


ChainReaderDep = Annotated[Principal, Depends(require_station_or_reader)]


@router.get("", responses=error_responses(422))
def list_audit_records(
    reader: AuditReaderDep,
    session: SessionDep,
    hub: HubDep,
    request_id: RowIdQuery = None,
) -> list[AuditRecordOut]:
    """List audit records, oldest first, optionally for one request (admin, steward)."""
    records = hub.database.audit_log.records(session.connection())
    if request_id is not None:
        records = [r for r in records if r["objects"].get("request") == request_id]
    return [AuditRecordOut.model_validate(r) for r in records]


@router.get("/verify")
def verify_audit_chain(
    reader: AuditReaderDep, session: SessionDep, hub: HubDep
) -> ChainReportOut:
    """Check every record's hash and link (admin, steward).

    An edited, deleted or reordered record makes ``ok`` false and names the
    first record affected. Truncation and a consistently rewritten chain
    are found only against the stations' checkpoints, which
    ``linksight audit verify`` checks on the auditor's machine.
    """
    report = hub.database.audit_log.verify(session.connection())
    return ChainReportOut(**dataclasses.asdict(report))


@router.get("/head")
def chain_head(reader: ChainReaderDep, session: SessionDep, hub: HubDep) -> ChainHead:
    """Return the sequence number and hash of the newest record (station, admin,
    steward)."""
    seq, head = hub.database.audit_log.head(session.connection())
    requested = _newest_record_of(session, hub, "audit.checkpoint_requested")
    return ChainHead(
        seq=seq,
        hash=head,
        checkpoint_requested=requested["seq"] if requested is not None else 0,
    )


@router.post("/checkpoint-requests", status_code=status.HTTP_201_CREATED)
def request_checkpoint(
    reader: AuditReaderDep, session: SessionDep, hub: HubDep
) -> ChainHead:
    """Ask every station to co-sign the hub's chain at its next poll (admin, steward).

    Writes ``audit.checkpoint_requested`` into the chain and returns that
    record as the head. Once every station has signed a checkpoint of this
    record or a later one, no record up to it rests on the hub alone.
    """
    appended = record(
        session, hub, "audit.checkpoint_requested", reader.as_actor(), "requested"
    )
    return ChainHead(
        seq=appended["seq"],
        hash=appended["hash"],
        checkpoint_requested=appended["seq"],
    )


@router.post(
    "/key-rotations",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(409, 422),
)
def rotate_key(
    body: SignedKeyRotation, principal: StationDep, session: SessionDep, hub: HubDep
) -> SignedKeyRotation:
    """Replace the calling station's audit signing key (station).

    Both the old and the new key must sign the rotation, and the old key
    must be the one the station signs checkpoints with now. The hub writes
    the rotation into its chain as ``audit.key_rotated``, so that verifiers
    check older checkpoints under the old key and newer ones under the new
    key. From then on a checkpoint signed with the old key is rejected.
    """
    rotation = body.rotation
    station = session.get_one(Station, principal.id)
    if rotation.station != station.name:
        raise _rejected(
            session,
            hub,
            principal,
            422,
            "invalid_key_rotation",
            f"the key rotation names station {rotation.station!r}, but the token "
            f"is station {station.name!r}'s; rotate your own key",
        )
    try:
        body.verify()
    except SignatureError as error:
        raise _rejected(
            session,
            hub,
            principal,
            422,
            "invalid_signature",
            f"the key rotation does not verify: {error}; sign it with both the "
            "old and the new key",
        ) from None
    current = _current_key(session, hub, station)
    if current is not None and rotation.old_public_key != current:
        raise _rejected(
            session,
            hub,
            principal,
            409,
            "key_mismatch",
            "the rotation's old key is not the key this station signs "
            "checkpoints with now; rotate from the current key in the state "
            "directory",
        )
    record(
        session,
        hub,
        "audit.key_rotated",
        principal.as_actor(),
        "stored",
        details=body.model_dump(mode="json"),
    )
    return body


def _current_key(session: Session, hub: Hub, station: Station) -> str | None:
    """Return the audit key `station` must sign with now, or None before any."""
    rotated = _newest_record_of(session, hub, "audit.key_rotated", station.name)
    if rotated is not None:
        return str(rotated["details"]["rotation"]["new_public_key"])
    newest = session.scalars(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.station_id == station.id)
        .order_by(AuditCheckpoint.id.desc())
        .limit(1)
    ).first()
    return newest.public_key if newest is not None else None


@router.get("/records", responses=error_responses(422))
def audit_records_after(
    reader: ChainReaderDep,
    session: SessionDep,
    hub: HubDep,
    after_seq: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_RECORDS_PAGE)] = MAX_RECORDS_PAGE,
) -> list[AuditRecordOut]:
    """List up to `limit` records numbered above `after_seq`, oldest first
    (station, admin, steward).

    Stations read the records between the head they last signed and the
    current head, and recheck their hashes before signing a checkpoint.
    """
    records = hub.database.audit_log.records_after(
        after_seq, limit, session.connection()
    )
    return [AuditRecordOut.model_validate(r) for r in records]


@router.get("/checkpoints")
def list_checkpoints(
    reader: AuditReaderDep, session: SessionDep
) -> list[SignedCheckpoint]:
    """List every checkpoint the stations signed, oldest first (admin, steward)."""
    rows = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id))
    return [_signed(row) for row in rows]


@router.post(
    "/checkpoints",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(409, 422),
)
def post_checkpoint(
    body: SignedCheckpoint, principal: StationDep, session: SessionDep, hub: HubDep
) -> SignedCheckpoint:
    """Store a checkpoint of the hub's chain signed by the calling station.

    The hub rejects a checkpoint of a head it does not have, one signed with
    another key than the station's earlier checkpoints, and one whose
    station chain head goes back. When the station's own head changed, or
    on its first checkpoint, the hub writes the head into its chain.
    """
    checkpoint = body.checkpoint
    station = session.get_one(Station, principal.id)
    if checkpoint.station != station.name:
        raise _rejected(
            session,
            hub,
            principal,
            422,
            "invalid_checkpoint",
            f"the checkpoint names station {checkpoint.station!r}, but the token "
            f"is station {station.name!r}'s; sign checkpoints with your own name",
        )
    try:
        body.verify()
    except SignatureError:
        raise _rejected(
            session,
            hub,
            principal,
            422,
            "invalid_signature",
            "the checkpoint's signature does not verify under the public key "
            "sent with it",
        ) from None
    earlier = session.scalars(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.station_id == station.id)
        .order_by(AuditCheckpoint.id.desc())
        .limit(1)
    ).first()
    current = _current_key(session, hub, station)
    problem = _conflict(session, hub, checkpoint, body.public_key, earlier, current)
    if problem is not None:
        raise _rejected(session, hub, principal, 409, *problem)
    session.add(
        AuditCheckpoint(
            station_id=station.id,
            hub_seq=checkpoint.hub_seq,
            hub_hash=checkpoint.hub_hash,
            station_seq=checkpoint.station_seq,
            station_hash=checkpoint.station_hash,
            signed_at=checkpoint.signed_at,
            signature=body.signature,
            public_key=body.public_key,
        )
    )
    station_head = (checkpoint.station_seq, checkpoint.station_hash)
    if earlier is None or station_head != (earlier.station_seq, earlier.station_hash):
        details = checkpoint.model_dump()
        if earlier is None:
            details["public_key"] = body.public_key
        record(
            session,
            hub,
            "audit.checkpoint_signed",
            principal.as_actor(),
            "stored",
            details=details,
        )
    return body


def _conflict(
    session: Session,
    hub: Hub,
    checkpoint: Checkpoint,
    public_key: str,
    earlier: AuditCheckpoint | None,
    current_key: str | None,
) -> tuple[str, str] | None:
    log = hub.database.audit_log
    head_seq, _ = log.head(session.connection())
    if checkpoint.hub_seq > head_seq:
        return (
            "checkpoint_mismatch",
            f"the checkpoint signs record {checkpoint.hub_seq}, but the hub's "
            f"chain ends at record {head_seq}",
        )
    if checkpoint.hub_seq == 0:
        actual = GENESIS_HASH
    else:
        actual = log.records_after(checkpoint.hub_seq - 1, 1, session.connection())[0][
            "hash"
        ]
    if actual != checkpoint.hub_hash:
        return (
            "checkpoint_mismatch",
            f"the checkpoint's hash of record {checkpoint.hub_seq} differs from "
            "the hub's; fetch the head again from GET /audit/head",
        )
    if current_key is not None and public_key != current_key:
        return (
            "key_changed",
            "the checkpoint is signed with another key than the one this "
            "station signs with now (a retired key, or a new key without a "
            "rotation); run `linksight station rotate-audit-key` to change keys",
        )
    if earlier is None:
        return None
    if checkpoint.hub_seq < earlier.hub_seq:
        return (
            "checkpoint_mismatch",
            f"the checkpoint signs record {checkpoint.hub_seq}, older than record "
            f"{earlier.hub_seq} that this station signed before",
        )
    if checkpoint.station_seq < earlier.station_seq or (
        checkpoint.station_seq == earlier.station_seq
        and checkpoint.station_hash != earlier.station_hash
    ):
        return (
            "station_chain_changed",
            f"the station's own chain head is record {checkpoint.station_seq}, "
            f"but it was record {earlier.station_seq} with another hash in its "
            "previous checkpoint: the station's chain lost or changed records",
        )
    return None


def _rejected(
    session: Session,
    hub: Hub,
    principal: Principal,
    status_code: int,
    code: str,
    message: str,
) -> ApiError:
    return audited_error(
        session,
        hub,
        ApiError(status_code, code, message),
        "audit.checkpoint_rejected",
        principal.as_actor(),
    )


def _signed(row: AuditCheckpoint) -> SignedCheckpoint:
    return SignedCheckpoint(
        checkpoint=Checkpoint(
            station=row.station.name,
            hub_seq=row.hub_seq,
            hub_hash=row.hub_hash,
            station_seq=row.station_seq,
            station_hash=row.station_hash,
            signed_at=row.signed_at,
        ),
        signature=row.signature,
        public_key=row.public_key,
    )

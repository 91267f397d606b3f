"""Reading and verifying the hub's audit log."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter

from governance.api_models import AuditRecordOut, ChainReportOut
from governance.dependencies import AuditReaderDep, HubDep, RowIdQuery, SessionDep
from governance.errors import error_responses

router = APIRouter(
    prefix="/audit", tags=["audit"], responses=error_responses(401, 403, 429)
)


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
    first record affected. Removing the newest records is not detected.
    """
    report = hub.database.audit_log.verify(session.connection())
    return ChainReportOut(**dataclasses.asdict(report))

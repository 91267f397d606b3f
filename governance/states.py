"""The states of a request and the events a station reports on its task.

A request starts ``submitted``. The rule check makes it ``rejected`` or
``awaiting_approval``, or ``approved`` at once where the collaboration needs
no approval. The stewards make it ``approved`` or ``rejected``. The first
station to start makes it ``running``, and the stations' reports make it
``completed``, ``failed`` or ``blocked_by_disclosure_control``. A request
that waits or is approved but not yet started can be ``revoked``, or becomes
``expired`` after its deadline.
"""

from __future__ import annotations

from enum import StrEnum


class RequestState(StrEnum):
    """The state of a request."""

    SUBMITTED = "submitted"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    BLOCKED_BY_DISCLOSURE_CONTROL = "blocked_by_disclosure_control"
    REJECTED = "rejected"
    REVOKED = "revoked"
    EXPIRED = "expired"


# States in which the approval deadline applies and revoking is allowed.
NOT_STARTED = frozenset({RequestState.AWAITING_APPROVAL, RequestState.APPROVED})

# States in which stations fetch the task and report on it.
ACTIVE = frozenset({RequestState.APPROVED, RequestState.RUNNING})

# States whose result can be read.
FINISHED_WITH_RESULT = frozenset(
    {RequestState.COMPLETED, RequestState.BLOCKED_BY_DISCLOSURE_CONTROL}
)


class PartyStatus(StrEnum):
    """The last report of one station on its task."""

    PENDING = "pending"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    REFUSED = "refused"


# A station that reported one of these has nothing more to say on the task.
FINAL_PARTY_STATUSES = frozenset(
    {PartyStatus.COMPLETED, PartyStatus.FAILED, PartyStatus.REFUSED}
)

"""Bodies of the REST API's requests and responses (Pydantic models).

Request bodies reject unknown fields, so a mistyped field name is an error
instead of being silently ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from governance.principals import PrincipalKind, Role
from governance.states import PartyStatus, RequestState
from linksight.rules import CollaborationRules
from linksight.schema import DatasetSchema

# Names of users, stations and collaborations: they appear in URLs and logs.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$"

# Organisation names are free text, such as "Amsterdam UMC", without
# control characters.
ORGANISATION_PATTERN = r"^[^\x00-\x1f\x7f]{1,200}$"


class RequestBody(BaseModel):
    """Base of request bodies: unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Health(BaseModel):
    """Liveness of the hub and its version."""

    status: Literal["ok"]
    version: str


class PublicKey(BaseModel):
    """The hub's Ed25519 public key, raw 32 bytes in base64."""

    public_key: str


class OrganisationCreate(RequestBody):
    """A new organisation."""

    name: str = Field(pattern=ORGANISATION_PATTERN)


class OrganisationOut(BaseModel):
    """An organisation."""

    name: str
    created_at: datetime


class UserCreate(RequestBody):
    """A new user of an existing organisation."""

    name: str = Field(pattern=IDENTIFIER_PATTERN)
    organisation: str
    roles: list[Role] = Field(min_length=1)


class UserCreated(BaseModel):
    """A user just created, with its token: the only time the token is shown."""

    name: str
    organisation: str
    roles: list[Role]
    token: str


class PrincipalOut(BaseModel):
    """The caller: a user with roles, or a station (with no roles)."""

    name: str
    organisation: str
    roles: list[str]
    kind: PrincipalKind


class StationCreate(RequestBody):
    """A new station of an existing organisation."""

    name: str = Field(pattern=IDENTIFIER_PATTERN)
    organisation: str


class StationCreated(BaseModel):
    """A station just created, with its token: the only time it is shown."""

    name: str
    organisation: str
    token: str


class StationEndpoint(RequestBody):
    """A station's MPC endpoint and software version."""

    mpc_host: str = Field(min_length=1, max_length=255)
    mpc_port: int = Field(gt=0, lt=65536)
    version: str = Field(min_length=1, max_length=100)


class StationOut(BaseModel):
    """A station's registration, as returned to the station itself."""

    name: str
    organisation: str
    mpc_host: str | None
    mpc_port: int | None
    version: str | None
    last_seen: datetime | None


class StationSummary(BaseModel):
    """A station as the members of its collaborations see it."""

    name: str
    organisation: str
    last_seen: datetime | None
    version: str | None = Field(
        default=None, description="the software version it last registered with"
    )


class CollaborationCreate(RequestBody):
    """A new collaboration of existing organisations."""

    name: str = Field(pattern=IDENTIFIER_PATTERN)
    members: list[str] = Field(min_length=1)
    rules: CollaborationRules = Field(default_factory=CollaborationRules)


class CollaborationSummary(BaseModel):
    """A collaboration in a list."""

    name: str
    members: list[str]


class DatasetRegistrationBody(RequestBody):
    """The public schema of a dataset a station holds."""

    model_config = ConfigDict(populate_by_name=True)

    dataset_schema: DatasetSchema = Field(alias="schema")


class DatasetOut(BaseModel):
    """A dataset of a collaboration: its public schema and the stations that have it."""

    model_config = ConfigDict(populate_by_name=True)

    name: str
    dataset_schema: DatasetSchema = Field(serialization_alias="schema")
    stations: list[str]


class CollaborationDetail(BaseModel):
    """A collaboration with its rules, stations and datasets."""

    name: str
    members: list[str]
    rules: CollaborationRules
    stations: list[StationSummary]
    datasets: list[DatasetOut]


class RequestCreate(RequestBody):
    """A query to run in a collaboration, and why."""

    collaboration: str
    query: str = Field(min_length=1, max_length=10_000)
    purpose: str = Field(
        min_length=1,
        max_length=2_000,
        description="why the query is needed; recorded with every audit record",
    )


class BudgetOut(BaseModel):
    """The caller's query budget in a collaboration."""

    collaboration: str
    limit: int | None = Field(description="requests per period; None for no limit")
    period_days: int
    used: int = Field(description="requests counted in the last period_days days")
    remaining: int | None
    next_release: datetime | None = Field(
        description="when the oldest counted request stops counting"
    )


class ApprovalOut(BaseModel):
    """One organisation's decision on a request."""

    organisation: str
    steward: str
    decision: Literal["approved", "rejected"]
    reason: str
    time: datetime


class TrainingProgress(RequestBody):
    """The training round a station's ClientApp last took part in.

    ``round`` runs from 1 to ``rounds``; ``rounds + 1`` is the final
    exchange, which only evaluates the trained model.
    """

    round: int = Field(ge=1, le=51)
    rounds: int = Field(ge=1, le=50)


class PartyOut(BaseModel):
    """A station taking part in a request, and its last report on the task."""

    station: str
    organisation: str
    status: PartyStatus
    reported_at: datetime | None
    progress: TrainingProgress | None = Field(
        default=None,
        description="the round of a training run the station last took part in",
    )


class RequestOut(BaseModel):
    """A request and its current state."""

    id: int
    collaboration: str
    dataset: str
    query: str
    purpose: str
    submitter: str
    submitter_organisation: str
    state: RequestState
    approvals: list[ApprovalOut]
    touched_organisations: list[str]
    rejection: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    task_id: str | None
    parties: list[PartyOut] = Field(
        default_factory=list,
        description="the stations that run the task, by name, with their progress",
    )


class ApproveBody(RequestBody):
    """A steward's approval, optionally with a reason."""

    reason: str = Field(default="", max_length=2_000)


class RejectBody(RequestBody):
    """A steward's rejection; the reason is required and shown to the submitter."""

    reason: str = Field(min_length=1, max_length=2_000)


class RevokeBody(RequestBody):
    """Withdrawal of a request that has not started."""

    reason: str = Field(default="", max_length=2_000)


# An X25519 public key: 32 bytes in standard base64.
RESULT_KEY_PATTERN = r"^[A-Za-z0-9+/]{43}=$"


class ResultKeyBody(RequestBody):
    """A user's X25519 public key, to which stations seal the user's results."""

    public_key: str = Field(
        pattern=RESULT_KEY_PATTERN,
        description="32-byte X25519 public key in standard base64",
    )


class ResultKeyOut(BaseModel):
    """The caller's registered result key."""

    public_key: str
    fingerprint: str = Field(
        description="first 16 hex digits of the SHA-256 of the raw key"
    )
    registered_at: datetime


class CheckOutcome(RequestBody):
    """One disclosure check of a result: its rule and whether it passed."""

    rule: str = Field(max_length=100)
    passed: bool


class SealedResult(RequestBody):
    """A station's result, sealed to the requester's key.

    Only the status, the blocking rule and the checks' outcomes are in the
    clear; the figures are inside ``ciphertext``.
    """

    scheme: Literal["x25519-xsalsa20poly1305-sealedbox"]
    recipient_key: str = Field(pattern=RESULT_KEY_PATTERN)
    status: Literal["released", "blocked"]
    blocked_rule: str | None = Field(default=None, max_length=100)
    checks: list[CheckOutcome] = Field(max_length=10_000)
    ciphertext: str = Field(
        min_length=1,
        max_length=8_000_000,
        pattern=r"^[A-Za-z0-9+/]+={0,2}$",
        description="libsodium sealed box of the result document, base64",
    )


class RelayedResult(BaseModel):
    """A released result as the hub relays it: one ciphertext per station."""

    scheme: str
    recipient_key: str
    status: Literal["released", "blocked"]
    blocked_rule: str | None
    checks: list[CheckOutcome]
    ciphertexts: dict[str, str] = Field(
        description="each station's sealed copy of the same document, by station"
    )


class TaskEventBody(RequestBody):
    """A station's report on its task."""

    event: Literal["started", "progress", "completed", "failed", "refused"]
    result: SealedResult | None = None
    error: str | None = Field(default=None, max_length=4_000)
    # Only with the event "progress", which leaves the station's status as is.
    progress: TrainingProgress | None = None


class TaskStatus(BaseModel):
    """The state of the request behind a task, as stations see it."""

    task_id: str
    request_id: int
    state: RequestState
    error: str | None


class ResultOut(BaseModel):
    """A released result, with the audit record that holds its hash."""

    request_id: int
    state: RequestState
    result: RelayedResult
    audit_seq: int


class AuditRecordOut(BaseModel):
    """One record of the hash-chained audit log."""

    seq: int
    time: str
    event: str
    organisation: str
    user: str
    role: str
    purpose: str
    objects: dict[str, Any]
    outcome: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class ChainReportOut(BaseModel):
    """The outcome of verifying the audit chain."""

    ok: bool
    records: int
    first_bad_seq: int | None
    reason: str
    head: str

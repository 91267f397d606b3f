"""The task a hub sends to stations once a request is approved.

A task is the signed, self-contained instruction to compute: the query, the
parties of the secure computation in order, the disclosure rules in force,
and a deadline. Stations act on nothing that is not in a verified task.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from linksight.query import Filter, QuerySpec
from linksight.result_encryption import ResultKeyError, parse_public_key
from linksight.schema import DatasetSchema


class Party(BaseModel):
    """One MPC party: a station, its organisation and its MPC address."""

    station: str
    organisation: str
    host: str
    port: int = Field(gt=0, lt=65536)


class DisclosureSettings(BaseModel):
    """Disclosure rules in force for a task; stations may be stricter."""

    min_count: int = Field(default=10, ge=1)
    min_residual_df: int = Field(default=10, ge=1)
    max_parameter_fraction: float = Field(default=0.1, gt=0, le=1)
    min_level_count: int = Field(default=10, ge=1)
    dominance_n: int = Field(default=2, ge=1, le=5)
    dominance_k: float = Field(default=0.85, gt=0, le=1)
    p_percent: float = Field(default=0.10, ge=0, lt=1)
    overlapping_filters_window: int = Field(default=10, ge=0, le=30)


class EarlierQuery(BaseModel):
    """A query released earlier on the same dataset, for the differencing check."""

    request_id: str
    where: Filter | None = None
    group_by: list[str] = []


class JoinPlacement(BaseModel):
    """Where the datasets of a vertical join are: one station per dataset.

    Parties named in no entry of `stations` hold no rows of the join and
    take part as helpers. Every station needs every dataset's public schema
    to lay out the columns that all parties secret-share.
    """

    stations: dict[str, str] = Field(description="station name of each dataset")
    schemas: dict[str, DatasetSchema]


class TaskSpec(BaseModel):
    """The payload the hub signs."""

    task_id: str
    request_id: str
    collaboration: str
    query: QuerySpec
    query_text: str
    parties: list[Party] = Field(min_length=3)
    requester: str
    requester_organisation: str
    requester_key: str = Field(
        description="the requester's X25519 public key (base64); stations seal "
        "the result to it"
    )
    purpose: str = ""
    disclosure: DisclosureSettings
    history: list[EarlierQuery] = Field(
        default_factory=list,
        description="aggregate queries released earlier on the same dataset in "
        "the collaboration, newest first, checked against differencing",
    )
    mpc_timeout_seconds: float = Field(default=120.0, gt=0)
    issued_at: str
    join: JoinPlacement | None = Field(
        default=None, description="set when the query joins datasets"
    )

    @field_validator("requester_key")
    @classmethod
    def _check_requester_key(cls, value: str) -> str:
        try:
            parse_public_key(value)
        except ResultKeyError as error:
            raise ValueError(str(error)) from error
        return value


class SignedTask(BaseModel):
    """A task as delivered to stations: the payload and the hub's signature."""

    task: TaskSpec
    signature: str

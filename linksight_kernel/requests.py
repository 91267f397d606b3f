"""A request as the hub reports it: state, approvals and each station's progress."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

# Every state of a request, in the order of its life cycle at the hub.
REQUEST_STATES = (
    "submitted",
    "awaiting_approval",
    "approved",
    "running",
    "completed",
    "failed",
    "blocked_by_disclosure_control",
    "rejected",
    "revoked",
    "expired",
)

# States after which a request never changes again.
FINAL_STATES = frozenset(
    {
        "completed",
        "blocked_by_disclosure_control",
        "failed",
        "rejected",
        "revoked",
        "expired",
    }
)

# Final states that come with a result document.
STATES_WITH_RESULT = frozenset({"completed", "blocked_by_disclosure_control"})


@dataclass(frozen=True)
class Party:
    """A station that computes the request, and its last report."""

    station: str
    organisation: str
    status: str
    # The training round the station last took part in, as (round, rounds).
    progress: tuple[int, int] | None = None

    def describe(self) -> str:
        """Return the status, with the training round while one runs.

        Round rounds + 1 is the final exchange, which only evaluates.
        """
        if self.progress is None or self.status != "started":
            return self.status
        done, rounds = self.progress
        if done > rounds:
            return f"{self.status} (evaluating after {rounds} rounds)"
        return f"{self.status} (round {done} of {rounds})"


@dataclass(frozen=True)
class Approval:
    """One organisation's decision on the request."""

    organisation: str
    steward: str
    decision: str
    reason: str
    time: datetime


@dataclass(frozen=True)
class Request:
    """A query submitted to the hub, in the state the hub last reported."""

    id: int
    collaboration: str
    dataset: str
    query: str
    purpose: str
    submitter: str
    state: str
    approvals: tuple[Approval, ...]
    touched_organisations: tuple[str, ...]
    parties: tuple[Party, ...]
    rejection: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Request:
        """Build a request from the hub's JSON response body."""
        return cls(
            id=body["id"],
            collaboration=body["collaboration"],
            dataset=body["dataset"],
            query=body["query"],
            purpose=body["purpose"],
            submitter=body["submitter"],
            state=body["state"],
            approvals=tuple(
                Approval(
                    organisation=a["organisation"],
                    steward=a["steward"],
                    decision=a["decision"],
                    reason=a["reason"],
                    time=datetime.fromisoformat(a["time"]),
                )
                for a in body.get("approvals", [])
            ),
            touched_organisations=tuple(body.get("touched_organisations", [])),
            parties=tuple(
                Party(
                    p["station"],
                    p["organisation"],
                    p["status"],
                    _progress(p.get("progress")),
                )
                for p in body.get("parties", [])
            ),
            rejection=body.get("rejection"),
            error=body.get("error"),
            created_at=datetime.fromisoformat(body["created_at"]),
            updated_at=datetime.fromisoformat(body["updated_at"]),
            expires_at=datetime.fromisoformat(body["expires_at"]),
        )

    @property
    def finished(self) -> bool:
        """Whether the request is in a final state."""
        return self.state in FINAL_STATES

    @property
    def approved_by(self) -> list[str]:
        """The organisations that approved, in order of approval."""
        return [a.organisation for a in self.approvals if a.decision == "approved"]

    @property
    def stations_finished(self) -> list[str]:
        """The stations that reported completed."""
        return [p.station for p in self.parties if p.status == "completed"]

    def describe(self) -> str:
        """Return one line with the state and what it waits for."""
        approved = len(self.approved_by)
        needed = len(self.touched_organisations)
        finished = len(self.stations_finished)
        if self.state == "awaiting_approval":
            return f"awaiting approval: {approved} of {needed} organisations approved"
        if self.state in ("approved", "running"):
            return f"{self.state}: {finished} of {len(self.parties)} stations finished"
        if self.state == "rejected" and self.rejection:
            return f"rejected by rule {self.rejection.get('rule')}"
        return self.state.replace("_", " ")

    def __str__(self) -> str:
        return f"request {self.id} ({self.collaboration}): {self.describe()}"


def _progress(body: dict[str, Any] | None) -> tuple[int, int] | None:
    if not body:
        return None
    return int(body["round"]), int(body["rounds"])


def _party_status(request: Request, status: str) -> str:
    # A request that ended before its task was issued never reached a station.
    if status == "pending" and request.finished:
        return "not started"
    return status


def organisation_table(request: Request) -> pd.DataFrame:
    """Return one row per organisation: its approval and its stations' status."""
    rows = []
    for organisation in request.touched_organisations:
        decision = next(
            (a for a in request.approvals if a.organisation == organisation), None
        )
        stations = [p for p in request.parties if p.organisation == organisation]
        # A request rejected by a rule at submission reaches no steward.
        if decision:
            state = decision.decision
        elif request.state == "awaiting_approval":
            state = "pending"
        else:
            state = "not asked"
        rows.append(
            {
                "organisation": organisation,
                "decision": state,
                "steward": decision.steward if decision else "",
                "stations": ", ".join(
                    f"{p.station} {_party_status(request, p.status)}" for p in stations
                ),
            }
        )
    return pd.DataFrame(
        rows, columns=["organisation", "decision", "steward", "stations"]
    ).set_index("organisation")

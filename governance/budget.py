"""Query budgets: how many requests a scientist may submit per period.

A collaboration may limit each scientist to ``max_requests`` requests in
any window of ``budget_period_days`` days. Every request counts, except
those the rule check rejected at submission, because those never reached
a steward or a station. A request that would exceed the budget is stored
as ``rejected`` with rule ``query_budget``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.models import Collaboration, QueryRequest, utc_now
from linksight.rules import CollaborationRules, RuleViolation

RULE = "query_budget"


@dataclass(frozen=True)
class Budget:
    """A scientist's use of a collaboration's query budget."""

    limit: int | None
    period_days: int
    used: int
    # When the oldest counted request leaves the window, or None.
    next_release: datetime | None

    @property
    def remaining(self) -> int | None:
        """Requests left in the current window; None without a limit."""
        return None if self.limit is None else max(self.limit - self.used, 0)


def _counts(request: QueryRequest) -> bool:
    rejection = request.rejection or {}
    return request.state != "rejected" or rejection.get("rule") == "steward_rejection"


def budget_of(
    session: Session,
    collaboration: Collaboration,
    submitter_id: int,
    now: datetime | None = None,
) -> Budget:
    """Return how much of its budget a scientist has used in `collaboration`."""
    rules = CollaborationRules.model_validate(collaboration.rules)
    now = now or utc_now()
    since = now - timedelta(days=rules.budget_period_days)
    requests = session.scalars(
        select(QueryRequest)
        .where(QueryRequest.collaboration_id == collaboration.id)
        .where(QueryRequest.submitter_id == submitter_id)
        .where(QueryRequest.created_at > since)
        .order_by(QueryRequest.created_at)
    ).all()
    counted = [request for request in requests if _counts(request)]
    next_release = None
    if counted:
        next_release = counted[0].created_at + timedelta(days=rules.budget_period_days)
    return Budget(
        rules.max_requests, rules.budget_period_days, len(counted), next_release
    )


def check_budget(budget: Budget, collaboration: str) -> RuleViolation | None:
    """Return the budget violation of one more request, or None if it fits."""
    if budget.limit is None or budget.used < budget.limit:
        return None
    when = (
        budget.next_release.isoformat(timespec="seconds") if budget.next_release else ""
    )
    return RuleViolation(
        RULE,
        f"your query budget in collaboration {collaboration!r} is used up: "
        f"{budget.used} of {budget.limit} requests in the last "
        f"{budget.period_days} days; submit again after {when}, or ask the "
        "stewards to raise max_requests",
    )

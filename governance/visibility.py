"""Request visibility by role.

A scientist can read the requests they submitted, a steward those that
query a station of their organisation, and an admin every request. A user
with several roles can read the union.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, false, or_, select
from sqlalchemy.orm import Session

from governance.errors import ApiError
from governance.models import QueryRequest, RequestParty, Station
from governance.principals import Principal


def touched_organisations(request: QueryRequest) -> list[str]:
    """Return the names of the organisations whose stations the request queries."""
    return sorted({party.station.organisation.name for party in request.parties})


def touches(request: QueryRequest, organisation_id: int) -> bool:
    """Return whether `request` queries a station of organisation `organisation_id`."""
    return any(
        party.station.organisation_id == organisation_id for party in request.parties
    )


def can_see(user: Principal, request: QueryRequest) -> bool:
    """Return whether `user` may read `request`."""
    if user.has_role("admin"):
        return True
    if user.has_role("scientist") and request.submitter_id == user.id:
        return True
    return user.has_role("steward") and touches(request, user.organisation_id)


def visible_requests(user: Principal) -> Select[Any]:
    """Return a query for the requests `user` may see, oldest first."""
    query = select(QueryRequest).order_by(QueryRequest.id)
    if user.has_role("admin"):
        return query
    conditions: list[ColumnElement[bool]] = []
    if user.has_role("scientist"):
        conditions.append(QueryRequest.submitter_id == user.id)
    if user.has_role("steward"):
        conditions.append(
            QueryRequest.parties.any(
                RequestParty.station.has(
                    Station.organisation_id == user.organisation_id
                )
            )
        )
    return query.where(or_(*conditions) if conditions else false())


def find_visible_request(
    session: Session, user: Principal, request_id: int
) -> QueryRequest:
    """Return request `request_id` if `user` may see it, else raise 404.

    A request the user may not see gets the same 404 as a missing one, so
    its existence is not revealed.
    """
    request = session.get(QueryRequest, request_id)
    if request is None or not can_see(user, request):
        raise ApiError(
            404,
            "not_found",
            f"request {request_id} not found among the requests you can see; "
            "`linksight status` lists them",
        )
    return request

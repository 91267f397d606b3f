"""Principals: the users and stations that call the hub, found by their token."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.models import ApiToken, utc_now
from governance.tokens import hash_token

Role = Literal["admin", "steward", "scientist"]
ROLES: tuple[Role, ...] = ("admin", "steward", "scientist")

PrincipalKind = Literal["user", "station"]


@dataclass(frozen=True)
class Actor:
    """The actor of an audited action: organisation, user and role."""

    organisation: str
    user: str
    role: str


# The hub itself, for changes no caller made, such as a request expiring.
# Its records name "hub" as the organisation, because the NEN 7513 fields
# of every record are filled and the hub acts for no member organisation.
HUB_ACTOR = Actor(organisation="hub", user="hub", role="system")

# A caller whose token matched no user or station.
ANONYMOUS_ACTOR = Actor(organisation="", user="", role="")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user with roles, or a station."""

    kind: PrincipalKind
    id: int
    name: str
    organisation: str
    organisation_id: int
    roles: frozenset[str] = field(default_factory=frozenset)
    token_id: int | None = None

    def has_role(self, role: Role) -> bool:
        """Return whether this principal is a user with `role`."""
        return self.kind == "user" and role in self.roles

    def as_actor(self, role: str | None = None) -> Actor:
        """Return the audit actor, acting in `role` (a station acts as "station")."""
        if self.kind == "station":
            return Actor(self.organisation, self.name, "station")
        if role is None:
            role = ",".join(sorted(self.roles))
        return Actor(self.organisation, self.name, role)

    def describe(self) -> str:
        """Return "user 'alice'" or "station 'st-a'", for messages."""
        return f"{self.kind} {self.name!r}"


@dataclass(frozen=True)
class AuthResult:
    """The outcome of looking up a token: a principal, or why there is none.

    `reason` is "unknown", "expired" or "revoked" when `principal` is None.
    """

    principal: Principal | None
    reason: str = ""
    token_id: int | None = None
    expired_at: datetime | None = None


def authenticate(session: Session, token: str) -> AuthResult:
    """Look up the user or station whose valid token is `token`."""
    row = session.scalar(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token))
    )
    if row is None:
        return AuthResult(None, "unknown")
    if row.revoked_at is not None:
        return AuthResult(None, "revoked", row.id)
    if row.expires_at is not None and row.expires_at <= utc_now():
        return AuthResult(None, "expired", row.id, expired_at=row.expires_at)
    if row.user is not None:
        user = row.user
        principal = Principal(
            kind="user",
            id=user.id,
            name=user.name,
            organisation=user.organisation.name,
            organisation_id=user.organisation_id,
            roles=frozenset(user.roles),
            token_id=row.id,
        )
    else:
        station = row.station
        if station is None:
            return AuthResult(None, "unknown")
        principal = Principal(
            kind="station",
            id=station.id,
            name=station.name,
            organisation=station.organisation.name,
            organisation_id=station.organisation_id,
            token_id=row.id,
        )
    return AuthResult(principal, token_id=row.id)

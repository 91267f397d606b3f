"""Bearer tokens: generated at random, shown once, stored as SHA-256 hashes.

A token has 256 bits of entropy, so a plain SHA-256 hash (no salt, no slow
key derivation) cannot be reversed by guessing, and the hash itself can be
the indexed lookup key. Tokens expire after a lifetime set per hub, and a
revoked token stops working at once.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from governance.models import ApiToken, Station, User, utc_now

TOKEN_BYTES = 32


def generate_token() -> str:
    """Return a new random token (URL-safe base64 of 32 random bytes)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """Return the hex SHA-256 hash under which `token` is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(
    session: Session,
    *,
    user: User | None = None,
    station: Station | None = None,
    lifetime_days: float | None,
    label: str = "",
    now: datetime | None = None,
) -> tuple[str, ApiToken]:
    """Create a token for `user` or `station`; return it and its stored row.

    `lifetime_days` None means the token never expires. The token itself is
    returned once here and stored nowhere.
    """
    if (user is None) == (station is None):
        raise ValueError("a token belongs to exactly one user or one station")
    now = now or utc_now()
    token = generate_token()
    expires_at = None if lifetime_days is None else now + timedelta(days=lifetime_days)
    row = ApiToken(
        token_hash=hash_token(token),
        user=user,
        station=station,
        label=label,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    return token, row

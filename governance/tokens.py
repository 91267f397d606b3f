"""Bearer tokens: generated at random, shown once, stored as SHA-256 hashes.

A token has 256 bits of entropy, so a plain SHA-256 hash (no salt, no slow
key derivation) cannot be reversed by guessing, and the hash itself can be
the indexed lookup key.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32


def generate_token() -> str:
    """Return a new random token (URL-safe base64 of 32 random bytes)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """Return the hex SHA-256 hash under which `token` is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()

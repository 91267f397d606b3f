"""Ed25519 signatures over canonical JSON, used for tasks the hub approves.

The hub signs every approved task with its private key; each station holds
the hub's public key in its configuration (never fetched from the hub at run
time) and refuses a task whose signature does not verify.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)


class SignatureError(ValueError):
    """A signature that does not verify, or a key that cannot be read."""


def canonical_json(payload: Any) -> bytes:
    """Serialise `payload` with sorted keys and no spaces, so every party
    signs and verifies the same bytes."""
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def generate_private_key(path: Path) -> Ed25519PrivateKey:
    """Create a new Ed25519 key, write it to `path` (mode 0600) and return it."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_bytes(pem)
    return key


def load_or_create_private_key(path: Path) -> Ed25519PrivateKey:
    """Read the Ed25519 key at `path`, creating it first if it does not exist."""
    if not path.exists():
        return generate_private_key(path)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path} holds a key that is not Ed25519")
    return key


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """Return the raw 32-byte public key as base64, the form configs store."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """Read a base64 raw Ed25519 public key, as written by public_key_text."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError) as error:
        raise SignatureError(
            f"invalid Ed25519 public key {text[:12]!r}...: expected 32 bytes in "
            "base64, as printed by `linksight hub public-key`"
        ) from error


def sign(key: Ed25519PrivateKey, payload: Any) -> str:
    """Return the base64 signature of the canonical JSON of `payload`."""
    return base64.b64encode(key.sign(canonical_json(payload))).decode("ascii")


def verify(public_key: Ed25519PublicKey, payload: Any, signature: str) -> None:
    """Raise SignatureError unless `signature` signs `payload` under `public_key`."""
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, canonical_json(payload))
    except (InvalidSignature, ValueError, TypeError) as error:
        raise SignatureError("the task's signature does not verify") from error

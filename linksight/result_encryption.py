"""Results sealed to the requesting scientist's X25519 key.

Each scientist has an X25519 key pair. The client keeps the private key in
a file readable by its owner only and registers the public key with the
hub. The hub copies the requester's public key into the task it signs, so
every station takes the key from a task whose signature it has verified.

A station seals the result document it computed with libsodium's sealed
box (``crypto_box_seal`` through PyNaCl): a fresh ephemeral X25519 key,
key agreement with the recipient's public key, and XSalsa20-Poly1305
authenticated encryption. Only the holder of the scientist's private key
can open it, and any change to the ciphertext makes opening fail. R's
``sodium::simple_decrypt`` opens the same boxes.

The hub relays a :func:`seal_result` envelope per station. Besides the
ciphertext, an envelope carries only what the hub needs for the request's
state and its audit log: released or blocked, the rule that blocked it, and
each disclosure check's rule and pass or fail. Because every seal uses a
new ephemeral key, the stations' ciphertexts differ even for the same
document, so the hub compares only these plain fields, and the client
checks that every station's document is the same (:func:`open_result`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from linksight.signing import canonical_json

SCHEME = "x25519-xsalsa20poly1305-sealedbox"
KEY_BYTES = 32


class ResultKeyError(ValueError):
    """A result key that is missing, malformed or not kept private."""


class ResultDecryptionError(RuntimeError):
    """A relayed result that cannot be opened or whose stations disagree."""


def encode_key(key: PublicKey | PrivateKey) -> str:
    """Return the 32 raw bytes of `key` as standard base64."""
    return base64.b64encode(bytes(key)).decode("ascii")


def parse_public_key(text: str) -> PublicKey:
    """Parse a base64 X25519 public key, as the hub and tasks carry it.

    Raises
    ------
    ResultKeyError
        If `text` is not base64 of exactly 32 bytes.
    """
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ResultKeyError(
            "the result public key is not valid base64; send the 32-byte X25519 "
            "public key in standard base64 (44 characters)"
        ) from error
    if len(raw) != KEY_BYTES:
        raise ResultKeyError(
            f"the result public key has {len(raw)} bytes; an X25519 public key "
            f"has {KEY_BYTES}"
        )
    return PublicKey(raw)


def fingerprint(public_key: PublicKey | str) -> str:
    """Return the first 16 hex digits of the SHA-256 of the raw public key."""
    key = parse_public_key(public_key) if isinstance(public_key, str) else public_key
    return hashlib.sha256(bytes(key)).hexdigest()[:16]


def write_private_key(path: Path, key: PrivateKey) -> None:
    """Write `key` to `path` as one base64 line, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(encode_key(key) + "\n")
    path.chmod(0o600)


def read_private_key(path: Path) -> PrivateKey:
    """Read a private key written by :func:`write_private_key`.

    Raises
    ------
    ResultKeyError
        If other users may read the file, or it does not hold base64 of 32
        bytes.
    """
    mode = path.stat().st_mode
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ResultKeyError(
            f"result key file {path} has mode {stat.filemode(mode)}, so other "
            f"users can read the key that opens your results; run: chmod 600 {path}"
        )
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise ResultKeyError(
            f"result key file {path} does not hold a base64 X25519 private key "
            f"of {KEY_BYTES} bytes; restore it from a backup, or move it away so "
            "that a new key is created (results sealed to the old key are then "
            "lost)"
        )
    return PrivateKey(raw)


def load_or_create_private_key(path: Path) -> tuple[PrivateKey, bool]:
    """Return the key in `path`, creating the file first if it does not exist.

    The second value is True when the key was created now.
    """
    if path.exists():
        return read_private_key(path), False
    key = PrivateKey.generate()
    write_private_key(path, key)
    return key, True


def result_digest(document: dict[str, Any]) -> str:
    """Return the hex SHA-256 of `document` without its ``sha256`` field."""
    content = {k: v for k, v in document.items() if k != "sha256"}
    return hashlib.sha256(canonical_json(content)).hexdigest()


def seal_result(document: dict[str, Any], recipient_key: str) -> dict[str, Any]:
    """Seal a station's result document to `recipient_key`; return the envelope.

    The envelope contains the scheme, the recipient's public key, the
    status, the blocking rule (or None), each check's rule and outcome, and
    the ciphertext of the whole document in base64.
    """
    box = SealedBox(parse_public_key(recipient_key))
    # Key order is kept, not sorted as in canonical JSON, because the order
    # of a cell's grouping columns is part of the result.
    plain = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    blocked = document.get("blocked") or {}
    return {
        "scheme": SCHEME,
        "recipient_key": recipient_key,
        "status": document["status"],
        "blocked_rule": blocked.get("rule"),
        "checks": [
            {"rule": str(c["rule"]), "passed": bool(c["passed"])}
            for c in document.get("checks", [])
        ],
        "ciphertext": base64.b64encode(box.encrypt(plain.encode("utf-8"))).decode(
            "ascii"
        ),
    }


def open_result(
    released: dict[str, Any], private_key: PrivateKey, request_id: int | str
) -> dict[str, Any]:
    """Open every station's ciphertext of a released result; return the document.

    `released` is the hub's ``result`` field: the plain fields of the
    envelopes and ``ciphertexts``, one per station.

    Raises
    ------
    ResultDecryptionError
        If the result was sealed to another key, a ciphertext was altered
        or does not open, the stations' documents differ, or a document
        does not match its own hash or the status the hub relayed.
    """
    mine = encode_key(private_key.public_key)
    sealed_to = released.get("recipient_key")
    if sealed_to != mine:
        raise ResultDecryptionError(
            f"the result of request {request_id} is sealed to the key with "
            f"fingerprint {_describe_key(sealed_to)}, but your result key has "
            f"fingerprint {fingerprint(private_key.public_key)}; open it where "
            "that key is kept (the key registered when the request was approved)"
        )
    ciphertexts = released.get("ciphertexts")
    if not isinstance(ciphertexts, dict) or not ciphertexts:
        raise ResultDecryptionError(
            f"the result of request {request_id} contains no ciphertext; the hub "
            "relayed an incomplete result"
        )
    box = SealedBox(private_key)
    documents: dict[str, dict[str, Any]] = {}
    for station, text in sorted(ciphertexts.items()):
        try:
            plain = box.decrypt(base64.b64decode(str(text), validate=True))
        except (CryptoError, binascii.Error, ValueError) as error:
            raise ResultDecryptionError(
                f"the result of request {request_id} from station {station} failed "
                "authentication when opened with your result key: its ciphertext "
                "was altered after the station sealed it; nothing of it is shown. "
                "Report this to the hub's operator"
            ) from error
        documents[station] = json.loads(plain)
    first_station, document = next(iter(documents.items()))
    for station, other in documents.items():
        if other != document:
            raise ResultDecryptionError(
                f"the result of request {request_id} differs between stations "
                f"{first_station} and {station}; a station misbehaved or its run "
                "went wrong, so neither is shown"
            )
    if "sha256" in document and document["sha256"] != result_digest(document):
        raise ResultDecryptionError(
            f"the result of request {request_id} does not match its own SHA-256 "
            f"{document['sha256']}; it was built wrongly at the stations"
        )
    if document.get("status") != released.get("status"):
        raise ResultDecryptionError(
            f"the result of request {request_id} is {document.get('status')!r} "
            f"inside its ciphertext but {released.get('status')!r} at the hub"
        )
    return document


def _describe_key(text: Any) -> str:
    try:
        return fingerprint(str(text))
    except ResultKeyError:
        return f"(invalid key {str(text)[:12]!r})"

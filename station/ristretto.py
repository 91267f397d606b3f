"""Batch operations in the ristretto255 group, through the system's libsodium.

ristretto255 is a prime-order group built on Curve25519: every encoded
element is 32 bytes, every non-identity element generates the group, and
no small-subgroup element exists to leak bits of a secret scalar. The
waiting-list protocol needs three operations on it, each over whole lists:

* hash identifiers into the group (``crypto_core_ristretto255_from_hash`` on
  a domain-separated SHA-512 digest);
* multiply every element of a list by one secret scalar
  (``crypto_scalarmult_ristretto255``), the commutative blinding;
* draw random elements, which match nothing, as padding.

PyNaCl 1.6 does not expose ristretto255, so this module calls libsodium
(1.0.18 or later) with ctypes. A list is one ``bytes`` object of 32-byte
elements, so that no Python object per element is kept. ctypes releases
the GIL during each libsodium call, so :func:`blind` spreads a large list
over threads and uses several cores.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
from concurrent.futures import ThreadPoolExecutor

__all__ = [
    "ELEMENT_BYTES",
    "SodiumUnavailable",
    "blind",
    "hash_to_group",
    "new_scalar",
    "random_elements",
]

ELEMENT_BYTES = 32
SCALAR_BYTES = 32
# Prefix of every hashed identifier, so that these group elements never
# equal hashes made for another purpose from the same identifiers.
DOMAIN = b"linksight waiting-list overlap v1\x00"
# Elements per thread task: large enough that thread hand-over costs little.
CHUNK_ELEMENTS = 4096


class SodiumUnavailable(RuntimeError):
    """libsodium is missing or too old for ristretto255."""


_library: ctypes.CDLL | None = None


def _sodium() -> ctypes.CDLL:
    global _library
    if _library is not None:
        return _library
    path = ctypes.util.find_library("sodium")
    if path is None:
        raise SodiumUnavailable(
            "libsodium was not found; install it (Debian: apt-get install "
            "libsodium23) to run overlap queries"
        )
    library = ctypes.CDLL(path)
    if not hasattr(library, "crypto_scalarmult_ristretto255"):
        library.sodium_version_string.restype = ctypes.c_char_p
        version = library.sodium_version_string().decode()
        raise SodiumUnavailable(
            f"libsodium {version} at {path} has no ristretto255; version 1.0.18 "
            "or later is needed"
        )
    if library.sodium_init() < 0:
        raise SodiumUnavailable("libsodium failed to initialise (sodium_init)")
    for name in (
        "crypto_core_ristretto255_from_hash",
        "crypto_scalarmult_ristretto255",
        "crypto_core_ristretto255_random",
        "crypto_core_ristretto255_scalar_random",
    ):
        getattr(library, name).argtypes = (
            [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
            if name == "crypto_scalarmult_ristretto255"
            else [ctypes.c_void_p]
            if name.endswith("random")
            else [ctypes.c_void_p, ctypes.c_void_p]
        )
    _library = library
    return library


def new_scalar() -> bytearray:
    """Return a fresh secret scalar: uniform, non-zero, modulo the group order.

    The scalar is a bytearray so that its owner can overwrite it when the
    task ends.
    """
    library = _sodium()
    scalar = (ctypes.c_ubyte * SCALAR_BYTES)()
    library.crypto_core_ristretto255_scalar_random(scalar)
    result = bytearray(scalar)
    ctypes.memset(scalar, 0, SCALAR_BYTES)
    return result


def hash_to_group(identifiers: list[str], cell: str = "") -> bytes:
    """Hash each identifier, with the name of its `cell`, to a group element.

    The input of the hash is DOMAIN, the UTF-8 cell name, a zero byte and
    the UTF-8 identifier, so the same identifier in two cells of a grouped
    query gives two unrelated elements.
    """
    library = _sodium()
    count = len(identifiers)
    output = ctypes.create_string_buffer(count * ELEMENT_BYTES)
    base = ctypes.addressof(output)
    prefix = hashlib.sha512(DOMAIN + cell.encode() + b"\x00")
    from_hash = library.crypto_core_ristretto255_from_hash
    for index, identifier in enumerate(identifiers):
        digest = prefix.copy()
        digest.update(identifier.encode())
        from_hash(base + index * ELEMENT_BYTES, digest.digest())
    return output.raw


def random_elements(count: int) -> bytes:
    """Return `count` uniformly random group elements."""
    library = _sodium()
    output = ctypes.create_string_buffer(count * ELEMENT_BYTES)
    base = ctypes.addressof(output)
    for index in range(count):
        library.crypto_core_ristretto255_random(base + index * ELEMENT_BYTES)
    return output.raw


def _blind_range(
    source: bytes,
    target: ctypes.Array[ctypes.c_char],
    scalar: ctypes.Array[ctypes.c_ubyte],
    start: int,
    stop: int,
) -> bool:
    multiply = _sodium().crypto_scalarmult_ristretto255
    source_base = ctypes.cast(ctypes.c_char_p(source), ctypes.c_void_p).value or 0
    target_base = ctypes.addressof(target)
    ok = True
    for offset in range(start * ELEMENT_BYTES, stop * ELEMENT_BYTES, ELEMENT_BYTES):
        # A non-zero return means an invalid encoding or the identity.
        if multiply(target_base + offset, scalar, source_base + offset) != 0:
            ok = False
    return ok


def blind(elements: bytes, scalar: bytearray, threads: int = 1) -> bytes:
    """Multiply every element of `elements` by `scalar`, on `threads` threads.

    libsodium reads `scalar` in place, so no copy of the secret is made that
    its owner could not overwrite.

    Raises
    ------
    ValueError
        If `elements` is not a whole number of 32-byte elements, or holds a
        value that is not a valid encoding of a non-identity element, which
        a correct peer never sends.
    """
    if len(elements) % ELEMENT_BYTES:
        raise ValueError(
            f"a list of group elements has {len(elements)} bytes, not a multiple "
            f"of {ELEMENT_BYTES}; the peer that sent it is faulty"
        )
    count = len(elements) // ELEMENT_BYTES
    target = ctypes.create_string_buffer(count * ELEMENT_BYTES)
    key = (ctypes.c_ubyte * SCALAR_BYTES).from_buffer(scalar)
    ranges = [
        (start, min(start + CHUNK_ELEMENTS, count))
        for start in range(0, count, CHUNK_ELEMENTS)
    ]
    if threads <= 1 or len(ranges) <= 1:
        results = [_blind_range(elements, target, key, a, b) for a, b in ranges]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            futures = [
                pool.submit(_blind_range, elements, target, key, a, b)
                for a, b in ranges
            ]
            results = [future.result() for future in futures]
    if not all(results):
        raise ValueError(
            "a list holds a value that is not a ristretto255 element; the peer "
            "that sent it is faulty"
        )
    return target.raw

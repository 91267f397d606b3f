"""Sealing result documents to a scientist's key, and opening them."""

from __future__ import annotations

import base64
import stat

import pytest
from nacl.public import PrivateKey

from linksight.result_encryption import (
    ResultDecryptionError,
    ResultKeyError,
    encode_key,
    load_or_create_private_key,
    open_result,
    parse_public_key,
    read_private_key,
    result_digest,
    seal_result,
)

DOCUMENT = {
    "status": "released",
    "columns": ["sex", "count(*)"],
    "rows": [{"sex": 1, "count(*)": 138}, {"sex": 2, "count(*)": 90}],
    "checks": [{"rule": "min_count", "statistic": "count(*)", "passed": True}],
    "blocked": None,
}


def _relay(key: PrivateKey, documents: dict[str, dict]) -> dict:
    """Seal each station's document as the stations do, and relay as the hub."""
    public_key = encode_key(key.public_key)
    sealed = {name: seal_result(doc, public_key) for name, doc in documents.items()}
    first = next(iter(sealed.values()))
    relayed = {k: v for k, v in first.items() if k != "ciphertext"}
    relayed["ciphertexts"] = {name: item["ciphertext"] for name, item in sealed.items()}
    return relayed


def _signed(document: dict) -> dict:
    return {**document, "sha256": result_digest(document)}


def test_sealed_envelope_has_no_figures() -> None:
    key = PrivateKey.generate()

    envelope = seal_result(DOCUMENT, encode_key(key.public_key))

    assert envelope["status"] == "released"
    assert envelope["checks"] == [{"rule": "min_count", "passed": True}]
    assert "138" not in str({k: v for k, v in envelope.items() if k != "ciphertext"})
    assert "rows" not in envelope


def test_open_returns_document() -> None:
    key = PrivateKey.generate()
    document = _signed(DOCUMENT)

    opened = open_result(_relay(key, {"a": document, "b": document}), key, 1)

    assert opened == document


def test_stations_same_document_differ_in_ciphertext() -> None:
    key = PrivateKey.generate()

    relayed = _relay(key, {"a": DOCUMENT, "b": DOCUMENT})

    assert relayed["ciphertexts"]["a"] != relayed["ciphertexts"]["b"]


def test_open_with_other_key_raises() -> None:
    relayed = _relay(PrivateKey.generate(), {"a": DOCUMENT})

    with pytest.raises(ResultDecryptionError, match="sealed to the key"):
        open_result(relayed, PrivateKey.generate(), 7)


def test_altered_ciphertext_raises() -> None:
    key = PrivateKey.generate()
    relayed = _relay(key, {"a": DOCUMENT})
    sealed = bytearray(base64.b64decode(relayed["ciphertexts"]["a"]))
    sealed[-1] ^= 1
    relayed["ciphertexts"]["a"] = base64.b64encode(bytes(sealed)).decode()

    with pytest.raises(ResultDecryptionError, match="station a failed authentication"):
        open_result(relayed, key, 7)


def test_stations_disagreeing_raises() -> None:
    key = PrivateKey.generate()
    other = {**DOCUMENT, "rows": [{"sex": 1, "count(*)": 139}]}

    with pytest.raises(ResultDecryptionError, match="differs between stations"):
        open_result(_relay(key, {"a": DOCUMENT, "b": other}), key, 7)


def test_wrong_digest_raises() -> None:
    key = PrivateKey.generate()
    document = {**_signed(DOCUMENT), "min_count": 5}

    with pytest.raises(ResultDecryptionError, match="does not match its own SHA-256"):
        open_result(_relay(key, {"a": document}), key, 7)


def test_status_differing_from_hub_raises() -> None:
    key = PrivateKey.generate()
    relayed = _relay(key, {"a": DOCUMENT})
    relayed["status"] = "blocked"

    with pytest.raises(ResultDecryptionError, match="'released' inside"):
        open_result(relayed, key, 7)


def test_key_file_created_private(tmp_path) -> None:
    path = tmp_path / "keys" / "result.key"

    key, created = load_or_create_private_key(path)
    again, created_again = load_or_create_private_key(path)

    assert created
    assert not created_again
    assert bytes(again) == bytes(key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_key_file_readable_by_others_raises(tmp_path) -> None:
    path = tmp_path / "result.key"
    load_or_create_private_key(path)
    path.chmod(0o644)

    with pytest.raises(ResultKeyError, match="chmod 600"):
        read_private_key(path)


def test_key_file_garbled_raises(tmp_path) -> None:
    path = tmp_path / "result.key"
    path.write_text("not a key\n")
    path.chmod(0o600)

    with pytest.raises(ResultKeyError, match="32 bytes"):
        read_private_key(path)


@pytest.mark.parametrize("text", ["%%%", base64.b64encode(b"short").decode()])
def test_invalid_public_key_raises(text: str) -> None:
    with pytest.raises(ResultKeyError):
        parse_public_key(text)


def test_open_keeps_key_order() -> None:
    key = PrivateKey.generate()
    check = {"rule": "min_count", "cell": {"sex": 1, "ph.ecog": 3}, "passed": True}
    document = {**DOCUMENT, "checks": [check]}

    opened = open_result(_relay(key, {"a": document}), key, 7)

    assert list(opened["checks"][0]["cell"]) == ["sex", "ph.ecog"]

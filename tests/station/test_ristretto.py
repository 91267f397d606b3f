"""ristretto255 batch operations through libsodium."""

from __future__ import annotations

import pytest

from station import ristretto


def test_blinding_commutes():
    elements = ristretto.hash_to_group([str(i) for i in range(500)])
    first, second = ristretto.new_scalar(), ristretto.new_scalar()
    one_way = ristretto.blind(ristretto.blind(elements, first), second, threads=2)
    other_way = ristretto.blind(ristretto.blind(elements, second, threads=2), first)
    assert one_way == other_way
    assert one_way != elements


def test_hash_depends_on_cell():
    plain = ristretto.hash_to_group(["12345"])
    in_cell = ristretto.hash_to_group(["12345"], cell="result=positive")
    assert plain == ristretto.hash_to_group(["12345"])
    assert plain != in_cell
    assert len(plain) == ristretto.ELEMENT_BYTES


def test_scalars_are_fresh():
    assert ristretto.new_scalar() != ristretto.new_scalar()


def test_random_elements_are_valid():
    elements = ristretto.random_elements(20)
    blinded = ristretto.blind(elements, ristretto.new_scalar())
    assert len(set(elements[i : i + 32] for i in range(0, 640, 32))) == 20
    assert len(blinded) == 640


def test_blind_rejects_partial_element():
    with pytest.raises(ValueError, match="not a multiple of 32"):
        ristretto.blind(bytes(33), ristretto.new_scalar())


def test_blind_rejects_invalid_encoding():
    # All-0xff bytes are not a canonical ristretto255 encoding.
    with pytest.raises(ValueError, match="not a ristretto255 element"):
        ristretto.blind(b"\xff" * 32, ristretto.new_scalar())

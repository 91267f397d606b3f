"""Helpers for MPyC 0.11's secure fixed-point numbers, shared by the protocols."""

from __future__ import annotations

from typing import Any


def clear_integral(numbers: list[Any]) -> list[Any]:
    """Mark secure fixed-point numbers received from mpc.input as possibly fractional.

    NB: MPyC 0.11's mpc.input flags every number it returns, from every
    party, as integral when the first number this party put in is whole. A
    multiplication then shifts a flagged number right by f bits, dropping
    its fraction. Cleared flags only cost a truncation per product.
    """
    for number in numbers:
        number.integral = False
    return numbers

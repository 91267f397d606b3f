"""Helpers for MPyC 0.11's secure fixed-point numbers that every protocol needs."""

from __future__ import annotations

from typing import Any


def clear_integral(numbers: list[Any]) -> list[Any]:
    """Mark secure fixed-point numbers received from mpc.input as possibly fractional.

    NB: MPyC 0.11's mpc.input flags every number it returns, from every
    party, as integral when the first number this party put in is a whole
    number, and a multiplication first shifts a number flagged integral right
    by f bits, dropping its fraction. Cleared flags only cost a truncation.
    """
    for number in numbers:
        number.integral = False
    return numbers

"""Normalise person identifiers before they are compared across stations.

Two organisations rarely write the same identifier the same way: one exports
a BSN as ``012345672``, another as the number ``12345672`` or as
``0123.45.672``. A dataset's schema therefore declares, per identifier
column, how to bring values into one canonical form, and which values are
invalid. The steps run in this order:

1. ``strip``: remove surrounding whitespace.
2. ``remove``: delete every character listed (separators such as ``" .-"``).
3. ``case``: convert to upper or lower case, or keep it.
4. ``zero_pad``: left-pad a value shorter than ``length`` with zeros, for
   numbers whose leading zero was lost in an export.
5. ``format`` and ``length``: the value must consist of digits only, or of
   letters and digits, and have exactly ``length`` characters.
6. ``check``: ``"bsn"`` applies the eleven-check of the Dutch citizen service
   number (see :func:`bsn_valid`).

A missing value, an empty string or a value that fails step 5 or 6 is
invalid: it is left out of every comparison and only counted.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, model_validator

__all__ = ["IdentifierRules", "bsn_valid", "normalise_identifiers"]

# Weights of the BSN eleven-check for digits 1 to 9.
BSN_WEIGHTS = np.array([9, 8, 7, 6, 5, 4, 3, 2, -1], dtype=np.int64)


class IdentifierRules(BaseModel):
    """How the values of one identifier column are normalised and validated."""

    strip: bool = Field(default=True, description="remove surrounding whitespace")
    remove: str = Field(
        default="", description="characters deleted from every value, such as ' .-'"
    )
    case: Literal["keep", "upper", "lower"] = "keep"
    zero_pad: bool = Field(
        default=False, description="left-pad values shorter than length with zeros"
    )
    format: Literal["any", "digits", "alphanumeric"] = "any"
    length: int | None = Field(
        default=None, ge=1, le=64, description="exact number of characters"
    )
    check: Literal["none", "bsn"] = "none"

    @model_validator(mode="after")
    def _check_combination(self) -> IdentifierRules:
        if self.zero_pad and self.length is None:
            raise ValueError(
                "zero_pad needs length: set length to the number of characters "
                "a value is padded to, for example length = 9"
            )
        if self.check == "bsn" and (self.format != "digits" or self.length != 9):
            raise ValueError(
                "check = 'bsn' needs format = 'digits' and length = 9, because "
                "the eleven-check weighs exactly nine digits"
            )
        return self


def bsn_valid(values: pd.Series) -> pd.Series:
    """Return whether each nine-digit string passes the BSN eleven-check.

    The check is 9*d1 + 8*d2 + ... + 2*d8 - 1*d9 divisible by 11, with
    d1 the leftmost digit. The all-zero number passes that sum but is not
    issued, so it is invalid here too. Values that are not nine digits
    return False.
    """
    result = pd.Series(False, index=values.index)
    shaped = values.str.fullmatch(r"[0-9]{9}").fillna(False).astype(bool)
    if not shaped.any():
        return result
    digits = np.frombuffer(
        "".join(values[shaped].tolist()).encode("ascii"), dtype=np.uint8
    )
    digits = (digits - ord("0")).astype(np.int64).reshape(-1, 9)
    total = digits @ BSN_WEIGHTS
    result[shaped] = (total % 11 == 0) & (digits.sum(axis=1) > 0)
    return result


def normalise_identifiers(
    values: pd.Series, rules: IdentifierRules | None
) -> tuple[pd.Series, pd.Series]:
    """Normalise `values` by `rules` and mark the invalid ones.

    Returns the normalised strings and a boolean Series that is True where
    a value is valid, both on the index of `values`. Invalid positions hold
    the empty string. With `rules` None only missing and empty values are
    invalid and the rest are compared as written, after conversion to str.
    """
    rules = rules or IdentifierRules(strip=False)
    present = values.notna()
    text = values.astype("string").fillna("")
    if rules.strip:
        text = text.str.strip()
    for character in rules.remove:
        text = text.str.replace(character, "", regex=False)
    if rules.case == "upper":
        text = text.str.upper()
    elif rules.case == "lower":
        text = text.str.lower()
    if rules.zero_pad and rules.length is not None:
        short = text.str.len() < rules.length
        text = text.where(~(short & (text != "")), text.str.zfill(rules.length))
    valid = present & (text != "")
    if rules.format == "digits":
        valid &= text.str.fullmatch(r"[0-9]+").fillna(False).astype(bool)
    elif rules.format == "alphanumeric":
        valid &= text.str.fullmatch(r"[A-Za-z0-9]+").fillna(False).astype(bool)
    if rules.length is not None:
        valid &= text.str.len() == rules.length
    if rules.check == "bsn":
        valid &= bsn_valid(text.where(valid, ""))
    valid = valid.astype(bool)
    return text.where(valid, "").astype(object), valid

"""Identifier normalisation and the BSN eleven-check."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from linksight.identifiers import IdentifierRules, bsn_valid, normalise_identifiers
from linksight.schema import ColumnSchema

BSN = IdentifierRules(
    remove=" .-", format="digits", length=9, zero_pad=True, check="bsn"
)


def _normalise(values, rules):
    text, valid = normalise_identifiers(pd.Series(values, dtype=object), rules)
    return text.tolist(), valid.tolist()


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("111222333", True),  # 9*1+8*1+7*1+6*2+5*2+4*2+3*3+2*3-1*3 = 66
        ("123456782", True),
        ("123456789", False),
        ("111222334", False),
        ("000000000", False),  # passes the sum but is never issued
        ("12345678", False),  # eight digits: pad before checking
        ("12345678a", False),
    ],
)
def test_bsn_eleven_check(number, expected):
    assert bsn_valid(pd.Series([number])).tolist() == [expected]


def test_bsn_separators_and_lost_zero():
    text, valid = _normalise([" 0123.45.672 ", "12345672", "012-345-672"], BSN)
    assert text == ["012345672", "012345672", "012345672"]
    assert valid == [True, True, True]


def test_bsn_invalid_values_are_blanked():
    text, valid = _normalise(["123456789", None, "", "   ", "1234567890"], BSN)
    assert valid == [False, False, False, False, False]
    assert text == ["", "", "", "", ""]


def test_case_and_alphanumeric_format():
    rules = IdentifierRules(case="upper", format="alphanumeric", length=6)
    text, valid = _normalise(["ab12cd", " AB12CD", "ab-12c", "ab12c"], rules)
    assert text[:2] == ["AB12CD", "AB12CD"]
    assert valid == [True, True, False, False]


def test_leading_zeros_are_kept():
    rules = IdentifierRules(format="digits")
    text, valid = _normalise(["007", "7"], rules)
    assert text == ["007", "7"]
    assert valid == [True, True]


def test_no_rules_compares_as_written():
    text, valid = _normalise([" a", "a", None, 12], None)
    assert text == [" a", "a", "", "12"]
    assert valid == [True, True, False, True]


def test_zero_pad_needs_length():
    with pytest.raises(ValidationError, match="zero_pad needs length"):
        IdentifierRules(zero_pad=True)


def test_bsn_check_needs_nine_digits():
    with pytest.raises(ValidationError, match="needs format = 'digits' and length = 9"):
        IdentifierRules(check="bsn")


def test_normalise_only_on_identifiers():
    with pytest.raises(ValidationError, match="only identifier columns"):
        ColumnSchema(name="x", type="text", normalise={"strip": True})
    column = ColumnSchema(
        name="bsn", type="text", role="identifier", normalise=BSN.model_dump()
    )
    assert column.normalise == BSN

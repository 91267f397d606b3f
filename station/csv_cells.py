"""Convert the cells of one CSV column to its stored type and check them.

The importer hands over the cells of a block of rows as a pandas string
Series per column. Each converter works on the whole Series at once and
returns the typed values together with the errors it found, so that a file
with millions of rows is checked without a Python loop per cell.

Rules that hold for every column:

* Surrounding whitespace is ignored, except that text values are kept as
  they are.
* A cell is missing if, without surrounding whitespace, it is one of
  :data:`MISSING_VALUES`. The tokens are compared case-sensitively. It is
  also missing if its value is one of the column's ``missing_codes``:
  compared as numbers in integer and float columns ("0", "0.0" and "0,0"
  all match the code 0), as text otherwise.
* A cell fails at most one check, in this order: missing in a column with
  ``nullable = false``, then the type, then the range or the levels.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from linksight.schema import ColumnSchema

__all__ = [
    "DEFAULT_DATE_FORMAT",
    "MISSING_VALUES",
    "ColumnErrors",
    "DecimalSeparator",
    "convert_column",
]

MISSING_VALUES = frozenset({"", "NA", "NaN", "NULL", "."})
"""Cell values read as missing: empty, R's ``NA``, ``NaN``, SQL's ``NULL``,
and ``.``, which SAS writes for a missing number."""

DEFAULT_DATE_FORMAT = "%d-%m-%Y"
"""Format of date columns whose schema gives no ``date_format``."""

# A number written with a decimal separator, such as "1,5", "-2." or ".5".
_DECIMAL_NUMBER = re.compile(r"[+-]?(?:\d+[.,]\d*|[.,]\d+)(?:[eE][+-]?\d+)?")
_MAX_LEVELS_SHOWN = 12
_MAX_VALUE_SHOWN = 60


@dataclass
class ColumnErrors:
    """Errors found in one column of one block of rows.

    `first` contains (row position in the block, message) for the first errors
    of each kind, at most `limit` of each kind. `count` counts all of them.
    """

    limit: int
    count: int = 0
    first: list[tuple[int, str]] = field(default_factory=list)

    def collect(
        self, mask: pd.Series, text: pd.Series, describe: Callable[[str], str]
    ) -> None:
        """Record the cells where `mask` is true, described from their text."""
        positions = np.flatnonzero(mask.to_numpy(dtype=bool, na_value=False))
        self.count += len(positions)
        for position in positions[: self.limit]:
            self.first.append((int(position), describe(str(text.iloc[position]))))


class DecimalSeparator:
    """The decimal separator of one file, fixed by the schema or detected.

    Detection takes the first value in an integer or float column that has a
    decimal separator, in row order. Values that use the other separator are
    then errors, because a file that mixes the two is ambiguous: "1.000"
    could be one thousand or one.
    """

    def __init__(self, setting: str) -> None:
        self.character: str | None = None if setting == "auto" else setting
        self.source = "set by csv.decimal in the schema"

    def detect(
        self,
        cells: dict[str, pd.Series],
        columns: list[ColumnSchema],
        lines: np.ndarray,
    ) -> None:
        """Set the separator from the first decimal number in a block of rows."""
        if self.character is not None:
            return

        first: tuple[int, str, str] | None = None
        for column in columns:
            if not column.is_numeric:
                continue
            text = cells[column.name].str.strip()
            matches = np.flatnonzero(
                text.str.fullmatch(_DECIMAL_NUMBER.pattern).to_numpy(
                    dtype=bool, na_value=False
                )
            )
            if len(matches) and (first is None or matches[0] < first[0]):
                position = int(matches[0])
                first = (position, column.name, str(text.iloc[position]))
        if first is None:
            return

        position, name, value = first
        self.character = "," if "," in value else "."
        self.source = f'detected from line {lines[position]}, column "{name}"'

    @property
    def name(self) -> str:
        """The separator in words, for messages."""
        return "a decimal comma" if self.character == "," else "a decimal point"


def convert_column(
    raw: pd.Series, column: ColumnSchema, decimal: DecimalSeparator, limit: int
) -> tuple[pd.Series, ColumnErrors]:
    """Convert and check the cells of `column` in one block of rows.

    Returns the values in the column's stored dtype, with missing values as
    NA, and the errors found. The values of cells with errors are undefined.
    """
    errors = ColumnErrors(limit)
    text = raw.str.strip()
    missing = text.isin(MISSING_VALUES)
    if column.missing_codes:
        missing |= _coded_missing(text, ~missing, column, decimal)
    if not column.nullable:
        errors.collect(missing, text, _describe_missing)
    present = ~missing

    if column.type == "integer":
        values = _convert_integer(text, present, column, decimal, errors)
    elif column.type == "float":
        values = _convert_float(text, present, column, decimal, errors)
    elif column.type == "categorical":
        values = _convert_categorical(text, present, column, decimal, errors)
    elif column.type == "date":
        values = _convert_date(text, present, column, errors)
    else:
        values = raw.astype("string").where(present, pd.NA)
    return values, errors


def _coded_missing(
    text: pd.Series, present: pd.Series, column: ColumnSchema, decimal: DecimalSeparator
) -> pd.Series:
    """Return the mask of cells holding one of the column's missing codes."""
    codes = column.missing_codes
    if column.is_numeric:
        numbers, _ = _parse_numbers(text, present, decimal, integer=False)
        return present & numbers.isin([float(code) for code in codes])
    if column.type == "categorical" and all(isinstance(c, int) for c in codes):
        numbers, _ = _parse_numbers(text, present, decimal, integer=True)
        return present & numbers.isin([float(code) for code in codes])
    return present & text.isin([str(code) for code in codes])


def _convert_integer(
    text: pd.Series,
    present: pd.Series,
    column: ColumnSchema,
    decimal: DecimalSeparator,
    errors: ColumnErrors,
) -> pd.Series:
    numbers, wrong_separator = _parse_numbers(text, present, decimal, integer=True)
    _collect_wrong_separator(wrong_separator, text, decimal, errors)
    invalid = present & ~wrong_separator & numbers.isna()
    errors.collect(invalid, text, lambda value: f"{_quote(value)} is not an integer")
    in_range = _check_range(numbers, text, column, errors)
    return numbers.where(in_range).round().astype("Int64")


def _convert_float(
    text: pd.Series,
    present: pd.Series,
    column: ColumnSchema,
    decimal: DecimalSeparator,
    errors: ColumnErrors,
) -> pd.Series:
    numbers, wrong_separator = _parse_numbers(text, present, decimal, integer=False)
    _collect_wrong_separator(wrong_separator, text, decimal, errors)
    invalid = present & ~wrong_separator & numbers.isna()
    errors.collect(invalid, text, lambda value: f"{_quote(value)} is not a number")
    in_range = _check_range(numbers, text, column, errors)
    return numbers.where(in_range)


def _convert_categorical(
    text: pd.Series,
    present: pd.Series,
    column: ColumnSchema,
    decimal: DecimalSeparator,
    errors: ColumnErrors,
) -> pd.Series:
    levels = column.levels or []
    shown = _format_levels(levels)

    def describe(value: str) -> str:
        return f"{_quote(value)} is not one of the levels {shown}"

    if all(isinstance(level, int) for level in levels):
        # A CSV cell "1" (or "1.0") matches the integer level 1.
        numbers, _ = _parse_numbers(text, present, decimal, integer=True)
        known = numbers.isin(levels)
        errors.collect(present & ~known, text, describe)
        return numbers.where(known).round().astype("Int64")

    names = [str(level) for level in levels]
    errors.collect(present & ~text.isin(names), text, describe)
    return text.astype("string").where(present, pd.NA)


def _convert_date(
    text: pd.Series, present: pd.Series, column: ColumnSchema, errors: ColumnErrors
) -> pd.Series:
    date_format = column.date_format or DEFAULT_DATE_FORMAT
    # pandas 3.1 parses "now" and "today" as the current time whatever the
    # format, so they are removed before parsing.
    parsable = present & ~text.isin(["now", "today"])
    dates = pd.to_datetime(text.where(parsable), format=date_format, errors="coerce")

    def describe(value: str) -> str:
        return (
            f"{_quote(value)} is not a valid date in the format {date_format}; "
            "correct the date, or set date_format in the schema to the format "
            "of the file"
        )

    errors.collect(present & dates.isna(), text, describe)
    # NOTE: a time of day in the value, allowed by a date_format with %H, is
    # dropped because the column is stored as a date.
    return dates.dt.normalize()


def _parse_numbers(
    text: pd.Series, present: pd.Series, decimal: DecimalSeparator, integer: bool
) -> tuple[pd.Series, pd.Series]:
    """Parse numbers written with the file's decimal separator.

    Returns float64 values, NaN where a cell is missing or not a number of
    the kind requested, and the mask of cells that are numbers written with
    the other decimal separator.
    """
    separator = re.escape(decimal.character or ".")
    if integer:
        # An integer may carry a fraction of zeros, such as "3.0" or "3,00".
        pattern = rf"[+-]?\d+(?:{separator}0*)?"
    else:
        pattern = rf"[+-]?(?:\d+(?:{separator}\d*)?|{separator}\d+)(?:[eE][+-]?\d+)?"
    valid = present & text.str.fullmatch(pattern).fillna(False).astype(bool)

    wrong_separator = pd.Series(False, index=text.index)
    if decimal.character is not None:
        other = "." if decimal.character == "," else ","
        wrong_separator = (
            present
            & ~valid
            & text.str.contains(other, regex=False).fillna(False).astype(bool)
            & text.str.fullmatch(_DECIMAL_NUMBER.pattern).fillna(False).astype(bool)
        )

    normalised = text.where(valid)
    if decimal.character == ",":
        normalised = normalised.str.replace(",", ".", regex=False)
    numbers = pd.to_numeric(normalised, errors="coerce").astype("float64")
    return numbers, wrong_separator


def _collect_wrong_separator(
    mask: pd.Series, text: pd.Series, decimal: DecimalSeparator, errors: ColumnErrors
) -> None:
    other = "a decimal point" if decimal.character == "," else "a decimal comma"

    def describe(value: str) -> str:
        return (
            f"{_quote(value)} has {other}, but the file uses {decimal.name} "
            f"({decimal.source}); use one decimal separator throughout the file"
        )

    errors.collect(mask, text, describe)


def _check_range(
    numbers: pd.Series, text: pd.Series, column: ColumnSchema, errors: ColumnErrors
) -> pd.Series:
    """Record values outside [min, max] and return the mask of the others."""
    minimum = column.min if column.min is not None else -np.inf
    maximum = column.max if column.max is not None else np.inf
    allowed = f"{_format_number(minimum)} to {_format_number(maximum)}"

    def describe_below(value: str) -> str:
        return (
            f"{_quote(value)} is below the minimum {_format_number(minimum)} "
            f"(allowed: {allowed}); correct the value or lower min in the schema"
        )

    def describe_above(value: str) -> str:
        return (
            f"{_quote(value)} is above the maximum {_format_number(maximum)} "
            f"(allowed: {allowed}); correct the value or raise max in the schema"
        )

    below = numbers < minimum
    above = numbers > maximum
    errors.collect(below, text, describe_below)
    errors.collect(above, text, describe_above)
    return ~(below | above)


def _describe_missing(value: str) -> str:
    shown = f" ({json.dumps(value, ensure_ascii=False)})" if value else ""
    return (
        f"value is missing{shown}, but the schema declares the column "
        "nullable = false; fill in the value or set nullable = true"
    )


def _quote(value: str) -> str:
    if len(value) > _MAX_VALUE_SHOWN:
        value = value[:_MAX_VALUE_SHOWN] + "..."
    return "value " + json.dumps(value, ensure_ascii=False)


def _format_number(number: float) -> str:
    if float(number).is_integer():
        return str(int(number))
    return repr(float(number))


def _format_levels(levels: list[int | str]) -> str:
    shown = [
        str(level) if isinstance(level, int) else json.dumps(level)
        for level in levels[:_MAX_LEVELS_SHOWN]
    ]
    if len(levels) > _MAX_LEVELS_SHOWN:
        shown.append(f"... ({len(levels)} levels)")
    return ", ".join(shown)

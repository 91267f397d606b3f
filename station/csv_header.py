"""Detect a CSV file's separator from its header line and check the header.

Column names in a schema contain only letters, digits, ``_`` and ``.``, so a
header line contains the separator and no other candidate. Detection
therefore needs no sample of the data, which may quote separators in values.
"""

from __future__ import annotations

import csv
import difflib
from collections import Counter

from linksight.schema import DatasetSchema
from station.csv_errors import CsvError

__all__ = ["SEPARATORS", "check_header", "detect_separator"]

SEPARATORS = (";", ",", "\t")
"""Separators that auto-detection chooses from."""

_SEPARATOR_NAMES = {";": '";"', ",": '","', "\t": "tab"}


def detect_separator(header_line: str, schema: DatasetSchema) -> str | CsvError:
    """Return the separator of `header_line`, or the error that prevents it.

    A header with a single name contains no separator. Its file is then read
    with ``;``, which splits no unquoted decimal comma.
    """
    found = [separator for separator in SEPARATORS if separator in header_line]
    if len(found) == 1:
        return found[0]

    if not found:
        if len(schema.columns) == 1:
            return ";"
        return CsvError(
            1,
            None,
            'the header contains none of the separators ";", "," and tab; '
            "export the file with one of them, or check that line 1 is the "
            "header",
        )

    # More than one candidate: a quoted name contains another one. Prefer the
    # separator that splits the header into the most declared names.
    declared = set(schema.column_names)
    scores = {}
    for separator in found:
        names = next(csv.reader([header_line], delimiter=separator))
        scores[separator] = sum(name in declared for name in names)
    best = max(scores.values())
    winners = [separator for separator, score in scores.items() if score == best]
    if len(winners) == 1:
        return winners[0]
    shown = " and ".join(_SEPARATOR_NAMES[separator] for separator in winners)
    return CsvError(
        1,
        None,
        f"the separator is ambiguous because the header contains {shown}; set "
        "csv.separator in the schema",
    )


def check_header(header: list[str], schema: DatasetSchema) -> list[CsvError]:
    """Check that `header` names each declared column exactly once.

    Every header name must be declared, because a station must not import
    data that its schema does not describe. Names are compared exactly,
    including case and surrounding spaces.
    """
    errors = []
    declared = schema.column_names
    for position, name in enumerate(header, start=1):
        if not name:
            errors.append(
                CsvError(
                    1,
                    None,
                    f"column {position} of the header has no name; name it, or "
                    "remove the separator at the end of each line",
                )
            )

    counts = Counter(name for name in header if name)
    for name, count in counts.items():
        if count > 1:
            errors.append(
                CsvError(
                    1,
                    name,
                    f"the header names this column {count} times; keep one",
                )
            )

    missing = [name for name in declared if name not in counts]
    for name in counts:
        if name not in declared:
            errors.append(CsvError(1, name, _undeclared_message(name, schema, missing)))
    for name in missing:
        errors.append(
            CsvError(
                1,
                name,
                "the schema declares this column, but the header does not "
                "contain it; add the column to the export",
            )
        )
    return errors


def _undeclared_message(name: str, schema: DatasetSchema, missing: list[str]) -> str:
    message = (
        f'the column is not declared in the schema of dataset "{schema.name}"; '
        "remove it from the export, or declare it in the schema"
    )
    close = difflib.get_close_matches(name, missing, n=1)
    if not close:
        close = [m for m in missing if m.casefold() == name.strip().casefold()]
    if close:
        message += f' (did you mean "{close[0]}"?)'
    return message

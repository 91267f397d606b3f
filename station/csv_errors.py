"""Errors found in a CSV file during import, with their line and column.

The importer reports every error it finds, up to :data:`MAX_REPORTED_ERRORS`,
and counts the rest, so an operator can fix an export in one round instead of
one error at a time.

Error messages quote cell values because the station operator needs them to
find and fix the row. They must stay at the station: never log them, and never
send them to the hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["MAX_REPORTED_ERRORS", "CsvError", "CsvImportError", "ErrorList"]

MAX_REPORTED_ERRORS = 20


@dataclass(frozen=True)
class CsvError:
    """One error in a CSV file.

    `line` is 1-based and counts the header as line 1. For a row whose quoted
    values contain line breaks, it is the row's first line. `line` is None for
    errors about the whole file, and `column` is None for errors about a whole
    row or line.
    """

    line: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        if self.column is None:
            return f"line {self.line}: {self.message}"
        return f'line {self.line}, column "{self.column}": {self.message}'


class CsvImportError(ValueError):
    """A CSV file that was rejected, so nothing of it was imported.

    Attributes
    ----------
    path
        The rejected file.
    errors
        The first errors found, in file order, at most
        :data:`MAX_REPORTED_ERRORS`.
    error_count
        The number of errors found, including those not in `errors`.
    """

    def __init__(self, path: Path, errors: list[CsvError], error_count: int) -> None:
        self.path = path
        self.errors = tuple(errors)
        self.error_count = error_count
        noun = "error" if error_count == 1 else "errors"
        lines = [f"{path.name} was not imported because of {error_count} {noun}:"]
        lines += [str(error) for error in self.errors]
        rest = error_count - len(self.errors)
        if rest:
            lines.append(f"... and {rest} more")
        super().__init__("\n".join(lines))


class ErrorList:
    """The errors found so far in one file: the first few and a count."""

    def __init__(self, limit: int = MAX_REPORTED_ERRORS) -> None:
        self.limit = limit
        self.errors: list[CsvError] = []
        self.count = 0

    def add(self, line: int | None, column: str | None, message: str) -> None:
        """Record one error, keeping its text only while under the limit."""
        self.count += 1
        if len(self.errors) < self.limit:
            self.errors.append(CsvError(line, column, message))

    def extend(self, errors: list[CsvError], count: int) -> None:
        """Record `count` errors, of which `errors` are the first in file order."""
        self.count += count
        room = self.limit - len(self.errors)
        self.errors.extend(errors[: max(room, 0)])

    def raise_if_any(self, path: Path) -> None:
        """Raise :class:`CsvImportError` if any error was recorded."""
        if self.count:
            raise CsvImportError(path, self.errors, self.count)

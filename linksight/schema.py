"""Dataset schemas: the public description of a station's dataset.

A schema names each column, its type, its role and its allowed values. The
station checks every imported row against it, the hub publishes it to the
scientists of a collaboration, and the query parser checks queries against it.
A schema never contains record values.

Schemas are written as TOML files by the station operator::

    [dataset]
    name = "lung"
    max_rows = 1000000

    [csv]
    separator = "auto"

    [[columns]]
    name = "age"
    type = "integer"
    min = 18
    max = 110

    [[columns]]
    name = "bsn"
    type = "text"
    role = "identifier"
    normalise = { remove = " .-", format = "digits", length = 9, zero_pad = true,
                  check = "bsn" }

An identifier column's ``normalise`` table is described in
:mod:`linksight.identifiers`. A column's ``missing_codes``, such as
``missing_codes = [0]`` for a cholesterol that the source system stores as 0
when it was not measured, lists values that the importer and the store
record as missing; they are exempt from the range check.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from linksight.identifiers import IdentifierRules

ColumnType = Literal["integer", "float", "categorical", "date", "text"]
ColumnRole = Literal["identifier", "attribute"]

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*$"


class ColumnSchema(BaseModel):
    """One column of a dataset: type, role, allowed range or levels."""

    name: str = Field(pattern=NAME_PATTERN)
    type: ColumnType
    role: ColumnRole = "attribute"
    description: str = ""
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    levels: list[int | str] | None = None
    missing_codes: list[int | float | str] = Field(
        default_factory=list,
        description="values that the exports use for a missing value, such as 0 "
        "for a cholesterol that was not measured; stored as missing",
    )
    date_format: str | None = Field(
        default=None,
        description="strftime format of dates in CSV files, such as %d-%m-%Y",
    )
    normalise: IdentifierRules | None = Field(
        default=None,
        description="how an identifier's values are normalised before matching",
    )

    @model_validator(mode="after")
    def _check_type_fields(self) -> ColumnSchema:
        if self.type in ("integer", "float"):
            if self.min is None or self.max is None:
                raise ValueError(
                    f"column {self.name!r} is {self.type} and needs both min and "
                    "max: the secure computation sizes its numbers from them"
                )
            if self.min > self.max:
                raise ValueError(
                    f"column {self.name!r} has min {self.min} above max {self.max}"
                )
        if self.type == "categorical":
            if not self.levels:
                raise ValueError(
                    f"column {self.name!r} is categorical and needs its levels, "
                    "for example levels = [1, 2]"
                )
            if len(set(map(str, self.levels))) != len(self.levels):
                raise ValueError(f"column {self.name!r} lists a level twice")
        elif self.levels is not None:
            raise ValueError(
                f"column {self.name!r} is {self.type}; only categorical columns "
                "take levels"
            )
        self._check_missing_codes()
        if self.role == "identifier" and self.type != "text":
            raise ValueError(
                f"column {self.name!r} is an identifier and must have type text, "
                "so that leading zeros are kept"
            )
        if self.normalise is not None and self.role != "identifier":
            raise ValueError(
                f"column {self.name!r} has normalise settings but role "
                f"{self.role}; only identifier columns are normalised"
            )
        return self

    def _check_missing_codes(self) -> None:
        if not self.missing_codes:
            return

        if not self.nullable:
            raise ValueError(
                f"column {self.name!r} declares missing_codes but nullable = "
                "false; set nullable = true or remove the codes"
            )
        if self.type in ("integer", "float"):
            text = [c for c in self.missing_codes if isinstance(c, str)]
            if text:
                raise ValueError(
                    f"column {self.name!r} is {self.type} but its missing code "
                    f"{text[0]!r} is text; write the code as a number"
                )
        elif self.type in ("date",):
            raise ValueError(
                f"column {self.name!r} is a date; missing_codes apply only to "
                "integer, float, categorical and text columns"
            )
        if self.levels is not None:
            clashes = [c for c in self.missing_codes if c in self.levels]
            if clashes:
                raise ValueError(
                    f"column {self.name!r} declares {clashes[0]!r} both as a "
                    "level and as a missing code; remove it from one of them"
                )

    @property
    def is_numeric(self) -> bool:
        """Whether sums and means of this column are defined."""
        return self.type in ("integer", "float")

    @property
    def max_abs(self) -> float:
        """The largest absolute value the column may hold."""
        if not self.is_numeric:
            raise ValueError(f"column {self.name!r} is not numeric")
        return max(abs(self.min or 0.0), abs(self.max or 0.0))


class CsvDialect(BaseModel):
    """How the station's CSV exports are written; "auto" detects per file."""

    separator: Literal["auto", ",", ";", "\t"] = "auto"
    decimal: Literal["auto", ".", ","] = "auto"
    encoding: Literal["auto", "utf-8", "utf-8-sig", "cp1252"] = "auto"


class DatasetSchema(BaseModel):
    """The public metadata of one dataset at one station."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    max_rows: int = Field(
        default=10_000_000,
        gt=0,
        description="upper bound on the row count, used to size secure numbers",
    )
    columns: list[ColumnSchema]
    csv: CsvDialect = CsvDialect()

    @model_validator(mode="after")
    def _check_columns(self) -> DatasetSchema:
        if not self.columns:
            raise ValueError(f"dataset {self.name!r} declares no columns")
        names = [c.name for c in self.columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"dataset {self.name!r} declares column(s) {duplicates} twice"
            )
        return self

    def column(self, name: str) -> ColumnSchema:
        """Return the column called `name`; raise KeyError if there is none."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def column_names(self) -> list[str]:
        """The column names in declared order."""
        return [c.name for c in self.columns]

    def public_equal(self, other: DatasetSchema) -> bool:
        """Whether two stations' schemas agree on what a query can use."""
        mine = [c.model_dump(exclude={"description"}) for c in self.columns]
        theirs = [c.model_dump(exclude={"description"}) for c in other.columns]
        return mine == theirs


def load_schema(path: str | Path) -> DatasetSchema:
    """Read a dataset schema from a TOML file.

    The file has a ``[dataset]`` table (name, description, max_rows), an
    optional ``[csv]`` table and one ``[[columns]]`` table per column.
    """
    path = Path(path)
    with path.open("rb") as handle:
        raw = tomllib.load(handle)
    dataset = dict(raw.get("dataset", {}))
    dataset["columns"] = raw.get("columns", [])
    if "csv" in raw:
        dataset["csv"] = raw["csv"]
    return DatasetSchema.model_validate(dataset)

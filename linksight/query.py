"""The query specification and its text syntax.

A query reads like SQL::

    SELECT count(*), mean(age), var(age) FROM lung WHERE ph.ecog >= 2 GROUP BY sex
    SELECT crosstab(sex, ph.ecog) FROM lung

Column names may contain dots (``wt.loss``); a name that clashes with a
keyword is written in backticks. Filters combine comparisons with ``and``,
``or`` and ``not`` (``AND`` and ``=`` are accepted too), ``col IS NULL``,
``col IS NOT NULL`` and ``col IN (1, 2)``.

The parser builds a :class:`QuerySpec`, a restricted tree that stations turn
into SQL with bound parameters. Nothing in a query is ever evaluated as
Python. Errors are :class:`QueryError` with the 0-based column of the
offending text.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field

from linksight.schema import DatasetSchema

AggregateFunction = Literal["count", "sum", "mean", "var"]
AGGREGATE_FUNCTIONS: tuple[str, ...] = ("count", "sum", "mean", "var")
COMPARISON_OPERATORS: tuple[str, ...] = ("==", "!=", "<", "<=", ">", ">=")
KEYWORDS = {"select", "from", "where", "group", "by", "and", "or", "not", "is",
            "null", "in"}

Literal_ = int | float | str


class Aggregate(BaseModel):
    """One statistic of the output: ``mean(age)``, or ``count(*)`` with no column."""

    func: AggregateFunction
    column: str | None = None

    @property
    def label(self) -> str:
        """The output column name, such as ``mean(age)``."""
        return f"{self.func}({self.column or '*'})"


class Comparison(BaseModel):
    """``column op value``; a row whose column is missing never matches."""

    type: Literal["compare"] = "compare"
    column: str
    op: Literal["==", "!=", "<", "<=", ">", ">="]
    value: Literal_


class InList(BaseModel):
    """``column IN (v1, v2, ...)``."""

    type: Literal["in"] = "in"
    column: str
    values: list[Literal_] = Field(min_length=1)


class IsNull(BaseModel):
    """``column IS NULL`` or, negated, ``column IS NOT NULL``."""

    type: Literal["is_null"] = "is_null"
    column: str
    negated: bool = False


class And(BaseModel):
    """All of the items hold."""

    type: Literal["and"] = "and"
    items: list[Filter] = Field(min_length=2)


class Or(BaseModel):
    """At least one of the items holds."""

    type: Literal["or"] = "or"
    items: list[Filter] = Field(min_length=2)


class Not(BaseModel):
    """The item does not hold."""

    type: Literal["not"] = "not"
    item: Filter


Filter = Annotated[
    Union[Comparison, InList, IsNull, And, Or, Not], Field(discriminator="type")
]
And.model_rebuild()
Or.model_rebuild()
Not.model_rebuild()


class QuerySpec(BaseModel):
    """A parsed query: statistics per group over one dataset, after a filter.

    ``kind == "crosstab"`` is a count over exactly two group-by columns,
    shown as a table.
    """

    dataset: str
    kind: Literal["aggregate", "crosstab"] = "aggregate"
    aggregates: list[Aggregate] = Field(min_length=1)
    group_by: list[str] = []
    where: Filter | None = None

    def columns_used(self) -> dict[str, set[str]]:
        """Return each column mentioned, with its uses: output, group_by, filter."""
        uses: dict[str, set[str]] = {}
        for aggregate in self.aggregates:
            if aggregate.column is not None:
                uses.setdefault(aggregate.column, set()).add("output")
        for column in self.group_by:
            uses.setdefault(column, set()).add("group_by")
        for column in filter_columns(self.where):
            uses.setdefault(column, set()).add("filter")
        return uses


def filter_columns(node: Filter | None) -> list[str]:
    """Return the columns a filter reads, in order of appearance."""
    if node is None:
        return []
    if isinstance(node, (Comparison, InList, IsNull)):
        return [node.column]
    if isinstance(node, Not):
        return filter_columns(node.item)
    columns: list[str] = []
    for item in node.items:
        columns.extend(filter_columns(item))
    return columns


class QueryError(ValueError):
    """A query that cannot be parsed or does not fit the dataset's schema.

    Attributes
    ----------
    position
        0-based column in the query text where the problem starts, or None.
    query
        The query text.
    """

    def __init__(self, message: str, position: int | None = None, query: str = ""):
        super().__init__(message)
        self.message = message
        self.position = position
        self.query = query

    def __str__(self) -> str:
        if self.position is None or not self.query:
            return self.message
        caret = " " * self.position + "^"
        return f"{self.message} (column {self.position + 1})\n  {self.query}\n  {caret}"


@dataclass(frozen=True)
class _Token:
    kind: str  # name, number, string, op, punct, end
    text: str
    position: int
    quoted: bool = False

    @property
    def keyword(self) -> str | None:
        if self.kind == "name" and not self.quoted and self.text.lower() in KEYWORDS:
            return self.text.lower()
        return None


_TOKEN_PATTERN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<quoted>`[^`]*`)
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<op><=|>=|==|!=|<>|=|<|>)
  | (?P<punct>[(),*])
    """,
    re.VERBOSE,
)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN_PATTERN.match(text, position)
        if match is None:
            raise QueryError(
                f"unexpected character {text[position]!r}", position, text
            )
        kind = match.lastgroup or ""
        value = match.group()
        if kind == "quoted":
            tokens.append(_Token("name", value[1:-1], position, quoted=True))
        elif kind == "string":
            tokens.append(_Token("string", value[1:-1], position))
        elif kind == "op":
            normalised = {"=": "==", "<>": "!="}.get(value, value)
            tokens.append(_Token("op", normalised, position))
        elif kind != "space":
            tokens.append(_Token(kind, value, position))
        position = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str, schemas: dict[str, DatasetSchema] | None):
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.schemas = schemas
        self.schema: DatasetSchema | None = None
        # Column references with their positions, checked once FROM is known.
        self.references: list[tuple[str, int, str]] = []

    # Token helpers

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, message: str, token: _Token | None = None) -> QueryError:
        token = token or self.current
        return QueryError(message, token.position, self.text)

    def describe(self, token: _Token) -> str:
        return "the end of the query" if token.kind == "end" else repr(token.text)

    def expect_keyword(self, keyword: str) -> _Token:
        if self.current.keyword != keyword:
            raise self.error(
                f"expected {keyword.upper()} but found {self.describe(self.current)}"
            )
        return self.advance()

    def expect_punct(self, punct: str) -> _Token:
        if self.current.kind != "punct" or self.current.text != punct:
            raise self.error(
                f"expected {punct!r} but found {self.describe(self.current)}"
            )
        return self.advance()

    def at_punct(self, punct: str) -> bool:
        return self.current.kind == "punct" and self.current.text == punct

    def column_name(self, use: str) -> str:
        token = self.current
        if token.kind != "name" or token.keyword is not None:
            raise self.error(
                f"expected a column name but found {self.describe(token)}"
            )
        self.advance()
        self.references.append((token.text, token.position, use))
        return token.text

    # Grammar

    def parse(self) -> QuerySpec:
        self.expect_keyword("select")
        select_start = self.index
        # FROM comes after the select list, but the select list needs the
        # dataset to check its columns: so skip ahead to read FROM first.
        depth = 0
        while not (self.current.keyword == "from" and depth == 0):
            if self.current.kind == "end":
                raise self.error("missing FROM: name the dataset, as in FROM lung")
            if self.at_punct("("):
                depth += 1
            elif self.at_punct(")"):
                depth -= 1
            self.advance()
        self.advance()
        dataset_token = self.current
        if dataset_token.kind != "name" or dataset_token.keyword is not None:
            raise self.error(
                f"expected a dataset name after FROM but found "
                f"{self.describe(dataset_token)}"
            )
        self.advance()
        after_from = self.index
        self.bind_dataset(dataset_token)

        self.index = select_start
        kind, aggregates, crosstab_columns = self.select_list()
        if self.current.keyword != "from":
            raise self.error(
                f"expected ',' or FROM but found {self.describe(self.current)}"
            )
        self.index = after_from

        where = None
        if self.current.keyword == "where":
            self.advance()
            where = self.or_expression()
        group_by: list[str] = []
        if self.current.keyword == "group":
            group_token = self.advance()
            self.expect_keyword("by")
            if kind == "crosstab":
                raise self.error(
                    "crosstab(a, b) already groups by its two columns: "
                    "remove GROUP BY",
                    group_token,
                )
            group_by.append(self.column_name("group_by"))
            while self.at_punct(","):
                self.advance()
                group_by.append(self.column_name("group_by"))
        if self.current.kind != "end":
            raise self.error(
                f"unexpected {self.describe(self.current)} after the query; "
                "WHERE comes before GROUP BY"
            )
        if kind == "crosstab":
            group_by = crosstab_columns
        duplicates = sorted({c for c in group_by if group_by.count(c) > 1})
        if duplicates:
            raise QueryError(
                f"column(s) {duplicates} appear twice in the grouping", None,
                self.text,
            )
        self.check_references()
        return QuerySpec(
            dataset=dataset_token.text,
            kind=kind,
            aggregates=aggregates,
            group_by=group_by,
            where=where,
        )

    def bind_dataset(self, token: _Token) -> None:
        if self.schemas is None:
            return
        if token.text not in self.schemas:
            raise self.error(
                f"unknown dataset {token.text!r}"
                + _suggestion(token.text, list(self.schemas))
                + f"; available: {', '.join(sorted(self.schemas)) or 'none'}",
                token,
            )
        self.schema = self.schemas[token.text]

    def select_list(self) -> tuple[str, list[Aggregate], list[str]]:
        aggregates: list[Aggregate] = []
        crosstab_columns: list[str] = []
        kind = "aggregate"
        while True:
            token = self.current
            if token.kind != "name" or token.keyword is not None:
                raise self.error(
                    f"expected a statistic such as count(*) or mean(age) but "
                    f"found {self.describe(token)}"
                )
            name = token.text.lower()
            self.advance()
            if name == "crosstab":
                if aggregates or crosstab_columns:
                    raise self.error(
                        "crosstab(a, b) must be the only item after SELECT", token
                    )
                self.expect_punct("(")
                crosstab_columns.append(self.column_name("group_by"))
                self.expect_punct(",")
                crosstab_columns.append(self.column_name("group_by"))
                self.expect_punct(")")
                kind = "crosstab"
                aggregates.append(Aggregate(func="count"))
            else:
                if kind == "crosstab":
                    raise self.error(
                        "crosstab(a, b) must be the only item after SELECT", token
                    )
                if name not in AGGREGATE_FUNCTIONS:
                    known = list(AGGREGATE_FUNCTIONS) + ["crosstab"]
                    raise self.error(
                        f"unknown function {token.text!r}"
                        + _suggestion(name, known)
                        + f"; available: {', '.join(known)}",
                        token,
                    )
                self.expect_punct("(")
                column = None
                if self.at_punct("*") or self.at_punct(")"):
                    if name != "count":
                        raise self.error(f"{name}() needs a column, as in {name}(age)")
                    if self.at_punct("*"):
                        self.advance()
                else:
                    column = self.column_name("output")
                self.expect_punct(")")
                aggregate = Aggregate(func=name, column=column)  # type: ignore[arg-type]
                if aggregate in aggregates:
                    raise self.error(f"{aggregate.label} is listed twice", token)
                aggregates.append(aggregate)
            if not self.at_punct(","):
                return kind, aggregates, crosstab_columns
            self.advance()

    def or_expression(self) -> Filter:
        items = [self.and_expression()]
        while self.current.keyword == "or":
            self.advance()
            items.append(self.and_expression())
        return items[0] if len(items) == 1 else Or(items=items)

    def and_expression(self) -> Filter:
        items = [self.not_expression()]
        while self.current.keyword == "and":
            self.advance()
            items.append(self.not_expression())
        return items[0] if len(items) == 1 else And(items=items)

    def not_expression(self) -> Filter:
        if self.current.keyword == "not":
            self.advance()
            return Not(item=self.not_expression())
        if self.at_punct("("):
            self.advance()
            inner = self.or_expression()
            self.expect_punct(")")
            return inner
        return self.condition()

    def condition(self) -> Filter:
        column = self.column_name("filter")
        token = self.current
        if token.keyword == "is":
            self.advance()
            negated = False
            if self.current.keyword == "not":
                self.advance()
                negated = True
            self.expect_keyword("null")
            return IsNull(column=column, negated=negated)
        if token.keyword == "in":
            self.advance()
            self.expect_punct("(")
            values = [self.literal()]
            while self.at_punct(","):
                self.advance()
                values.append(self.literal())
            self.expect_punct(")")
            return InList(column=column, values=values)
        if token.kind != "op":
            raise self.error(
                f"expected a comparison such as >=, ==, IN or IS NULL after "
                f"{column!r} but found {self.describe(token)}"
            )
        self.advance()
        return Comparison(column=column, op=token.text, value=self.literal())  # type: ignore[arg-type]

    def literal(self) -> Literal_:
        token = self.current
        if token.kind == "number":
            self.advance()
            number = float(token.text)
            is_integer = re.fullmatch(r"-?\d+", token.text) is not None
            return int(token.text) if is_integer else number
        if token.kind == "string":
            self.advance()
            return token.text
        raise self.error(
            f"expected a number or a quoted string but found {self.describe(token)}"
        )

    # Schema checks

    def check_references(self) -> None:
        if self.schema is None:
            return
        names = self.schema.column_names
        for name, position, use in self.references:
            if name not in names:
                raise QueryError(
                    f"unknown column {name!r} in dataset {self.schema.name!r}"
                    + _suggestion(name, names),
                    position,
                    self.text,
                )
            column = self.schema.column(name)
            if column.role == "identifier":
                raise QueryError(
                    f"column {name!r} is an identifier: it may be used to link "
                    "datasets but never as an output, a group or a filter",
                    position,
                    self.text,
                )
            if use == "output" and not column.is_numeric:
                raise QueryError(
                    f"column {name!r} has type {column.type}; statistics need a "
                    "numeric column (use it in GROUP BY instead)",
                    position,
                    self.text,
                )
            if use == "group_by" and column.type != "categorical":
                raise QueryError(
                    f"column {name!r} has type {column.type}; only categorical "
                    "columns can be grouped on, because every station must "
                    "know the groups in advance",
                    position,
                    self.text,
                )


def _suggestion(name: str, candidates: list[str]) -> str:
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def parse_query(
    text: str, schemas: dict[str, DatasetSchema] | None = None
) -> QuerySpec:
    """Parse query text into a :class:`QuerySpec`.

    Parameters
    ----------
    text
        The query, such as ``SELECT mean(age) FROM lung GROUP BY sex``.
    schemas
        Dataset schemas by name. When given, dataset and column names, types
        and roles are checked, and a mistyped name gets the closest match.

    Raises
    ------
    QueryError
        With the position of the offending text.
    """
    text = text.strip().rstrip(";").strip()
    if not text:
        raise QueryError("the query is empty; start with SELECT", 0, text)
    return _Parser(text, schemas).parse()


def format_query(spec: QuerySpec) -> str:
    """Return the canonical text of a query, which parses back to `spec`."""
    if spec.kind == "crosstab":
        select = f"crosstab({_name(spec.group_by[0])}, {_name(spec.group_by[1])})"
    else:
        select = ", ".join(
            f"{a.func}({_name(a.column) if a.column else '*'})"
            for a in spec.aggregates
        )
    text = f"SELECT {select} FROM {_name(spec.dataset)}"
    if spec.where is not None:
        text += f" WHERE {_format_filter(spec.where, top=True)}"
    if spec.group_by and spec.kind != "crosstab":
        text += " GROUP BY " + ", ".join(_name(c) for c in spec.group_by)
    return text


def _name(name: str) -> str:
    return f"`{name}`" if name.lower() in KEYWORDS else name


def _format_literal(value: Literal_) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)


def _format_filter(node: Filter, top: bool = False) -> str:
    if isinstance(node, Comparison):
        return f"{_name(node.column)} {node.op} {_format_literal(node.value)}"
    if isinstance(node, InList):
        values = ", ".join(_format_literal(v) for v in node.values)
        return f"{_name(node.column)} IN ({values})"
    if isinstance(node, IsNull):
        return f"{_name(node.column)} IS {'NOT ' if node.negated else ''}NULL"
    if isinstance(node, Not):
        return f"not {_format_filter(node.item)}"
    joiner = " and " if isinstance(node, And) else " or "
    inner = joiner.join(_format_filter(item) for item in node.items)
    return inner if top else f"({inner})"

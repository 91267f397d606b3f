"""The query specification and its text syntax.

A query reads like SQL::

    SELECT count(*), mean(age), var(age) FROM lung WHERE ph.ecog >= 2 GROUP BY sex
    SELECT crosstab(sex, ph.ecog) FROM lung
    SELECT overlap(subject_id) FROM covid AT ('station-a', 'station-b') GROUP BY result
    SELECT ols(time ~ age + C(sex) + ph.karno) FROM lung WHERE ph.ecog <= 2
    SELECT logit((num > 0) ~ age + C(sex) + (cp == 'asymptomatic')) FROM heart
    SELECT km(time, status == 2) FROM lung GROUP BY sex
    SELECT logrank(time, status == 2) FROM lung GROUP BY sex
    SELECT count(*), mean(chol) FROM hospital JOIN gp USING (person_id)
        WHERE age > 50 GROUP BY sex

Column names may contain dots (``wt.loss``); a name that clashes with a
keyword is written in backticks. Filters combine comparisons with ``and``,
``or`` and ``not`` (``AND`` and ``=`` are accepted too), ``col IS NULL``,
``col IS NOT NULL`` and ``col IN (1, 2)``. ``avg`` is accepted for ``mean``.
A query may span several lines.

``overlap(id)`` counts persons across the stations' lists of identifier
``id``: unique persons, persons on exactly k lists, every pairwise
intersection and each list's persons that are on another list. It is the
only place an identifier column may appear. ``AT ('a', 'b')`` compares the
lists of the named stations only; the other stations holding the dataset
still take part in the secure computation, with no list of their own.

``ols(y ~ x1 + C(g))`` fits a linear regression by ordinary least squares
with an intercept, in the formula syntax of R and statsmodels: a numeric
column enters as itself and ``C(g)`` enters a categorical column as one
indicator per level after the first (treatment coding). Rows with a missing
value in any model column are left out. A model query takes no GROUP BY.
A condition in parentheses, such as ``(cp == 'asymptomatic')`` or
``(ph.ecog IN (2, 3))``, enters as a 0/1 indicator, on either side of ``~``.
``logit(y ~ ...)`` fits a logistic regression by maximum likelihood; its
response is a condition, such as ``(num > 0)`` or ``(sex == 'Male')``, or
an integer column declared from 0 to 1.

``km(time, event)`` estimates the survival curve by Kaplan-Meier from an
integer time column and an event condition (rows where it does not hold are
censored), one curve per group with GROUP BY. ``logrank(time, event)``
tests whether the GROUP BY column's groups have the same survival.

``FROM a JOIN b USING (key) JOIN c USING (key)`` joins datasets held by
different stations on the identifier column `key` (inner join), for
statistics, crosstabs, ``ols`` and ``logit``. Every other column must be in
exactly one of the joined datasets. Conditions on different datasets combine
with ``and`` only, because each station evaluates its own part of the filter.

The parser builds a :class:`QuerySpec`, a restricted tree that stations turn
into SQL with bound parameters. Nothing in a query is ever evaluated as
Python. Errors are :class:`QueryError` with the 0-based offset of the
offending text, and a message that says how to fix it and, for a mistyped
name, suggests the closest dataset, column or function.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from linksight.schema import DatasetSchema

AggregateFunction = Literal["count", "sum", "mean", "var"]
AGGREGATE_FUNCTIONS: tuple[str, ...] = ("count", "sum", "mean", "var")
MODEL_FUNCTIONS: tuple[str, ...] = ("ols", "logit")
# ``train(family, formula, name = value, ...)``: federated training (Flower).
TRAIN_FUNCTION = "train"
# Statistics that are one person's value, rejected by disclosure rule no_min_max.
EXTREME_FUNCTIONS: tuple[str, ...] = ("min", "max", "minimum", "maximum")
# Other names accepted for a statistic: SQL's avg, and the words written out.
FUNCTION_ALIASES = {"avg": "mean", "average": "mean", "variance": "var"}
COMPARISON_OPERATORS: tuple[str, ...] = ("==", "!=", "<", "<=", ">", ">=")
KEYWORDS = {
    "select",
    "from",
    "where",
    "group",
    "by",
    "and",
    "or",
    "not",
    "is",
    "null",
    "in",
    "at",
    "join",
    "using",
}
# Analyses that a query over joined datasets may ask for.
JOIN_KINDS: tuple[str, ...] = ("aggregate", "crosstab", "ols", "logit")

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
    Comparison | InList | IsNull | And | Or | Not, Field(discriminator="type")
]
And.model_rebuild()
Or.model_rebuild()
Not.model_rebuild()


Indicator = Annotated[Comparison | InList, Field(discriminator="type")]

SURVIVAL_FUNCTIONS: tuple[str, ...] = ("km", "logrank")


class SurvivalSpec(BaseModel):
    """The follow-up time column and the event condition of a survival query."""

    time: str
    event: Indicator

    @property
    def text(self) -> str:
        """The arguments as written, such as ``time, status == 2``."""
        return f"{_name(self.time)}, {_format_filter(self.event, top=True)}"


class ModelTerm(BaseModel):
    """One term on the right of a formula: a numeric column, ``C(column)``, or
    a condition on `column` entered as a 0/1 indicator."""

    column: str
    categorical: bool = False
    condition: Indicator | None = None

    @property
    def label(self) -> str:
        """The term as written in the formula."""
        if self.condition is not None:
            return f"({_format_filter(self.condition, top=True)})"
        return f"C({self.column})" if self.categorical else self.column


class ModelSpec(BaseModel):
    """A regression formula ``response ~ term + term``, always with an intercept.

    With `outcome` set, the response is the 0/1 indicator of that condition on
    column `response`.
    """

    response: str
    terms: list[ModelTerm] = Field(min_length=1)
    outcome: Indicator | None = None

    @property
    def response_label(self) -> str:
        """The response as written in the formula."""
        if self.outcome is not None:
            return f"({_format_filter(self.outcome, top=True)})"
        return _name(self.response)

    @property
    def formula(self) -> str:
        """The formula text, such as ``time ~ age + C(sex)``."""
        terms = " + ".join(_format_term(t) for t in self.terms)
        return f"{self.response_label} ~ {terms}"


class TrainingSpec(BaseModel):
    """A federated training request: the model family, rounds and settings.

    `family` is one of the approved families of :mod:`linksight.federated`;
    `hyperparameters` are checked against that family when the query is
    checked against the collaboration's rules.
    """

    family: str
    rounds: int = Field(default=3, ge=1, le=50)
    secure_aggregation: bool = True
    hyperparameters: dict[str, float] = {}
    # Share of each station's rows held out of training and only evaluated,
    # chosen by holdout_seed (see linksight.federated.holdout_mask).
    holdout: float = Field(default=0.0, ge=0.0, le=0.5)
    holdout_seed: int = Field(default=0, ge=0, le=2**31 - 1)
    # Differential privacy over every exchange (linksight.differential_privacy):
    # the epsilon to spend at dp_delta, or None to train without it, and the
    # L2 norm that each station's mlp update is clipped to.
    dp_epsilon: float | None = Field(default=None, ge=0.01, le=100.0)
    dp_delta: float = Field(default=1e-5, gt=0.0, le=1e-3)
    clipping_norm: float | None = Field(default=None, gt=0.0, le=100.0)


class QuerySpec(BaseModel):
    """A parsed query: statistics per group over one dataset, after a filter.

    ``kind == "crosstab"`` is a count over exactly two group-by columns,
    shown as a table. ``kind == "overlap"`` compares the stations' lists of
    the `identifier` column, per group; it has no aggregates, and `lists`
    names the stations whose lists are compared (empty: every station).
    ``kind == "ols"`` fits the linear regression `model` and has no
    aggregates and no groups. ``kind == "train"`` trains the model family of
    `training` on `model`'s formula with Flower, and has no aggregates and
    no groups either.
    """

    dataset: str
    kind: Literal[
        "aggregate", "crosstab", "overlap", "ols", "logit", "km", "logrank", "train"
    ] = "aggregate"
    aggregates: list[Aggregate] = []
    group_by: list[str] = []
    where: Filter | None = None
    identifier: str | None = None
    lists: list[str] = []
    model: ModelSpec | None = None
    survival: SurvivalSpec | None = None
    training: TrainingSpec | None = None
    # The datasets joined to `dataset` on the identifier column `join_key`,
    # and the dataset each column of the query is read from.
    joins: list[str] = []
    join_key: str | None = None
    sources: dict[str, str] = {}

    @property
    def datasets(self) -> list[str]:
        """The queried dataset followed by the joined ones."""
        return [self.dataset, *self.joins]

    @model_validator(mode="after")
    def _check_join(self) -> QuerySpec:
        if bool(self.joins) != (self.join_key is not None):
            raise ValueError("a join names both its datasets and its key column")
        if not self.joins:
            return self
        if len(set(self.datasets)) != len(self.datasets):
            raise ValueError(f"a dataset is joined twice: {self.datasets}")
        if self.kind not in JOIN_KINDS:
            raise ValueError(
                f"a {self.kind} query cannot join datasets; joins support "
                f"{', '.join(JOIN_KINDS)}"
            )
        unknown = sorted(set(self.sources.values()) - set(self.datasets))
        if unknown:
            raise ValueError(f"columns are read from datasets {unknown} not joined")
        return self

    @model_validator(mode="after")
    def _check_kind(self) -> QuerySpec:
        if (self.kind == TRAIN_FUNCTION) != (self.training is not None):
            raise ValueError("a train query, and only a train query, has training")
        if self.kind in (*MODEL_FUNCTIONS, TRAIN_FUNCTION):
            if (
                self.model is None
                or self.aggregates
                or self.group_by
                or self.identifier is not None
                or self.lists
            ):
                raise ValueError(
                    f"an {self.kind} query has one model and no statistics, "
                    "groups, identifier or AT list"
                )
        elif self.model is not None:
            raise ValueError(f"a {self.kind} query takes no model")
        elif self.kind in SURVIVAL_FUNCTIONS:
            if (
                self.survival is None
                or self.aggregates
                or self.identifier is not None
                or self.lists
                or len(self.group_by) > 1
            ):
                raise ValueError(
                    f"a {self.kind} query has a time and an event, at most one "
                    "GROUP BY column, and no statistics, identifier or AT list"
                )
            if self.kind == "logrank" and not self.group_by:
                raise ValueError("a logrank query compares the groups of GROUP BY")
        elif self.kind == "overlap":
            if self.identifier is None or self.aggregates:
                raise ValueError(
                    "an overlap query names one identifier column and no statistics"
                )
            if len(set(self.lists)) != len(self.lists):
                raise ValueError(f"a station is listed twice in AT: {self.lists}")
        elif not self.aggregates or self.identifier is not None or self.lists:
            raise ValueError(
                f"a {self.kind} query needs at least one statistic and takes no "
                "identifier or AT list"
            )
        return self

    def columns_used(self) -> dict[str, set[str]]:
        """Return each column mentioned, with its uses.

        The uses are output, group_by, filter, link (the identifier of an
        overlap query), covariate (a numeric model term) and factor (a
        ``C(column)`` model term). A model's response is an output, and a
        trained model's response is a label.
        """
        uses: dict[str, set[str]] = {}
        if self.model is not None:
            response_use = "label" if self.kind == TRAIN_FUNCTION else "output"
            if self.model.outcome is not None:
                # A condition in a formula reads its column as a filter does.
                response_use = "filter"
            uses.setdefault(self.model.response, set()).add(response_use)
            for term in self.model.terms:
                use = "factor" if term.categorical else "covariate"
                if term.condition is not None:
                    use = "filter"
                uses.setdefault(term.column, set()).add(use)
        if self.survival is not None:
            uses.setdefault(self.survival.time, set()).add("output")
            uses.setdefault(self.survival.event.column, set()).add("filter")
        if self.identifier is not None:
            uses.setdefault(self.identifier, set()).add("link")
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


# Deepest nesting of parentheses and `not` in a filter; deeper trees would
# exhaust Python's recursion limit in the parser and in validation.
MAX_FILTER_DEPTH = 32


class QueryError(ValueError):
    """A query that cannot be parsed or does not fit the dataset's schema.

    Attributes
    ----------
    position
        0-based offset in the query text where the problem starts, or None.
    query
        The query text.

    ``str()`` shows the message, the line of the query and a caret under
    the offending text. A query of several lines names the line too.
    """

    def __init__(self, message: str, position: int | None = None, query: str = ""):
        super().__init__(message)
        self.message = message
        self.position = position
        self.query = query

    @property
    def line(self) -> int | None:
        """The 1-based line of the query where the problem starts, or None."""
        if self.position is None:
            return None
        return self.query.count("\n", 0, self.position) + 1

    @property
    def column(self) -> int | None:
        """The 1-based column within that line, or None."""
        if self.position is None:
            return None
        return self.position - self.query.rfind("\n", 0, self.position)

    def __str__(self) -> str:
        if self.position is None or self.column is None or not self.query:
            return self.message
        start = self.query.rfind("\n", 0, self.position) + 1
        end = self.query.find("\n", self.position)
        line_text = self.query[start : end if end >= 0 else len(self.query)]
        # One space per tab keeps the caret under the offending character.
        line_text = line_text.replace("\t", " ")
        where = f"column {self.column}"
        if "\n" in self.query.strip("\n"):
            where = f"line {self.line}, {where}"
        caret = " " * (self.column - 1) + "^"
        return f"{self.message} ({where})\n  {line_text}\n  {caret}"


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


_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")

_TOKEN_PATTERN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<quoted>`[^`]*`)
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<op><=|>=|==|!=|<>|=|<|>)
  | (?P<punct>[(),*~+])
    """,
    re.VERBOSE,
)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN_PATTERN.match(text, position)
        if match is None:
            raise QueryError(_describe_bad_character(text[position]), position, text)
        kind = match.lastgroup or ""
        value = match.group()
        if kind == "quoted":
            if value == "``":
                raise QueryError(
                    "empty name ``: write the column or dataset name between the "
                    "backticks",
                    position,
                    text,
                )
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


def _describe_bad_character(character: str) -> str:
    if character in "'\"":
        return f"unterminated string: add the closing {character}"
    if character == "`":
        return "unterminated column name: add the closing `"
    if character == "!":
        return "unexpected character '!': write != for 'not equal'"
    if character == ";":
        return "unexpected ';': write one query per cell or call, without ';'"
    return f"unexpected character {character!r}"


class _Parser:
    def __init__(self, text: str, schemas: dict[str, DatasetSchema] | None):
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.schemas = schemas
        self.depth = 0
        self.schema: DatasetSchema | None = None
        # Column references with their positions, checked once FROM is known.
        self.references: list[tuple[str, int, str]] = []
        # Literals compared with a column, checked against its type and levels.
        self.literals: list[tuple[str, Literal_, int]] = []
        self.crosstab_positions: list[int] = []
        self.model: ModelSpec | None = None
        self.survival: SurvivalSpec | None = None
        self.training: TrainingSpec | None = None
        # The datasets of a join, their key, and each filter node's position.
        self.joined: list[str] = []
        self.join_key_token: _Token | None = None
        self.node_positions: dict[int, int] = {}
        self.sources: dict[str, str] = {}

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

    def expect_close(self, opening: _Token, context: str) -> None:
        """Consume the ')' that closes `opening`; `context` is "after mean"."""
        if self.at_punct(")"):
            self.advance()
            return
        token = self.current
        if token.kind == "end" or token.keyword is not None:
            where = "at the end" if token.kind == "end" else f"before {token.text}"
            raise self.error(
                f"unclosed parenthesis {context}: add ')' {where}", opening
            )
        raise self.error(f"expected ')' but found {self.describe(token)}")

    def column_name(self, use: str) -> str:
        token = self.current
        if token.kind in ("string", "number"):
            raise self.error(
                f"expected a column name but found the value {token.text!r}; "
                "write the column first, as in sex == 1"
            )
        if token.kind != "name" or token.keyword is not None:
            raise self.error(f"expected a column name but found {self.describe(token)}")
        self.advance()
        self.references.append((token.text, token.position, use))
        return token.text

    # Grammar

    def parse(self) -> QuerySpec:
        self.expect_keyword("select")
        select_start = self.index
        # FROM comes after the select list, but the select list needs the
        # dataset to check its columns: so skip ahead to read FROM first.
        # FROM is a keyword and never stands inside parentheses, so an
        # unclosed parenthesis before it is reported by the select list.
        while self.current.keyword != "from":
            if self.current.kind == "end":
                self.index = select_start
                self.select_list()
                raise self.error(
                    f"expected ',' or FROM but found {self.describe(self.current)}; "
                    "name the dataset, as in FROM lung"
                )
            self.advance()
        self.advance()
        dataset_token = self.current
        if dataset_token.kind != "name" or dataset_token.keyword is not None:
            raise self.error(
                f"expected a dataset name after FROM but found "
                f"{self.describe(dataset_token)}"
            )
        self.advance()
        self.bind_dataset(dataset_token)
        joins, join_key = self.join_clauses(dataset_token)
        after_from = self.index

        self.index = select_start
        kind, aggregates, crosstab_columns = self.select_list()
        if joins and kind not in JOIN_KINDS:
            raise self.error(
                f"{kind}(...) cannot run over joined datasets; a JOIN supports "
                "count, sum, mean, var, crosstab, ols and logit",
                self.tokens[select_start],
            )
        if self.at_punct(")"):
            raise self.error("unmatched ')': remove it")
        if self.current.keyword != "from":
            raise self.error(
                f"expected ',' or FROM but found {self.describe(self.current)}"
            )
        self.index = after_from

        lists: list[str] = []
        if self.current.keyword == "at":
            at_token = self.advance()
            if kind != "overlap":
                raise self.error(
                    "AT names the stations whose lists overlap(id) compares; "
                    "other queries always use every station",
                    at_token,
                )
            lists = self.station_list()

        where = None
        if self.current.keyword == "where":
            self.advance()
            where = self.or_expression()
        group_by: list[str] = []
        group_positions: list[int] = []
        if self.current.keyword == "group":
            group_token = self.advance()
            self.expect_keyword("by")
            if kind == "crosstab":
                raise self.error(
                    "crosstab(a, b) already groups by its two columns: remove GROUP BY",
                    group_token,
                )
            if kind in (*MODEL_FUNCTIONS, TRAIN_FUNCTION):
                raise self.error(
                    f"{kind}(...) takes no GROUP BY: add the column to the formula "
                    "as C(column), or select the group with WHERE",
                    group_token,
                )
            group_positions.append(self.current.position)
            group_by.append(self.column_name("group_by"))
            while self.at_punct(","):
                self.advance()
                group_positions.append(self.current.position)
                group_by.append(self.column_name("group_by"))
        self.check_end()
        if kind in SURVIVAL_FUNCTIONS and len(group_by) > 1:
            raise QueryError(
                f"{kind}(...) takes one GROUP BY column, whose groups get their own "
                "curves: remove the others, or select one group with WHERE",
                group_positions[1],
                self.text,
            )
        if kind == "logrank" and not group_by:
            raise self.error(
                "logrank(time, event) compares the survival of groups: add GROUP "
                "BY with the column that forms them, as in GROUP BY sex"
            )
        identifier = None
        if kind == "crosstab":
            group_by = crosstab_columns
            group_positions = self.crosstab_positions
        elif kind == "overlap":
            identifier = crosstab_columns[0]
        for index, column in enumerate(group_by):
            if column in group_by[:index]:
                raise QueryError(
                    f"column {column!r} appears twice in the grouping: remove "
                    "one of them",
                    group_positions[index],
                    self.text,
                )
        self.check_references()
        sources = self.check_join_where(where) if joins else {}
        return QuerySpec(
            dataset=dataset_token.text,
            joins=joins,
            join_key=join_key,
            sources=sources,
            kind=kind,
            aggregates=aggregates,
            group_by=group_by,
            where=where,
            identifier=identifier,
            lists=lists,
            model=self.model,
            survival=self.survival,
            training=self.training,
        )

    def join_clauses(self, first: _Token) -> tuple[list[str], str | None]:
        """Parse ``JOIN b USING (key)`` clauses after the first dataset."""
        joins: list[str] = []
        key: _Token | None = None
        while self.current.keyword == "join":
            self.advance()
            token = self.current
            if token.kind != "name" or token.keyword is not None:
                raise self.error(
                    f"expected a dataset name after JOIN but found "
                    f"{self.describe(token)}"
                )
            if token.text in (first.text, *joins):
                raise self.error(
                    f"dataset {token.text!r} is already in the join: name each "
                    "dataset once",
                    token,
                )
            self.advance()
            self.bind_dataset(token)
            if self.current.keyword != "using":
                raise self.error(
                    f"expected USING (key) after JOIN {token.text} but found "
                    f"{self.describe(self.current)}; name the identifier column "
                    "that the datasets share, as in USING (person_id)"
                )
            self.advance()
            opening = self.expect_punct("(")
            name = self.current
            if name.kind != "name" or name.keyword is not None:
                raise self.error(
                    f"expected the key column in USING but found {self.describe(name)}"
                )
            self.advance()
            if self.at_punct(","):
                raise self.error(
                    "USING takes one key column: the datasets are joined on a "
                    "single person key"
                )
            self.expect_close(opening, "after USING")
            if key is not None and name.text != key.text:
                raise self.error(
                    f"every JOIN of a query uses the same key, but {name.text!r} "
                    f"differs from {key.text!r}: join all datasets on one key",
                    name,
                )
            key = name
            joins.append(token.text)
        if key is not None:
            self.join_key_token = key
            self.joined = [first.text, *joins]
        return joins, key.text if key is not None else None

    def station_list(self) -> list[str]:
        opening = self.expect_punct("(")
        names: list[str] = []
        while True:
            token = self.current
            if token.kind != "string":
                raise self.error(
                    "expected a station name in quotes, as in AT ('station-a', "
                    f"'station-b'), but found {self.describe(token)}"
                )
            if token.text in names:
                raise self.error(f"station {token.text!r} is listed twice", token)
            names.append(token.text)
            self.advance()
            if not self.at_punct(","):
                break
            self.advance()
        self.expect_close(opening, "after the stations")
        if len(names) < 2:
            raise self.error(
                "AT needs at least two stations whose lists to compare", opening
            )
        return names

    def check_end(self) -> None:
        token = self.current
        if token.kind == "end":
            return
        if self.at_punct(")"):
            raise self.error("unmatched ')': remove it")
        if token.keyword == "where":
            raise self.error("WHERE must come before GROUP BY")
        if token.keyword in ("and", "or") or token.kind == "op":
            raise self.error(
                f"unexpected {token.text!r} after GROUP BY: put every condition "
                "in the WHERE clause, before GROUP BY"
            )
        raise self.error(
            f"unexpected {self.describe(token)} after the end of the query; a "
            "query is SELECT ... FROM dataset [WHERE ...] [GROUP BY ...]"
        )

    def bind_dataset(self, token: _Token) -> None:
        if self.schemas is None:
            return
        if token.text not in self.schemas:
            raise self.error(
                f"unknown dataset {token.text!r}"
                + _suggestion(token.text, list(self.schemas))
                + "; available in this collaboration: "
                + f"{', '.join(sorted(self.schemas)) or 'none'}; a dataset of "
                + "another collaboration needs its name (-c in the magics and "
                + "the CLI, collaboration= in Python)",
                token,
            )
        if self.schema is None:
            self.schema = self.schemas[token.text]

    def indicator(self) -> Comparison | InList:
        """Parse ``(column op value)`` or ``(column IN (...))`` in a formula."""
        opening = self.expect_punct("(")
        condition = self.condition()
        if not isinstance(condition, (Comparison, InList)):
            raise self.error(
                "a condition in a formula compares a column with a value, as in "
                "(num > 0) or (cp IN ('asymptomatic')); IS NULL is not allowed, "
                "because rows with a missing model column are left out",
                opening,
            )
        self.expect_close(opening, "after the condition")
        return condition

    def formula(self, function: str, response_use: str = "output") -> ModelSpec:
        """Parse ``response ~ term + term`` inside a model function's parentheses."""
        outcome = None
        if self.at_punct("("):
            outcome = self.indicator()
            response = outcome.column
        else:
            response = self.column_name(response_use)
        if not self.at_punct("~"):
            raise self.error(
                f"expected '~' after the response {response!r} but found "
                f"{self.describe(self.current)}; write a formula, as in "
                f"{function}(time ~ age + C(sex))"
            )
        self.advance()
        terms: list[ModelTerm] = []
        while True:
            token = self.current
            if (
                token.kind == "name"
                and not token.quoted
                and token.text == "C"
                and self.tokens[self.index + 1].text == "("
                and self.tokens[self.index + 1].kind == "punct"
            ):
                self.advance()
                opening = self.advance()
                term = ModelTerm(column=self.column_name("factor"), categorical=True)
                self.expect_close(opening, "after C")
            elif self.at_punct("("):
                condition = self.indicator()
                term = ModelTerm(column=condition.column, condition=condition)
            else:
                term = ModelTerm(column=self.column_name("covariate"))
            if term.column == response:
                raise self.error(
                    f"the response {response!r} cannot also be a term: remove it "
                    "from the right of '~'",
                    token,
                )
            if any(t.label == term.label for t in terms):
                raise self.error(
                    f"column {term.column!r} is in the formula twice: remove one",
                    token,
                )
            terms.append(term)
            if not self.at_punct("+"):
                return ModelSpec(response=response, terms=terms, outcome=outcome)
            self.advance()

    def training_spec(self, opening: _Token) -> TrainingSpec:
        """Parse ``family, formula, name = value, ...)`` inside ``train(``."""
        family_token = self.current
        if family_token.kind != "name" or family_token.keyword is not None:
            raise self.error(
                "expected a model family after train(, as in train(logistic, "
                f"status ~ age), but found {self.describe(family_token)}"
            )
        self.advance()
        if not self.at_punct(","):
            raise self.error(
                f"expected ',' and a formula after {family_token.text!r}, as in "
                "train(logistic, status ~ age)"
            )
        self.advance()
        self.model = self.formula(TRAIN_FUNCTION, "label")
        settings: dict[str, float | bool] = {}
        while self.at_punct(","):
            self.advance()
            name_token = self.current
            if name_token.kind != "name" or name_token.keyword is not None:
                raise self.error(
                    "expected a setting such as rounds = 3 but found "
                    f"{self.describe(name_token)}"
                )
            self.advance()
            if self.current.text not in ("=", "=="):
                raise self.error(
                    f"expected '=' after {name_token.text!r}, as in "
                    f"{name_token.text} = 3"
                )
            self.advance()
            value_token = self.current
            value: float | bool
            if value_token.kind == "name" and value_token.text in ("true", "false"):
                value = value_token.text == "true"
            elif value_token.kind == "number":
                number = _number_value(value_token.text)
                if number is None:
                    raise self.error(f"{value_token.text} is out of range")
                value = number
            else:
                raise self.error(
                    f"the value of {name_token.text!r} must be a number, true or "
                    f"false, but is {self.describe(value_token)}"
                )
            if name_token.text in settings:
                raise self.error(f"{name_token.text!r} is set twice", name_token)
            settings[name_token.text] = value
            self.advance()
        self.expect_close(opening, "after train")
        rounds = settings.pop("rounds", 3)
        secure = settings.pop("secure_aggregation", True)
        if isinstance(rounds, bool) or rounds != int(rounds) or not 1 <= rounds <= 50:
            raise self.error(
                f"rounds = {rounds} must be a whole number from 1 to 50", family_token
            )
        if not isinstance(secure, bool):
            raise self.error("secure_aggregation must be true or false", family_token)
        holdout = settings.pop("holdout", 0.0)
        if isinstance(holdout, bool) or not 0.0 <= holdout <= 0.5:
            raise self.error(
                f"holdout = {holdout} must be a share of the rows from 0 to 0.5, "
                "as in holdout = 0.2",
                family_token,
            )
        seed = settings.pop("holdout_seed", 0)
        if isinstance(seed, bool) or seed != int(seed) or not 0 <= seed < 2**31:
            raise self.error(
                f"holdout_seed = {seed} must be a whole number from 0 to {2**31 - 1}",
                family_token,
            )
        privacy = self.privacy_settings(settings, family_token)
        for name, value in settings.items():
            if isinstance(value, bool):
                raise self.error(
                    f"hyperparameter {name!r} must be a number, not {value}",
                    family_token,
                )
        return TrainingSpec(
            family=family_token.text.lower(),
            rounds=int(rounds),
            secure_aggregation=secure,
            hyperparameters={k: float(v) for k, v in settings.items()},
            holdout=float(holdout),
            holdout_seed=int(seed),
            **privacy,
        )

    def privacy_settings(
        self, settings: dict[str, float | bool], family_token: _Token
    ) -> dict[str, float | None]:
        """Take the differential privacy settings out of `settings`; check them."""
        epsilon = settings.pop("dp_epsilon", None)
        delta = settings.pop("dp_delta", None)
        clipping = settings.pop("clipping_norm", None)
        if epsilon is None:
            for name, value in (("dp_delta", delta), ("clipping_norm", clipping)):
                if value is not None:
                    raise self.error(
                        f"{name} = {value} needs differential privacy; set "
                        "dp_epsilon too, as in dp_epsilon = 1",
                        family_token,
                    )
            return {}
        if isinstance(epsilon, bool) or not 0.01 <= epsilon <= 100:
            raise self.error(
                f"dp_epsilon = {epsilon} must be a number from 0.01 to 100, as in "
                "dp_epsilon = 1; a smaller epsilon adds more noise",
                family_token,
            )
        if delta is None:
            delta = 1e-5
        if isinstance(delta, bool) or not 0 < delta <= 1e-3:
            raise self.error(
                f"dp_delta = {delta} must be above 0 and at most 0.001, and well "
                "below 1 / rows, as in dp_delta = 1e-5",
                family_token,
            )
        family = family_token.text.lower()
        if clipping is not None and family != "mlp":
            raise self.error(
                f"clipping_norm applies to mlp only; {family} bounds each row's "
                "influence from the scaled design, so drop clipping_norm",
                family_token,
            )
        if family == "mlp" and clipping is None:
            clipping = 1.0
        if clipping is not None and (
            isinstance(clipping, bool) or not 0 < clipping <= 100
        ):
            raise self.error(
                f"clipping_norm = {clipping} must be above 0 and at most 100, as in "
                "clipping_norm = 1",
                family_token,
            )
        return {
            "dp_epsilon": float(epsilon),
            "dp_delta": float(delta),
            "clipping_norm": None if clipping is None else float(clipping),
        }

    def select_list(self) -> tuple[str, list[Aggregate], list[str]]:
        aggregates: list[Aggregate] = []
        crosstab_columns: list[str] = []
        kind = "aggregate"
        while True:
            token = self.current
            if self.at_punct("*"):
                raise self.error(
                    "a query returns statistics, never records: select "
                    "statistics such as count(*) or mean(age) instead of *"
                )
            if token.kind != "name" or token.keyword is not None:
                raise self.error(
                    f"expected a statistic such as count(*) or mean(age) but "
                    f"found {self.describe(token)}"
                )
            name = FUNCTION_ALIASES.get(token.text.lower(), token.text.lower())
            self.advance()
            if name == TRAIN_FUNCTION or kind == TRAIN_FUNCTION:
                if aggregates or crosstab_columns or kind != "aggregate":
                    raise self.error(
                        "train(...) must be the only item after SELECT", token
                    )
                opening = self.expect_punct("(")
                self.training = self.training_spec(opening)
                kind = TRAIN_FUNCTION
            elif name in MODEL_FUNCTIONS or kind in MODEL_FUNCTIONS:
                if aggregates or crosstab_columns or kind != "aggregate":
                    raise self.error(
                        f"{kind if kind in MODEL_FUNCTIONS else name}(...) must be "
                        "the only item after SELECT",
                        token,
                    )
                opening = self.expect_punct("(")
                self.model = self.formula(name)
                self.expect_close(opening, f"after {name}")
                kind = name
            elif name in SURVIVAL_FUNCTIONS or kind in SURVIVAL_FUNCTIONS:
                if aggregates or crosstab_columns or kind != "aggregate":
                    raise self.error(
                        f"{kind if kind in SURVIVAL_FUNCTIONS else name}(...) must "
                        "be the only item after SELECT",
                        token,
                    )
                opening = self.expect_punct("(")
                time = self.column_name("output")
                if not self.at_punct(","):
                    raise self.error(
                        f"expected ',' and an event condition after {time!r}, as "
                        f"in {name}(time, status == 2)"
                    )
                self.advance()
                event = self.condition()
                if not isinstance(event, (Comparison, InList)):
                    raise self.error(
                        "the event is a condition such as status == 2 or status "
                        "IN (2, 3); rows where it does not hold are censored"
                    )
                self.expect_close(opening, f"after {name}")
                self.survival = SurvivalSpec(time=time, event=event)
                kind = name
            elif name == "overlap" or kind == "overlap":
                if aggregates or crosstab_columns or name != "overlap":
                    raise self.error(
                        "overlap(id) must be the only item after SELECT", token
                    )
                opening = self.expect_punct("(")
                crosstab_columns.append(self.column_name("link"))
                self.expect_close(opening, "after overlap")
                kind = "overlap"
            elif name == "crosstab":
                if aggregates or crosstab_columns:
                    raise self.error(
                        "crosstab(a, b) must be the only item after SELECT", token
                    )
                opening = self.expect_punct("(")
                self.crosstab_positions = [self.current.position]
                crosstab_columns.append(self.column_name("group_by"))
                if not self.at_punct(","):
                    self.expect_close(opening, "after crosstab")
                    raise self.error(
                        "crosstab needs two columns, as in crosstab(sex, ph.ecog)",
                        token,
                    )
                self.advance()
                self.crosstab_positions.append(self.current.position)
                crosstab_columns.append(self.column_name("group_by"))
                self.expect_close(opening, "after crosstab")
                kind = "crosstab"
                aggregates.append(Aggregate(func="count"))
            else:
                if kind == "crosstab":
                    raise self.error(
                        "crosstab(a, b) must be the only item after SELECT", token
                    )
                if (
                    name not in AGGREGATE_FUNCTIONS
                    and not self.at_punct("(")
                    and self.schema is not None
                    and token.text in self.schema.column_names
                ):
                    raise self.error(
                        f"{token.text!r} is a column, and a query returns only "
                        f"statistics: select one such as mean({token.text}) or "
                        "count(*)",
                        token,
                    )
                if name in EXTREME_FUNCTIONS:
                    raise self.error(
                        f"{token.text}() is not available under disclosure rule "
                        "no_min_max: a minimum or maximum is one person's value; "
                        "use mean(), var(), or count(*) with a WHERE filter such "
                        "as age >= 75",
                        token,
                    )
                if name not in AGGREGATE_FUNCTIONS:
                    known = list(AGGREGATE_FUNCTIONS) + ["crosstab", "overlap"]
                    known += list(SURVIVAL_FUNCTIONS)
                    known += [*MODEL_FUNCTIONS, TRAIN_FUNCTION]
                    raise self.error(
                        f"unknown function {token.text!r}"
                        + _suggestion(name, known)
                        + f"; available: {', '.join(known)}",
                        token,
                    )
                opening = self.expect_punct("(")
                column = None
                if self.at_punct("*") or self.at_punct(")"):
                    if name != "count":
                        raise self.error(f"{name}() needs a column, as in {name}(age)")
                    if self.at_punct("*"):
                        self.advance()
                else:
                    column = self.column_name("output")
                if self.at_punct(","):
                    raise self.error(
                        f"{name}() takes one column; write one statistic per "
                        f"column, as in {name}(age), {name}(time)"
                    )
                self.expect_close(opening, f"after {name}")
                aggregate = Aggregate(func=name, column=column)  # type: ignore[arg-type]
                if aggregate in aggregates:
                    raise self.error(f"{aggregate.label} is listed twice", token)
                aggregates.append(aggregate)
            if not self.at_punct(","):
                return kind, aggregates, crosstab_columns
            self.advance()

    def or_expression(self) -> Filter:
        start = self.current.position
        items = [self.and_expression()]
        while self.current.keyword == "or":
            self.advance()
            items.append(self.and_expression())
        if len(items) == 1:
            return items[0]
        node = Or(items=items)
        self.node_positions[id(node)] = start
        return node

    def and_expression(self) -> Filter:
        items = [self.not_expression()]
        while self.current.keyword == "and":
            self.advance()
            items.append(self.not_expression())
        return items[0] if len(items) == 1 else And(items=items)

    def not_expression(self) -> Filter:
        if self.current.keyword != "not" and not self.at_punct("("):
            return self.condition()
        self.depth += 1
        if self.depth > MAX_FILTER_DEPTH:
            raise self.error(
                f"the filter nests more than {MAX_FILTER_DEPTH} levels of "
                "parentheses or not; write it with fewer levels"
            )
        try:
            if self.current.keyword == "not":
                start = self.advance().position
                node = Not(item=self.not_expression())
                self.node_positions[id(node)] = start
                return node
            opening = self.advance()
            inner = self.or_expression()
            self.expect_close(opening, "in WHERE")
            return inner
        finally:
            self.depth -= 1

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
            opening = self.expect_punct("(")
            if self.at_punct(")"):
                raise self.error(
                    f"IN needs at least one value, as in {column} IN (1, 2)"
                )
            values = [self.literal(column)]
            while self.at_punct(","):
                self.advance()
                values.append(self.literal(column))
            self.expect_close(opening, "after IN")
            return InList(column=column, values=values)
        if token.kind != "op":
            raise self.error(
                f"expected a comparison such as >=, ==, IN or IS NULL after "
                f"{column!r} but found {self.describe(token)}"
            )
        self.advance()
        value = self.literal(column)
        return Comparison(column=column, op=token.text, value=value)  # type: ignore[arg-type]

    def literal(self, column: str) -> Literal_:
        token = self.current
        value: Literal_
        if token.kind == "number":
            number = _number_value(token.text)
            if number is None:
                excerpt = token.text
                if len(excerpt) > 24:
                    excerpt = excerpt[:20] + "..."
                raise self.error(
                    f"the number {excerpt} is out of range: numbers in a query must "
                    "lie between -1.8e308 and 1.8e308, the range of a 64-bit float"
                )
            value = number
        elif token.kind == "string":
            value = token.text
        else:
            found = self.describe(token)
            if token.kind == "name" and token.keyword is None:
                found = f"the name {token.text!r}; quote text values, as in 'a'"
            raise self.error(f"expected a number or a quoted string but found {found}")
        self.advance()
        self.literals.append((column, value, token.position))
        return value

    # Schema checks

    def check_references(self) -> None:
        if self.schema is None:
            return
        if self.joined:
            schemas = self.resolve_join_columns()
            self.check_columns(lambda name: schemas[self.sources[name]])
            self.check_literals(lambda name: schemas[self.sources[name]])
            return
        schema = self.schema
        self.check_columns(lambda name: schema)
        self.check_literals(lambda name: schema)

    def resolve_join_columns(self) -> dict[str, DatasetSchema]:
        """Find the one joined dataset of every column; check the key.

        Fills ``self.sources`` and returns the joined datasets' schemas.
        """
        assert self.schemas is not None and self.join_key_token is not None
        schemas = {name: self.schemas[name] for name in self.joined}
        key = self.join_key_token
        for name, schema in schemas.items():
            if key.text not in schema.column_names:
                raise self.error(
                    f"key column {key.text!r} is not in dataset {name!r}"
                    + _suggestion(key.text, schema.column_names)
                    + "; USING names an identifier column of every joined dataset",
                    key,
                )
            if schema.column(key.text).role != "identifier":
                raise self.error(
                    f"key column {key.text!r} of dataset {name!r} has role "
                    f"{schema.column(key.text).role}; USING needs a column "
                    "declared with role = 'identifier' in every joined dataset",
                    key,
                )
        self.sources = {}
        for name, position, _use in self.references:
            if name == key.text:
                raise QueryError(
                    f"column {name!r} is the join key: it may only be named in "
                    "USING, never as an output, a group or a filter",
                    position,
                    self.text,
                )
            holders = [
                d for d, schema in schemas.items() if name in schema.column_names
            ]
            if not holders:
                every = [c for schema in schemas.values() for c in schema.column_names]
                raise QueryError(
                    f"unknown column {name!r} in the joined datasets "
                    f"{', '.join(schemas)}" + _suggestion(name, every),
                    position,
                    self.text,
                )
            if len(holders) > 1:
                raise QueryError(
                    f"column {name!r} is in datasets {' and '.join(holders)} of the "
                    "join, so it is ambiguous; a joined column must be in exactly "
                    "one dataset: join only one of them, or rename the column in "
                    "a dataset's schema",
                    position,
                    self.text,
                )
            self.sources[name] = holders[0]
        return schemas

    def check_join_where(self, where: Filter | None) -> dict[str, str]:
        """Reject ``or`` and ``not`` across datasets; return the column sources.

        Each station evaluates its own part of the filter, so the filter must
        be a conjunction of parts that each read one dataset.
        """
        if where is not None and self.sources:
            self._check_single_source(where, top=True)
        return dict(self.sources)

    def _check_single_source(self, node: Filter, top: bool) -> None:
        if isinstance(node, And) and top:
            for item in node.items:
                self._check_single_source(item, top=True)
            return
        datasets = sorted({self.sources[c] for c in filter_columns(node)})
        if len(datasets) < 2:
            return
        connective = "not" if isinstance(node, Not) else "or"
        raise QueryError(
            f"a condition combines datasets {' and '.join(datasets)} with "
            f"{connective}, which a join does not support: each station filters "
            "its own rows, so conditions on different datasets can only be "
            "combined with and",
            self.node_positions.get(id(node)),
            self.text,
        )

    def check_literals(self, schema_of: Callable[[str], DatasetSchema]) -> None:
        for name, value, position in self.literals:
            column = schema_of(name).column(name)
            if column.is_numeric and isinstance(value, str):
                raise QueryError(
                    f"column {name!r} has type {column.type}; compare it with a "
                    f"number, not the text {value!r}",
                    position,
                    self.text,
                )
            if column.type != "categorical" or column.levels is None:
                continue
            if value in column.levels:
                continue
            levels = ", ".join(_format_literal(level) for level in column.levels)
            if str(value) in map(str, column.levels):
                raise QueryError(
                    f"{_format_literal(value)} is not a level of column {name!r}: "
                    f"write the level as it is declared, one of {levels}",
                    position,
                    self.text,
                )
            raise QueryError(
                f"{_format_literal(value)} is not a level of column {name!r}; "
                f"its levels are {levels}",
                position,
                self.text,
            )

    def check_columns(self, schema_of: Callable[[str], DatasetSchema]) -> None:
        for name, position, use in self.references:
            schema = schema_of(name)
            names = schema.column_names
            if name not in names:
                raise QueryError(
                    f"unknown column {name!r} in dataset {schema.name!r}"
                    + _suggestion(name, names),
                    position,
                    self.text,
                )
            column = schema.column(name)
            if use == "link" and column.role != "identifier":
                raise QueryError(
                    f"column {name!r} is not an identifier; overlap(id) compares "
                    "a column declared with role = 'identifier'",
                    position,
                    self.text,
                )
            if use != "link" and column.role == "identifier":
                raise QueryError(
                    f"column {name!r} is an identifier: it may only be the "
                    "argument of overlap(id), never an output, a group or a "
                    "filter",
                    position,
                    self.text,
                )
            if use == "covariate" and not column.is_numeric:
                raise QueryError(
                    f"column {name!r} has type {column.type}; enter it as "
                    f"indicator variables by writing C({name})",
                    position,
                    self.text,
                )
            if use == "factor" and column.type != "categorical":
                raise QueryError(
                    f"column {name!r} has type {column.type}; C() takes a "
                    f"categorical column, so write {name} without C()",
                    position,
                    self.text,
                )
            if use == "label" and not (
                column.is_numeric
                or (column.type == "categorical" and len(column.levels or []) == 2)
            ):
                raise QueryError(
                    f"column {name!r} has type {column.type} with "
                    f"{len(column.levels or [])} level(s); a trained model's "
                    "response is numeric, or categorical with two levels",
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
    """Return " (did you mean 'x'?)" for the closest candidate, or ""."""
    by_lower = {candidate.lower(): candidate for candidate in candidates}
    if name.lower() in by_lower:
        return f" (did you mean {by_lower[name.lower()]!r}?)"
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[matches[0]]!r}?)" if matches else ""


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
    # Only the end is trimmed, so that positions count from the caller's text.
    text = text.rstrip().removesuffix(";").rstrip()
    if not text.strip():
        raise QueryError("the query is empty; start with SELECT", None, text)
    return _Parser(text, schemas).parse()


def format_query(spec: QuerySpec) -> str:
    """Return the canonical text of a query, which parses back to `spec`."""
    if spec.kind == "crosstab":
        select = f"crosstab({_name(spec.group_by[0])}, {_name(spec.group_by[1])})"
    elif spec.kind == "overlap":
        select = f"overlap({_name(spec.identifier or '')})"
    elif spec.training is not None and spec.model is not None:
        training = spec.training
        settings = [f"rounds = {training.rounds}"]
        if not training.secure_aggregation:
            settings.append("secure_aggregation = false")
        settings += [f"{k} = {v!r}" for k, v in training.hyperparameters.items()]
        if training.holdout:
            settings.append(f"holdout = {training.holdout!r}")
            settings.append(f"holdout_seed = {training.holdout_seed}")
        if training.dp_epsilon is not None:
            settings.append(f"dp_epsilon = {training.dp_epsilon!r}")
            settings.append(f"dp_delta = {training.dp_delta!r}")
        if training.clipping_norm is not None:
            settings.append(f"clipping_norm = {training.clipping_norm!r}")
        select = (
            f"train({training.family}, {spec.model.formula}, {', '.join(settings)})"
        )
    elif spec.survival is not None:
        select = f"{spec.kind}({spec.survival.text})"
    elif spec.model is not None:
        select = f"{spec.kind}({spec.model.formula})"
    else:
        select = ", ".join(
            f"{a.func}({_name(a.column) if a.column else '*'})" for a in spec.aggregates
        )
    text = f"SELECT {select} FROM {_name(spec.dataset)}"
    for joined in spec.joins:
        text += f" JOIN {_name(joined)} USING ({_name(spec.join_key or '')})"
    if spec.lists:
        text += " AT (" + ", ".join(_format_literal(s) for s in spec.lists) + ")"
    if spec.where is not None:
        text += f" WHERE {_format_filter(spec.where, top=True)}"
    if spec.group_by and spec.kind != "crosstab":
        text += " GROUP BY " + ", ".join(_name(c) for c in spec.group_by)
    return text


def _number_value(text: str) -> int | float | None:
    """Return the value of a number token, or None beyond the float range."""
    if re.fullmatch(r"-?\d+", text) is None:
        value = float(text)
        return value if math.isfinite(value) else None
    digits = text.removeprefix("-").lstrip("0") or "0"
    # int() rejects texts of more than 4,300 digits, and 310 digits are
    # already beyond the float range, so a longer text is never converted.
    if len(digits) > len(str(int(sys.float_info.max))):
        return None
    integer = -int(digits) if text.startswith("-") else int(digits)
    return integer if abs(integer) <= sys.float_info.max else None


def _name(name: str) -> str:
    # Backticks keep a keyword, or a name that only a quoted token can hold
    # (one with a space or a colon, say), a single name.
    if name.lower() in KEYWORDS or _PLAIN_NAME.fullmatch(name) is None:
        return f"`{name}`"
    return name


def _format_term(term: ModelTerm) -> str:
    if term.condition is not None:
        return term.label
    return f"C({_name(term.column)})" if term.categorical else _name(term.column)


def _format_literal(value: Literal_) -> str:
    if not isinstance(value, str):
        return repr(value)
    # A parsed string never contains both quote characters: the tokenizer
    # ends a string at the first quote that matches its opening one.
    return f'"{value}"' if "'" in value else f"'{value}'"


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

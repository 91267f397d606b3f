"""Property-based tests of the query parser: any text parses or raises QueryError.

For every text, `parse_query` either returns a spec whose canonical text
(`format_query`) parses back to the same spec, or raises `QueryError` whose
position points into the text. No other exception may escape, because the
hub and the client show a parse failure to the scientist as a message. The
tests check that contract and never the wording of a message.

Texts come from three generators: arbitrary Unicode, a soup of the
language's own tokens (keywords, functions, column names, operators,
literals of every shape, stray characters), and queries that follow the
grammar with random columns, filters and literals. Only the last reaches
the schema checks and the round trip often.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linksight.network import lung_schema_path
from linksight.query import QueryError, QuerySpec, format_query, parse_query
from linksight.schema import DatasetSchema, load_schema

# A second dataset with the column types and names the lung data lacks: an
# identifier, text and date columns, text levels with quotes in them, and a
# column whose name is a keyword.
VISITS = DatasetSchema.model_validate(
    {
        "name": "visits",
        "columns": [
            {"name": "patient_id", "type": "text", "role": "identifier"},
            {"name": "city", "type": "text"},
            {"name": "ward", "type": "categorical", "levels": ["A", "it's", 'B"']},
            {"name": "from", "type": "integer", "min": 0, "max": 10},
            {"name": "weight", "type": "float", "min": 0.5, "max": 300},
            {"name": "admitted", "type": "date"},
        ],
    }
)
SCHEMAS = {"lung": load_schema(lung_schema_path()), "visits": VISITS}
COLUMNS = sorted({c.name for schema in SCHEMAS.values() for c in schema.columns})

# The budget keeps these tests within seconds. A parse takes well under a
# millisecond, so the deadline only catches a runaway parse, even on a
# loaded CI machine.
EXAMPLES = 600
DEADLINE_MS = 2_000

KEYWORDS = ["SELECT", "FROM", "WHERE", "GROUP", "BY", "AND", "OR", "NOT"]
KEYWORDS += ["IS", "NULL", "IN", "AT", "select", "From", "where", "group by"]
STATISTICS = ["count", "sum", "mean", "var", "avg", "average", "variance"]
FUNCTIONS = [*STATISTICS, "crosstab", "overlap", "COUNT", "Mean", "median"]
OPERATORS = ["=", "==", "!=", "<>", "<", "<=", ">", ">=", "!", "=<"]
PUNCTUATION = ["(", ")", ",", "*", ";", "`", "'", '"']

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,8}", fullmatch=True)
quoted_names = (
    st.text(max_size=8).filter(lambda s: "`" not in s).map(lambda s: f"`{s}`")
)
# Declared names come up often, so that many queries pass the schema checks.
column_names = st.one_of(
    st.sampled_from(COLUMNS),
    st.sampled_from(COLUMNS).map(lambda name: f"`{name}`"),
    names,
    quoted_names,
)
dataset_names = st.one_of(
    st.sampled_from(["lung", "visits", "`visits`"]),
    st.sampled_from(["lung", "visits", "lng", "`my data`", "``"]),
    names,
    quoted_names,
)

# Numbers as a scientist might type them, including the extremes: exponents
# beyond the float range and integers of thousands of digits.
numbers = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.from_regex(r"-?[0-9]{1,4}(\.[0-9]{1,3})?[eE][-+]?[0-9]{1,4}", fullmatch=True),
    st.integers(300, 6000).map(lambda digits: "9" * digits),
    st.sampled_from(["1e999", "-1e999", "1e-999", "0.0", "-0", "007", "1.", ".5"]),
)
strings = st.one_of(
    st.text(max_size=10).filter(lambda s: "'" not in s).map(lambda s: f"'{s}'"),
    st.text(max_size=10).filter(lambda s: '"' not in s).map(lambda s: f'"{s}"'),
    st.sampled_from(["'A'", '"it\'s"', "'B\"'", "'1'", "''"]),
)
literals = numbers | strings


@st.composite
def token_soups(draw: st.DrawFn) -> str:
    """Draw a sequence of the language's tokens, in any order."""
    token = st.one_of(
        st.sampled_from(KEYWORDS + FUNCTIONS + OPERATORS + PUNCTUATION),
        column_names,
        quoted_names,
        literals,
        st.characters(),
    )
    tokens = draw(st.lists(token, max_size=25))
    separators = st.sampled_from([" ", "", "\n", "\t", "  ", " \r\n"])
    text = "SELECT " if draw(st.booleans()) else ""
    for item in tokens:
        text += item + draw(separators)
    return text


def _comparisons(column: str, literal: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(OPERATORS[:8]).map(lambda op: f"{column} {op} {literal}"),
        st.sampled_from([f"{column} IS NULL", f"{column} is not null"]),
        st.lists(literals, min_size=1, max_size=4).map(
            lambda values: f"{column} IN ({', '.join(values)})"
        ),
    )


@st.composite
def conditions(draw: st.DrawFn, depth: int = 2) -> str:
    """Draw a WHERE condition with nested and, or, not and parentheses."""
    column = draw(column_names)
    simple = draw(_comparisons(column, draw(literals)))
    if depth == 0 or draw(st.booleans()):
        return simple
    left = draw(conditions(depth - 1))
    right = draw(conditions(depth - 1))
    shape = draw(st.sampled_from(["and", "or", "not", "paren", "AND"]))
    if shape == "not":
        return f"not {left}"
    if shape == "paren":
        return f"({left})"
    return f"{left} {shape} {right}"


@st.composite
def grammatical_queries(draw: st.DrawFn) -> str:
    """Draw a query that follows the grammar, with random names and literals."""
    shape = draw(st.integers(0, 9))
    stations = ""
    if shape == 0:
        select = f"crosstab({draw(column_names)}, {draw(column_names)})"
    elif shape == 1:
        select = f"overlap({draw(column_names)})"
        if draw(st.booleans()):
            station_names = draw(st.lists(strings, max_size=3))
            stations = f" AT ({', '.join(station_names)})"
    else:
        statistic = st.sampled_from(STATISTICS).flatmap(
            lambda function: column_names.map(lambda name: f"{function}({name})")
        )
        items = draw(st.lists(statistic | st.just("count(*)"), min_size=1, max_size=3))
        select = ", ".join(items)
    text = f"SELECT {select} FROM {draw(dataset_names)}{stations}"
    if draw(st.booleans()):
        text += f" WHERE {draw(conditions())}"
    if draw(st.booleans()):
        groups = draw(st.lists(column_names, min_size=1, max_size=2))
        text += " GROUP BY " + ", ".join(groups)
    if draw(st.integers(0, 3)) == 0:
        text += draw(st.sampled_from([";", " ;", "\n", "  "]))
    return text


@st.composite
def mutated_queries(draw: st.DrawFn) -> str:
    """Draw a grammatical query with one character inserted, deleted or replaced."""
    text = draw(grammatical_queries())
    position = draw(st.integers(0, len(text)))
    character = draw(st.sampled_from(["(", ")", "'", "`", ",", " ", "-", "."]))
    edit = draw(st.sampled_from(["insert", "delete", "replace"]))
    if edit == "insert":
        return text[:position] + character + text[position:]
    if edit == "delete":
        return text[:position] + text[position + 1 :]
    return text[:position] + character + text[position + 1 :]


any_query_text = st.one_of(
    st.text(max_size=80),
    token_soups(),
    grammatical_queries(),
    mutated_queries(),
)


def check_parse_contract(
    text: str, schemas: dict[str, DatasetSchema] | None
) -> QuerySpec | None:
    """Parse `text`, assert the contract, and return the spec or None."""
    try:
        spec = parse_query(text, schemas)
    except QueryError as error:
        blank = not text.rstrip().removesuffix(";").strip()
        if error.position is None:
            assert blank, f"QueryError without a position for {text!r}: {error}"
        else:
            assert 0 <= error.position <= len(text), (
                f"position {error.position} outside {text!r} (length {len(text)})"
            )
            assert text.startswith(error.query), (
                f"error.query {error.query!r} is not the start of {text!r}"
            )
        assert str(error), f"empty message for {text!r}"
        return None

    canonical = format_query(spec)
    try:
        reparsed = parse_query(canonical, schemas)
    except QueryError as error:
        raise AssertionError(
            f"{text!r} parsed, but its canonical text {canonical!r} does not: {error}"
        ) from None
    assert reparsed == spec, (
        f"{text!r} parsed to {spec!r}, but its canonical text {canonical!r} "
        f"parses to {reparsed!r}"
    )
    return spec


@settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE_MS,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(text=any_query_text)
def test_any_text_parses_or_raises_query_error(text):
    check_parse_contract(text, SCHEMAS)


@settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE_MS,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(text=any_query_text)
def test_any_text_without_schemas(text):
    check_parse_contract(text, None)


@settings(max_examples=EXAMPLES, deadline=DEADLINE_MS)
@given(text=grammatical_queries())
def test_canonical_text_is_a_fixed_point(text):
    # The canonical text of a spec is itself canonical, so formatting is
    # stable across a round trip through the hub and back.
    spec = check_parse_contract(text, None)
    if spec is not None:
        canonical = format_query(spec)
        assert format_query(parse_query(canonical)) == canonical


@pytest.mark.parametrize(
    "text",
    [
        "SELECT count(*) FROM lung WHERE age > 1e999",
        "SELECT count(*) FROM lung WHERE age > -" + "9" * 5000,
        "SELECT count(*) FROM lung WHERE age IN (1, 0" + "0" * 5000 + "1)",
        'SELECT count(*) FROM visits WHERE ward == "it\'s"',
        "SELECT count(*) FROM `my data` WHERE `a b` IS NULL",
        "SELECT crosstab(A, `:`) FROM A",
        "SELECT sum(``) FROM lung",
        "SELECT count(*) FROM visits GROUP BY `from`",
    ],
)
def test_literal_and_name_edge_cases(text):
    # Inputs that once escaped the contract: an infinite float, an integer
    # too long for int(), a quote inside a string, names that need backticks.
    check_parse_contract(text, SCHEMAS)
    check_parse_contract(text, None)


def test_number_beyond_float_range_is_query_error():
    text = "SELECT count(*) FROM lung WHERE age > 1e999"
    with pytest.raises(QueryError) as caught:
        parse_query(text, SCHEMAS)
    assert caught.value.position == text.index("1e999")


def test_leading_zeros_do_not_count_as_digits():
    spec = parse_query("SELECT count(*) FROM lung WHERE age IN (0" + "0" * 5000 + "7)")
    assert spec.where is not None
    assert spec.where.values == [7]

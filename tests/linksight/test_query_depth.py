"""Deeply nested filters are a query error, not a crash."""

from __future__ import annotations

import pytest

from linksight.query import MAX_FILTER_DEPTH, QueryError, parse_query

PREFIX = "SELECT count(*) FROM lung WHERE "


@pytest.mark.parametrize(
    "where",
    [
        "(" * 400 + "age > 1" + ")" * 400,
        "not " * 2000 + "age > 1",
    ],
)
def test_query_too_deep_is_query_error(where):
    with pytest.raises(QueryError, match="nests more than 32 levels") as caught:
        parse_query(PREFIX + where)
    assert caught.value.position is not None


def test_query_at_max_depth_parses():
    where = "(" * MAX_FILTER_DEPTH + "age > 1" + ")" * MAX_FILTER_DEPTH
    spec = parse_query(PREFIX + where)
    assert spec.where is not None
    assert spec.where.column == "age"

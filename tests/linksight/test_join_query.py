"""The JOIN syntax: parsing, column resolution and the filter's parts."""

from __future__ import annotations

import pytest

from linksight.joins import dataset_columns, dataset_filter, joined_schema
from linksight.query import QueryError, format_query, parse_query
from linksight.rules import CollaborationRules, check_query
from linksight.schema import ColumnSchema, DatasetSchema


def _schema(name: str, *columns: ColumnSchema) -> DatasetSchema:
    key = ColumnSchema(name="person_id", type="text", role="identifier")
    return DatasetSchema(name=name, columns=[key, *columns])


SCHEMAS = {
    "hospital": _schema(
        "hospital",
        ColumnSchema(name="age", type="integer", min=18, max=110),
        ColumnSchema(name="sex", type="categorical", levels=["Female", "Male"]),
        ColumnSchema(name="code", type="text"),
    ),
    "gp": _schema(
        "gp",
        ColumnSchema(name="chol", type="integer", min=80, max=700),
        ColumnSchema(name="code", type="text"),
    ),
    "insurer": _schema(
        "insurer",
        ColumnSchema(name="num", type="integer", min=0, max=4),
        ColumnSchema(name="age_group", type="categorical", levels=["young", "old"]),
    ),
    "lab": DatasetSchema(
        name="lab",
        columns=[
            ColumnSchema(name="person_id", type="text"),
            ColumnSchema(name="hb", type="float", min=0, max=30),
        ],
    ),
}

THREE = "FROM hospital JOIN gp USING (person_id) JOIN insurer USING (person_id)"


def test_join_parses_and_resolves_columns():
    spec = parse_query(
        f"SELECT count(*), mean(chol) {THREE} WHERE age > 50 AND num > 0 GROUP BY sex",
        SCHEMAS,
    )

    assert spec.datasets == ["hospital", "gp", "insurer"]
    assert spec.join_key == "person_id"
    assert spec.sources == {
        "chol": "gp",
        "age": "hospital",
        "num": "insurer",
        "sex": "hospital",
    }
    assert dataset_columns(spec, "hospital") == ["age", "sex"]


def test_join_round_trips_through_format():
    text = f"SELECT ols(chol ~ age + C(sex)) {THREE} WHERE num > 0"

    spec = parse_query(text, SCHEMAS)

    assert format_query(spec) == text
    assert parse_query(format_query(spec), SCHEMAS) == spec


def test_join_logit_parses_and_round_trips():
    text = f"SELECT logit((num > 0) ~ age + C(sex) + (chol > 240)) {THREE}"

    spec = parse_query(text, SCHEMAS)

    assert spec.kind == "logit"
    assert spec.model is not None
    assert spec.model.response_label == "(num > 0)"
    assert spec.sources == {
        "num": "insurer",
        "age": "hospital",
        "sex": "hospital",
        "chol": "gp",
    }
    assert format_query(spec) == text
    assert parse_query(format_query(spec), SCHEMAS) == spec


def test_join_logit_numeric_response_rejected():
    spec = parse_query(f"SELECT logit(chol ~ age) {THREE}", SCHEMAS)

    violation = check_query(spec, joined_schema(spec, SCHEMAS), CollaborationRules(), 3)

    assert violation is not None
    assert violation.rule == "binary_response"
    assert "column 'chol' is not binary" in violation.message


def test_join_parses_without_schemas():
    spec = parse_query("SELECT count(*) FROM a JOIN b USING (k) WHERE x > 1")

    assert spec.joins == ["b"]
    assert spec.join_key == "k"
    assert spec.sources == {}


def test_join_filter_split_per_dataset():
    spec = parse_query(
        f"SELECT count(*) {THREE} WHERE age > 50 AND (num > 0 AND age < 80)",
        SCHEMAS,
    )

    hospital = dataset_filter(spec, "hospital")
    insurer = dataset_filter(spec, "insurer")

    assert hospital is not None
    assert insurer is not None
    assert format_query(spec.model_copy(update={"where": hospital})).endswith(
        "WHERE age > 50 and age < 80"
    )
    assert dataset_filter(spec, "gp") is None


def test_join_single_dataset_or_accepted():
    spec = parse_query(
        f"SELECT count(*) {THREE} WHERE (age < 30 OR age > 70) AND num > 0", SCHEMAS
    )

    assert dataset_filter(spec, "hospital") is not None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "SELECT count(*) FROM hospital JOIN gp USING (person_id) "
            "WHERE age > 50 OR chol > 200",
            "combines datasets gp and hospital with or",
        ),
        (
            "SELECT count(*) FROM hospital JOIN gp USING (person_id) "
            "WHERE NOT (age > 50 AND chol > 200)",
            "combines datasets gp and hospital with not",
        ),
        (
            "SELECT count(code) FROM hospital JOIN gp USING (person_id)",
            "column 'code' is in datasets hospital and gp of the join",
        ),
        (
            "SELECT mean(chl) FROM hospital JOIN gp USING (person_id)",
            "unknown column 'chl' in the joined datasets hospital, gp "
            "(did you mean 'chol'?)",
        ),
        (
            "SELECT count(*) FROM hospital JOIN gp USING (num)",
            "key column 'num' is not in dataset 'hospital'",
        ),
        (
            "SELECT count(*) FROM hospital JOIN gp USING (age)",
            "key column 'age' of dataset 'hospital' has role attribute",
        ),
        (
            "SELECT count(*) FROM hospital JOIN lab USING (person_id)",
            "key column 'person_id' of dataset 'lab' has role attribute",
        ),
        (
            "SELECT count(*) FROM hospital JOIN gp USING (person_id) "
            "JOIN insurer USING (code)",
            "every JOIN of a query uses the same key",
        ),
        (
            "SELECT count(*) FROM hospital JOIN hospital USING (person_id)",
            "dataset 'hospital' is already in the join",
        ),
        (
            "SELECT count(*) FROM hospital JOIN clinic USING (person_id)",
            "unknown dataset 'clinic'",
        ),
        (
            "SELECT count(*) FROM hospital JOIN gp ON person_id",
            "expected USING (key) after JOIN gp",
        ),
        (
            "SELECT count(*) FROM hospital JOIN gp USING (person_id, age)",
            "USING takes one key column",
        ),
        (
            "SELECT mean(person_id) FROM hospital JOIN gp USING (person_id)",
            "column 'person_id' is the join key",
        ),
        (
            "SELECT km(age, num == 1) FROM hospital JOIN insurer USING (person_id)",
            "km(...) cannot run over joined datasets",
        ),
        (
            "SELECT mean(sex) FROM hospital JOIN gp USING (person_id)",
            "column 'sex' has type categorical",
        ),
    ],
)
def test_join_query_rejected(query, message):
    with pytest.raises(QueryError) as caught:
        parse_query(query, SCHEMAS)

    assert message in caught.value.message


def test_join_or_error_points_at_condition():
    query = (
        "SELECT count(*) FROM hospital JOIN gp USING (person_id) "
        "WHERE age > 50 OR chol > 200"
    )

    with pytest.raises(QueryError) as caught:
        parse_query(query, SCHEMAS)

    assert caught.value.position == query.index("age > 50")


def test_join_rules_check_joined_columns():
    spec = parse_query(f"SELECT mean(chol) {THREE} GROUP BY sex, age_group", SCHEMAS)
    schema = joined_schema(spec, SCHEMAS)
    rules = CollaborationRules(max_group_levels=3)

    violation = check_query(spec, schema, rules, 3)
    too_few = check_query(spec, schema, CollaborationRules(), 2)

    assert schema.column_names == ["person_id", "chol", "sex", "age_group"]
    assert violation is not None
    assert violation.rule == "max_group_levels"
    assert too_few is not None
    assert too_few.rule == "min_stations"
    assert "the join of datasets hospital, gp, insurer" in too_few.message

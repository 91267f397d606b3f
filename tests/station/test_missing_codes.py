"""Tests of missing codes: values a schema declares to mean "missing"."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from linksight.network import heart_data, heart_schema_path
from linksight.schema import DatasetSchema, load_schema
from station.importer import import_csv
from station.store import DatasetStore


def coded_schema() -> DatasetSchema:
    """Return a schema whose cholesterol and smoking columns have missing codes."""
    return DatasetSchema.model_validate(
        {
            "name": "visits",
            "columns": [
                {"name": "age", "type": "integer", "min": 18, "max": 110},
                {
                    "name": "chol",
                    "type": "integer",
                    "min": 80,
                    "max": 700,
                    "missing_codes": [0],
                },
                {
                    "name": "smoker",
                    "type": "categorical",
                    "levels": ["no", "yes"],
                    "missing_codes": ["unknown"],
                },
                {
                    "name": "stage",
                    "type": "categorical",
                    "levels": [1, 2, 3],
                    "missing_codes": [9],
                },
            ],
        }
    )


def test_csv_codes_read_as_missing(tmp_path):
    path = tmp_path / "visits.csv"
    path.write_text(
        "age;chol;smoker;stage\n50;0;no;1\n61;0,0;unknown;9\n70;233;yes;2\n"
    )
    store = DatasetStore(tmp_path / "state")

    import_csv(store, path, coded_schema())
    stored = pd.read_parquet(store.current("visits").path)

    assert stored["chol"].isna().tolist() == [True, True, False]
    assert stored["chol"].iloc[2] == 233
    assert stored["smoker"].isna().tolist() == [False, True, False]
    assert stored["stage"].isna().tolist() == [False, True, False]


def test_csv_out_of_range_still_rejected(tmp_path):
    path = tmp_path / "visits.csv"
    path.write_text("age;chol;smoker;stage\n50;5;no;1\n")
    store = DatasetStore(tmp_path / "state")

    with pytest.raises(ValueError, match="chol"):
        import_csv(store, path, coded_schema())


def test_store_write_codes_missing(tmp_path):
    frame = pd.DataFrame(
        {
            "age": pd.array([50, 61], dtype="Int64"),
            "chol": pd.array([0, 240], dtype="Int64"),
            "smoker": ["unknown", "yes"],
            "stage": pd.array([9, 3], dtype="Int64"),
        }
    )
    store = DatasetStore(tmp_path / "state")

    version = store.write("visits", coded_schema(), frame, "0" * 64)
    stored = pd.read_parquet(version.path)

    assert stored["chol"].isna().tolist() == [True, False]
    assert stored["smoker"].isna().tolist() == [True, False]
    assert stored["stage"].isna().tolist() == [True, False]


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (
            {
                "name": "chol",
                "type": "integer",
                "min": 80,
                "max": 700,
                "nullable": False,
                "missing_codes": [0],
            },
            "nullable = false",
        ),
        (
            {
                "name": "chol",
                "type": "integer",
                "min": 80,
                "max": 700,
                "missing_codes": ["none"],
            },
            "write the code as a number",
        ),
        (
            {
                "name": "smoker",
                "type": "categorical",
                "levels": ["no", "yes"],
                "missing_codes": ["no"],
            },
            "both as a level and as a missing code",
        ),
        (
            {"name": "seen", "type": "date", "missing_codes": ["01-01-1900"]},
            "missing_codes apply only",
        ),
    ],
)
def test_schema_rejects_bad_codes(column, message):
    with pytest.raises(ValidationError, match=message):
        DatasetSchema.model_validate({"name": "visits", "columns": [column]})


def test_heart_data_imports_per_hospital(tmp_path):
    schema = load_schema(heart_schema_path())
    frame = heart_data()
    zeros = (frame["chol"] == 0).groupby(frame["dataset"]).sum()
    absent = frame["chol"].isna().groupby(frame["dataset"]).sum()
    rows = {}
    missing = {}
    for hospital, share in frame.groupby("dataset"):
        path = tmp_path / f"{hospital}.csv"
        share.to_csv(path, index=False)
        store = DatasetStore(tmp_path / hospital)
        import_csv(store, path, schema)
        stored = pd.read_parquet(store.current("heart").path)
        rows[hospital] = len(stored)
        missing[hospital] = int(stored["chol"].isna().sum())

    assert len(frame) == 920
    assert sum(rows.values()) == 920
    assert rows["Switzerland"] == 123
    assert zeros["Switzerland"] == 123
    for hospital in rows:
        assert missing[hospital] == zeros[hospital] + absent[hospital], hospital

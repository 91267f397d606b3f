"""Tests of the versioned Parquet dataset store."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from linksight.schema import DatasetSchema
from station import store as store_module
from station.store import (
    KEPT_VERSIONS,
    DatasetNotFoundError,
    DatasetStore,
    DatasetStoreError,
)

SHA = "ab" * 32


def make_schema(name: str = "lung") -> DatasetSchema:
    return DatasetSchema.model_validate(
        {
            "name": name,
            "columns": [
                {"name": "patient_id", "type": "text", "role": "identifier"},
                {"name": "age", "type": "integer", "min": 18, "max": 110},
                {"name": "wt.loss", "type": "float", "min": -100, "max": 100},
                {"name": "sex", "type": "categorical", "levels": [1, 2]},
                {"name": "stage", "type": "categorical", "levels": ["I", "II"]},
                {"name": "diagnosed", "type": "date", "nullable": False},
            ],
        }
    )


def make_frame(rows: int = 2) -> pd.DataFrame:
    ids = [f"{i:09d}" for i in range(1, rows + 1)]
    return pd.DataFrame(
        {
            "patient_id": pd.Series(ids, dtype="string"),
            "age": pd.array([70 + i % 5 for i in range(rows - 1)] + [None], "Int64"),
            "wt.loss": [1.5] * rows,
            "sex": pd.array([1, 2] * (rows // 2) + [1] * (rows % 2), "Int64"),
            "stage": pd.Series(["I"] * rows, dtype="string"),
            "diagnosed": pd.to_datetime(["01-02-2020"] * rows, format="%d-%m-%Y"),
        }
    )


def fail_manifest_replace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make replacing current.json fail, as on a full disk."""
    real_replace = os.replace

    def replace(source: str, target: str | Path) -> None:
        if Path(target).name == "current.json":
            raise OSError("disk full")
        real_replace(source, target)

    monkeypatch.setattr(store_module.os, "replace", replace)


def test_empty_store_has_no_names(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)

    assert store.names() == []
    assert store.current("lung") is None


def test_write_returns_first_version(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)

    written = store.write("lung", make_schema(), make_frame(), SHA)

    assert written.version == 1
    assert written.rows == 2
    assert written.path == tmp_path / "datasets" / "lung" / "v1.parquet"
    assert written.path.is_file()
    assert written.imported_at.tzinfo is not None


def test_current_reads_manifest(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    written = store.write("lung", make_schema(), make_frame(), SHA)

    current = store.current("lung")

    assert current == written
    assert current is not None
    assert current.schema == make_schema()
    assert current.source_sha256 == SHA


def test_manifest_fields(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    store.write("lung", make_schema(), make_frame(3), SHA)

    manifest = json.loads((tmp_path / "datasets/lung/current.json").read_text())

    assert manifest["version"] == 1
    assert manifest["rows"] == 3
    assert manifest["source_sha256"] == SHA
    assert manifest["schema"] == make_schema().model_dump(mode="json")
    assert "imported_at" in manifest


def test_stored_arrow_types(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    written = store.write("lung", make_schema(), make_frame(), SHA)

    stored = pq.read_schema(written.path)

    assert stored.field("patient_id").type == pa.string()
    assert stored.field("age").type == pa.int64()
    assert stored.field("wt.loss").type == pa.float64()
    assert stored.field("sex").type == pa.int64()
    assert stored.field("stage").type == pa.string()
    assert stored.field("diagnosed").type == pa.date32()
    assert not stored.field("diagnosed").nullable


def test_read_back_values_and_dtypes(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    written = store.write("lung", make_schema(), make_frame(), SHA)

    frame = pq.read_table(written.path).to_pandas()

    assert frame["patient_id"].tolist() == ["000000001", "000000002"]
    assert str(frame["age"].dtype) == "Int64"
    assert frame["age"].isna().tolist() == [False, True]
    assert frame["diagnosed"].tolist() == [date(2020, 2, 1)] * 2


def test_columns_in_schema_order(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    reversed_frame = make_frame()[list(reversed(make_schema().column_names))]

    written = store.write("lung", make_schema(), reversed_frame, SHA)

    assert pq.read_schema(written.path).names == make_schema().column_names


def test_names_sorted(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    store.write("zorg", make_schema("zorg"), make_frame(), SHA)
    store.write("lung", make_schema("lung"), make_frame(), SHA)

    assert store.names() == ["lung", "zorg"]


def test_schema_of_dataset(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    store.write("lung", make_schema(), make_frame(), SHA)

    assert store.schema("lung") == make_schema()


def test_schema_of_unknown_dataset(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    store.write("lung", make_schema(), make_frame(), SHA)

    with pytest.raises(DatasetNotFoundError) as raised:
        store.schema("heart")

    assert "dataset 'heart' not found" in str(raised.value)
    assert "stored datasets: lung" in str(raised.value)


def test_versions_increase(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    store.write("lung", make_schema(), make_frame(2), SHA)

    second = store.write("lung", make_schema(), make_frame(4), SHA)

    assert second.version == 2
    assert store.current("lung") == second


def test_keeps_last_versions(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)

    for _ in range(5):
        store.write("lung", make_schema(), make_frame(), SHA)

    files = sorted(p.name for p in (tmp_path / "datasets/lung").glob("*.parquet"))
    assert KEPT_VERSIONS == 3
    assert files == ["v3.parquet", "v4.parquet", "v5.parquet"]


def test_no_temporary_files_left(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)

    store.write("lung", make_schema(), make_frame(), SHA)

    names = sorted(p.name for p in (tmp_path / "datasets/lung").iterdir())
    assert names == [".lock", "current.json", "v1.parquet"]


def test_name_must_match_schema(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)

    with pytest.raises(ValueError, match="differs from the schema's name 'lung'"):
        store.write("heart", make_schema("lung"), make_frame(), SHA)


@pytest.mark.parametrize("name", ["../lung", "lung/x", ".hidden", ""])
def test_name_with_path_rejected(tmp_path: Path, name: str) -> None:
    store = DatasetStore(tmp_path)

    with pytest.raises(ValueError, match="dataset name .* is invalid"):
        store.current(name)


def test_frame_missing_column(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    frame = make_frame().drop(columns=["age"]).assign(extra=1)

    with pytest.raises(ValueError) as raised:
        store.write("lung", make_schema(), frame, SHA)

    assert "missing ['age']" in str(raised.value)
    assert "not declared ['extra']" in str(raised.value)


def test_frame_wrong_type(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    frame = make_frame().assign(age=["old", "young"])

    with pytest.raises(ValueError, match="column 'age' cannot be stored as int64"):
        store.write("lung", make_schema(), frame, SHA)


def test_frame_null_in_required_column(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    frame = make_frame().assign(diagnosed=[pd.NaT, pd.Timestamp("2020-01-01")])

    with pytest.raises(ValueError, match="'diagnosed' has 1 missing values"):
        store.write("lung", make_schema(), frame, SHA)


def test_rejected_frame_keeps_version(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    first = store.write("lung", make_schema(), make_frame(), SHA)

    with pytest.raises(ValueError):
        store.write("lung", make_schema(), make_frame().assign(age="x"), SHA)

    assert store.current("lung") == first
    assert not (tmp_path / "datasets/lung/v2.parquet").exists()


def test_failed_manifest_keeps_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DatasetStore(tmp_path)
    first = store.write("lung", make_schema(), make_frame(2), SHA)
    fail_manifest_replace(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        store.write("lung", make_schema(), make_frame(4), SHA)
    monkeypatch.undo()

    assert store.current("lung") == first
    leftovers = [p.name for p in (tmp_path / "datasets/lung").glob(".current*")]
    assert leftovers == []


def test_next_version_skips_orphan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DatasetStore(tmp_path)
    store.write("lung", make_schema(), make_frame(2), SHA)
    fail_manifest_replace(monkeypatch)
    with pytest.raises(OSError):
        store.write("lung", make_schema(), make_frame(4), SHA)
    monkeypatch.undo()

    third = store.write("lung", make_schema(), make_frame(6), SHA)

    assert third.version == 3
    assert third.rows == 6


def test_corrupt_manifest(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    store.write("lung", make_schema(), make_frame(), SHA)
    (tmp_path / "datasets/lung/current.json").write_text("{not json")

    with pytest.raises(DatasetStoreError, match="current.json is invalid"):
        store.current("lung")


def test_manifest_names_missing_file(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    written = store.write("lung", make_schema(), make_frame(), SHA)
    written.path.unlink()

    with pytest.raises(DatasetStoreError, match="v1.parquet is missing"):
        store.current("lung")

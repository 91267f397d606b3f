"""The station's local dataset store: versioned Parquet files and a manifest.

Each dataset lives in its own folder under ``<root>/datasets/<name>/``::

    v1.parquet  v2.parquet  v3.parquet  current.json

``current.json`` names the version in use, with its row count, import time,
the SHA-256 hash of the source file and the dataset schema as JSON. A write
first completes and fsyncs the new Parquet file and only then replaces
``current.json`` with ``os.replace``. A reader therefore sees either the old
version or the new one in full, and a write that fails at any step leaves the
previous version in use. The store keeps the newest :data:`KEPT_VERSIONS`
versions and deletes older ones after each successful write.

Writers to the same dataset are serialised with an exclusive ``flock`` on
``<root>/datasets/<name>/.lock``, so two imports cannot pick the same version
number. Readers take no lock.

NOTE: ``fcntl.flock`` makes this module POSIX-only. A Windows station would
need ``msvcrt.locking`` instead.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from linksight.schema import NAME_PATTERN, ColumnSchema, DatasetSchema

__all__ = [
    "KEPT_VERSIONS",
    "DatasetNotFoundError",
    "DatasetStore",
    "DatasetStoreError",
    "DatasetVersion",
    "arrow_schema",
]

logger = logging.getLogger("linksight.station")

KEPT_VERSIONS = 3
"""Number of newest versions, the current one included, kept on disk."""

MANIFEST_NAME = "current.json"
_VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.parquet$")


class DatasetStoreError(RuntimeError):
    """The files of a stored dataset are damaged or missing."""


class DatasetNotFoundError(LookupError):
    """No dataset of the requested name has been imported at this station."""


@dataclass(frozen=True)
class DatasetVersion:
    """One stored version of a dataset, as recorded in its manifest."""

    name: str
    version: int
    path: Path
    rows: int
    schema: DatasetSchema
    imported_at: datetime
    source_sha256: str


def arrow_schema(schema: DatasetSchema) -> pa.Schema:
    """Build the Arrow schema that stores the columns of `schema`.

    Integers are int64, floats float64 and dates date32. Categorical columns
    are int64 when every level is an integer and string otherwise. Text
    columns, identifiers included, are string.
    """
    fields = [
        pa.field(column.name, _arrow_type(column), nullable=column.nullable)
        for column in schema.columns
    ]
    return pa.schema(fields)


def _arrow_type(column: ColumnSchema) -> pa.DataType:
    if column.type == "integer":
        return pa.int64()
    if column.type == "float":
        return pa.float64()
    if column.type == "date":
        return pa.date32()
    if column.type == "categorical" and all(
        isinstance(level, int) for level in column.levels or []
    ):
        return pa.int64()
    return pa.string()


class DatasetStore:
    """Versioned Parquet datasets under ``<root>/datasets``.

    Parameters
    ----------
    root
        The station's data folder. It is created on the first write.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.datasets_dir = self.root / "datasets"

    def names(self) -> list[str]:
        """Return the names of the datasets that have a current version, sorted."""
        if not self.datasets_dir.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.datasets_dir.iterdir()
            if (entry / MANIFEST_NAME).is_file()
        )

    def current(self, name: str) -> DatasetVersion | None:
        """Return the version of dataset `name` in use, or None if there is none.

        Raises
        ------
        ValueError
            If `name` is not a valid dataset name.
        DatasetStoreError
            If the manifest cannot be read or names a missing Parquet file.
        """
        folder = self._dataset_dir(name)
        manifest_path = folder / MANIFEST_NAME
        try:
            text = manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

        try:
            manifest = json.loads(text)
            version = int(manifest["version"])
            current = DatasetVersion(
                name=name,
                version=version,
                path=folder / f"v{version}.parquet",
                rows=int(manifest["rows"]),
                schema=DatasetSchema.model_validate(manifest["schema"]),
                imported_at=datetime.fromisoformat(manifest["imported_at"]),
                source_sha256=str(manifest["source_sha256"]),
            )
        except (ValueError, KeyError, TypeError, ValidationError) as error:
            raise DatasetStoreError(
                f"manifest {manifest_path} is invalid ({error}); import the "
                "dataset again to write a new one"
            ) from error
        if not current.path.is_file():
            raise DatasetStoreError(
                f"manifest {manifest_path} names version {version}, but "
                f"{current.path} is missing; restore the file or import the "
                "dataset again"
            )
        return current

    def schema(self, name: str) -> DatasetSchema:
        """Return the schema of the current version of dataset `name`.

        Raises
        ------
        DatasetNotFoundError
            If the dataset has never been imported.
        """
        current = self.current(name)
        if current is None:
            known = ", ".join(self.names()) or "none"
            raise DatasetNotFoundError(
                f"dataset {name!r} not found at this station (stored datasets: "
                f"{known}); import a CSV file for it first"
            )
        return current.schema

    def write(
        self,
        name: str,
        schema: DatasetSchema,
        dataframe: pd.DataFrame,
        source_sha256: str,
    ) -> DatasetVersion:
        """Store `dataframe` as the next version of dataset `name` and use it.

        The columns of `dataframe` must be exactly those of `schema`, in any
        order. They are written in the schema's order with the types of
        :func:`arrow_schema`.

        Raises
        ------
        ValueError
            If `name` is invalid or differs from ``schema.name``, or if the
            columns of `dataframe` do not match the schema or cannot be
            converted to its types.
        OSError
            If a file cannot be written. The previous version stays in use.
        """
        folder = self._dataset_dir(name)
        if schema.name != name:
            raise ValueError(
                f"dataset name {name!r} differs from the schema's name "
                f"{schema.name!r}; store the dataset under the schema's name"
            )
        table = _to_arrow(schema, dataframe)

        folder.mkdir(parents=True, exist_ok=True)
        with _exclusive_lock(folder / ".lock"):
            version = self._next_version(name, folder)
            path = folder / f"v{version}.parquet"
            _write_parquet_atomically(table, path)

            imported_at = datetime.now(UTC)
            manifest = {
                "version": version,
                "rows": table.num_rows,
                "imported_at": imported_at.isoformat(),
                "source_sha256": source_sha256,
                "schema": schema.model_dump(mode="json"),
            }
            _write_text_atomically(folder / MANIFEST_NAME, json.dumps(manifest))
            self._delete_old_versions(folder, version)

        logger.info(
            "stored dataset %s version %s: %s rows, %s columns",
            name,
            version,
            table.num_rows,
            table.num_columns,
        )
        return DatasetVersion(
            name=name,
            version=version,
            path=path,
            rows=table.num_rows,
            schema=schema,
            imported_at=imported_at,
            source_sha256=source_sha256,
        )

    def _dataset_dir(self, name: str) -> Path:
        # The name becomes a folder name, so it must not contain a path.
        if not re.fullmatch(NAME_PATTERN, name):
            raise ValueError(
                f"dataset name {name!r} is invalid: it must start with a letter "
                "or underscore and contain only letters, digits, '_' and '.'"
            )
        return self.datasets_dir / name

    def _next_version(self, name: str, folder: Path) -> int:
        # A write that failed after renaming its Parquet file leaves a version
        # file without a manifest. Counting it too means no file is reused.
        current = self.current(name)
        newest = current.version if current is not None else 0
        for version in _version_files(folder):
            newest = max(newest, version)
        return newest + 1

    def _delete_old_versions(self, folder: Path, current: int) -> None:
        for version, path in _version_files(folder).items():
            if version <= current - KEPT_VERSIONS:
                path.unlink(missing_ok=True)
                logger.debug("deleted old version %s of %s", version, folder.name)


def _version_files(folder: Path) -> dict[int, Path]:
    versions = {}
    for path in folder.iterdir():
        match = _VERSION_FILE.match(path.name)
        if match:
            versions[int(match.group(1))] = path
    return versions


def _to_arrow(schema: DatasetSchema, dataframe: pd.DataFrame) -> pa.Table:
    expected = schema.column_names
    actual = [str(name) for name in dataframe.columns]
    missing = [name for name in expected if name not in actual]
    extra = [name for name in actual if name not in expected]
    if missing or extra or len(actual) != len(expected):
        raise ValueError(
            f"dataframe columns do not match the schema of {schema.name!r}: "
            f"missing {missing}, not declared {extra}; pass exactly the "
            "schema's columns, each once"
        )

    target = arrow_schema(schema)
    arrays = []
    for field in target:
        values = dataframe[field.name]
        codes = schema.column(field.name).missing_codes
        if codes:
            # The store records a declared missing code as missing, as the
            # CSV importer does, whichever way the frame reached it.
            values = values.mask(values.isin(codes))
        try:
            array = pa.array(values, type=field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise ValueError(
                f"column {field.name!r} cannot be stored as {field.type}: {error}"
            ) from error
        if array.null_count and not field.nullable:
            raise ValueError(
                f"column {field.name!r} has {array.null_count} missing values, "
                "but the schema declares it nullable = false"
            )
        arrays.append(array)

    # The pandas metadata lets ``to_pandas()`` restore the dtypes the frame had,
    # such as Int64 for integers with missing values. An empty frame yields the
    # same metadata without converting the data a second time.
    pandas_metadata = pa.Table.from_pandas(
        dataframe[expected].head(0), schema=target, preserve_index=False
    ).schema.metadata
    return pa.Table.from_arrays(arrays, schema=target.with_metadata(pandas_metadata))


def _write_parquet_atomically(table: pa.Table, path: Path) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            pq.write_table(table, file, compression="zstd")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_text_atomically(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(folder: Path) -> None:
    # Makes the rename itself durable across a power failure.
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    with path.open("a") as file:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)

"""Splitting a query over joined datasets into each dataset's part.

A query ``FROM a JOIN b USING (key)`` reads every column from exactly one
dataset (``QuerySpec.sources``), and its filter is a conjunction of parts
that each read one dataset. The hub checks such a query against the joined
columns' schemas, and each station evaluates only its own dataset's part.
"""

from __future__ import annotations

from linksight.query import And, Filter, QuerySpec, filter_columns
from linksight.schema import DatasetSchema

__all__ = ["dataset_columns", "dataset_filter", "joined_schema"]


def _conjuncts(node: Filter | None) -> list[Filter]:
    if node is None:
        return []
    if isinstance(node, And):
        return [part for item in node.items for part in _conjuncts(item)]
    return [node]


def dataset_filter(spec: QuerySpec, dataset: str) -> Filter | None:
    """Return the part of the filter that reads `dataset`, or None.

    Raises ValueError if a part reads several datasets: the parser rejects
    such a query, so it can only come from a hand-made spec.
    """
    parts = []
    for part in _conjuncts(spec.where):
        datasets = {spec.sources[column] for column in filter_columns(part)}
        if len(datasets) > 1:
            raise ValueError(
                f"a condition reads datasets {sorted(datasets)}; each part of a "
                "joined query's filter must read one dataset"
            )
        if datasets == {dataset}:
            parts.append(part)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(items=parts)


def dataset_columns(spec: QuerySpec, dataset: str) -> list[str]:
    """Return the columns of the query read from `dataset`, in query order."""
    return [column for column, source in spec.sources.items() if source == dataset]


def joined_schema(spec: QuerySpec, schemas: dict[str, DatasetSchema]) -> DatasetSchema:
    """Return one schema of the joined columns, named after the first dataset.

    The collaboration rules check a joined query against it as they check a
    query over one dataset.
    """
    columns = [
        schemas[source].column(column) for column, source in spec.sources.items()
    ]
    key = schemas[spec.dataset].column(spec.join_key or "")
    return DatasetSchema(
        name=spec.dataset,
        max_rows=min(schemas[name].max_rows for name in spec.datasets),
        columns=[key, *columns],
    )

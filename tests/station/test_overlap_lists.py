"""A station's own identifier lists for an overlap query, from its Parquet store."""

from __future__ import annotations

from linksight.query import parse_query
from linksight.schema import DatasetSchema
from station.importer import import_csv
from station.overlap_lists import compute_overlap_lists
from station.store import DatasetStore

SCHEMA = DatasetSchema.model_validate(
    {
        "name": "wachtlijst",
        "columns": [
            {
                "name": "bsn",
                "type": "text",
                "role": "identifier",
                "normalise": {
                    "remove": " .-",
                    "format": "digits",
                    "length": 9,
                    "zero_pad": True,
                    "check": "bsn",
                },
            },
            {"name": "treatment", "type": "categorical", "levels": ["hip", "knee"]},
            {"name": "age", "type": "integer", "min": 0, "max": 120},
        ],
    }
)
ROWS = """bsn;treatment;age
111222333;hip;70
111.222.333;hip;71
12345672;knee;64
012345672;hip;80
123456789;knee;50
;knee;55
123456782;;60
"""


def _lists(tmp_path, query):
    csv_path = tmp_path / "export.csv"
    csv_path.write_text(ROWS)
    store = DatasetStore(tmp_path / "state")
    import_csv(store, csv_path, SCHEMA)
    spec = parse_query(query, {"wachtlijst": SCHEMA})
    return compute_overlap_lists(spec, SCHEMA, store.current("wachtlijst").path)


def test_lists_normalised_and_deduplicated(tmp_path):
    lists = _lists(tmp_path, "SELECT overlap(bsn) FROM wachtlijst")
    assert lists.cells == [()]
    assert sorted(lists.identifiers[0]) == ["012345672", "111222333", "123456782"]
    # 123456789 fails the eleven-check and one value is missing.
    assert lists.invalid == [2]


def test_lists_per_cell_skip_missing_group(tmp_path):
    lists = _lists(tmp_path, "SELECT overlap(bsn) FROM wachtlijst GROUP BY treatment")
    by_cell = dict(zip(lists.cell_names, lists.identifiers, strict=True))
    assert lists.cell_names == ["treatment=hip", "treatment=knee"]
    assert sorted(by_cell["treatment=hip"]) == ["012345672", "111222333"]
    assert by_cell["treatment=knee"] == ["012345672"]
    assert lists.invalid == [0, 2]


def test_lists_after_filter(tmp_path):
    lists = _lists(tmp_path, "SELECT overlap(bsn) FROM wachtlijst WHERE age >= 70")
    assert sorted(lists.identifiers[0]) == ["012345672", "111222333"]
    assert lists.invalid == [0]

"""The command-line entry points, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

from linksight.demo import compare_records
from linksight.network import lung_schema_path
from linksight.overlap_reference import compare_overlap
from station.ledger import StationLedger
from station.store import DatasetStore


def _linksight(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "linksight", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_json_matches_pooled():
    completed = _linksight("demo", "--json")
    document = json.loads(completed.stdout)
    by_name = {q["name"]: q for q in document["queries"]}
    assert completed.returncode == 0, completed.stderr
    assert "deleted at the end unless the demo fails" in completed.stderr
    assert len(document["queries"]) >= 5
    assert by_name["sex by ECOG score"]["status"] == "blocked"
    assert by_name["sex by ECOG score"]["rule"] == "min_count"
    assert by_name["sex by ECOG score"]["federated"] == []
    assert by_name["poor performance score by sex"]["status"] == "released"
    two_clinics = by_name["waiting lists of the two largest clinics"]
    assert two_clinics["status"] == "released"
    assert by_name["waiting lists of three clinics"]["rule"] == "min_count"
    for query in document["queries"]:
        assert set(query) == {"name", "query", "status", "rule", "federated", "pooled"}
        if query["status"] == "released" and "overlap(" in query["query"]:
            assert compare_overlap(query["federated"], query["pooled"], []) == []
        elif query["status"] == "released":
            keys = [
                k
                for k in query["federated"][0]
                if not k.startswith(("count(", "sum(", "mean(", "var("))
            ]
            assert compare_records(query["federated"], query["pooled"], keys) == []


def _station_config(tmp_path):
    config = tmp_path / "station.toml"
    config.write_text(
        f"""
[station]
name = "station-x"
organisation = "Hospital X"
state_dir = "state"
hub_url = "http://127.0.0.1:9"
hub_public_key = "{"A" * 43}="

[mpc]
allow_plaintext = true

[[datasets]]
name = "lung"
schema = "{lung_schema_path().as_posix()}"
collaborations = ["lung-study"]
"""
    )
    return config


HEADER = "inst;time;status;age;sex;ph.ecog;ph.karno;pat.karno;meal.cal;wt.loss\n"


def test_station_import_rejects_bad_file_keeps_version(tmp_path):
    config = _station_config(tmp_path)
    good = tmp_path / "good.csv"
    good.write_text(
        HEADER + "3;306;2;74;1;1;90;100;1175;\n5;210;2;57;1;1;90;60;1150;11\n"
    )
    bad = tmp_path / "bad.csv"
    bad.write_text(
        HEADER + "3;306;2;74;1;1;90;100;1175;\n5;210;2;abc;1;1;90;60;1150;11\n"
    )

    first = _linksight(
        "station", "import", "--config", str(config), "--dataset", "lung", str(good)
    )
    second = _linksight(
        "station", "import", "--config", str(config), "--dataset", "lung", str(bad)
    )
    current = DatasetStore(tmp_path / "state").current("lung")
    imports = [
        record
        for record in StationLedger(tmp_path / "state").audit.records()
        if record["event"] == "dataset_imported"
    ]

    assert first.returncode == 0, first.stderr
    assert "imported 2 rows" in first.stdout
    assert second.returncode == 1
    assert 'line 3, column "age"' in second.stderr
    assert "version 1 stays in use" in second.stderr
    assert current is not None
    assert current.version == 1
    assert current.rows == 2
    assert [r["outcome"] for r in imports] == ["success", "rejected"]
    assert imports[0]["objects"]["file"] == "good.csv"
    assert imports[0]["objects"]["version"] == 1
    assert imports[0]["details"]["rows"] == 2
    assert "abc" not in str(imports[1])


def test_station_import_unknown_dataset_names_fix(tmp_path):
    config = _station_config(tmp_path)
    completed = _linksight(
        "station",
        "import",
        "--config",
        str(config),
        "--dataset",
        "lungs",
        str(tmp_path / "x.csv"),
    )
    assert completed.returncode == 2
    assert "dataset 'lungs' is not declared" in completed.stderr

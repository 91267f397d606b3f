"""Stations registering datasets, and members reading their schemas."""

from __future__ import annotations

import copy

from hub_network import COLLABORATION, LUNG_SCHEMA, Network

from governance.dataset_registry import first_difference
from linksight.schema import DatasetSchema


def test_datasets_list_schema_and_stations(network: Network) -> None:
    datasets = network.ok(
        "GET", f"/collaborations/{COLLABORATION}/datasets", network.scientist
    )
    assert [dataset["name"] for dataset in datasets] == ["lung"]
    assert datasets[0]["stations"] == ["st-a", "st-b", "st-c"]
    assert datasets[0]["schema"]["columns"][1]["name"] == "age"


def test_schema_mismatch_names_column(network: Network) -> None:
    changed = copy.deepcopy(LUNG_SCHEMA)
    changed["columns"][1]["max"] = 120
    station_d = network.ok(
        "POST",
        "/stations",
        network.admin,
        json={"name": "st-d", "organisation": "Hospital C"},
    )["token"]

    response = network.call(
        "PUT",
        f"/collaborations/{COLLABORATION}/datasets/lung",
        station_d,
        json={"schema": changed},
    )
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert detail["code"] == "schema_mismatch"
    assert detail["column"] == "age"
    assert detail["station"] == "st-a"
    assert "max 120.0 here but 110.0 at station 'st-a'" in detail["message"]


def test_schema_description_may_differ(network: Network) -> None:
    described = copy.deepcopy(LUNG_SCHEMA)
    described["columns"][1]["description"] = "age at inclusion, in years"

    response = network.call(
        "PUT",
        f"/collaborations/{COLLABORATION}/datasets/lung",
        network.stations["st-b"],
        json={"schema": described},
    )
    assert response.status_code == 200


def test_reregistration_replaces_schema(network: Network) -> None:
    changed = copy.deepcopy(LUNG_SCHEMA)
    changed["name"] = "cohort"
    network.ok(
        "PUT",
        f"/collaborations/{COLLABORATION}/datasets/cohort",
        network.stations["st-a"],
        json={"schema": changed},
    )
    changed["columns"][1]["max"] = 99
    network.ok(
        "PUT",
        f"/collaborations/{COLLABORATION}/datasets/cohort",
        network.stations["st-a"],
        json={"schema": changed},
    )

    datasets = network.ok(
        "GET", f"/collaborations/{COLLABORATION}/datasets", network.admin
    )
    cohort = next(dataset for dataset in datasets if dataset["name"] == "cohort")
    assert cohort["stations"] == ["st-a"]
    assert cohort["schema"]["columns"][1]["max"] == 99


def test_unchanged_reregistration_not_audited(network: Network) -> None:
    unchanged = copy.deepcopy(LUNG_SCHEMA)
    unchanged["name"] = "repeat"

    def register() -> None:
        network.ok(
            "PUT",
            f"/collaborations/{COLLABORATION}/datasets/repeat",
            network.stations["st-b"],
            json={"schema": unchanged},
        )

    def audited() -> list[dict]:
        records = network.ok("GET", "/audit", network.admin)
        return [
            r
            for r in records
            if r["event"] == "dataset.registered"
            and r["objects"].get("dataset") == "repeat"
        ]

    register()
    register()
    register()

    assert [r["outcome"] for r in audited()] == ["registered"]


def test_dataset_name_mismatch(network: Network) -> None:
    response = network.call(
        "PUT",
        f"/collaborations/{COLLABORATION}/datasets/lungs",
        network.stations["st-a"],
        json={"schema": LUNG_SCHEMA},
    )
    assert response.status_code == 422
    assert response.json()["detail"]["code"] == "name_mismatch"


def test_non_member_station_forbidden(network: Network) -> None:
    network.ok("POST", "/organisations", network.admin, json={"name": "Outsider"})
    outsider = network.ok(
        "POST",
        "/stations",
        network.admin,
        json={"name": "st-x", "organisation": "Outsider"},
    )["token"]

    response = network.call(
        "PUT",
        f"/collaborations/{COLLABORATION}/datasets/lung",
        outsider,
        json={"schema": LUNG_SCHEMA},
    )
    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "not_member"


def test_non_member_user_reading_forbidden(network: Network) -> None:
    network.ok("POST", "/organisations", network.admin, json={"name": "Outsider"})
    outsider = network.ok(
        "POST",
        "/users",
        network.admin,
        json={"name": "olga", "organisation": "Outsider", "roles": ["scientist"]},
    )["token"]

    response = network.call(
        "GET", f"/collaborations/{COLLABORATION}/datasets", outsider
    )
    assert response.status_code == 403
    assert network.ok("GET", "/collaborations", outsider) == []


def test_collaboration_detail_lists_stations(network: Network) -> None:
    detail = network.ok("GET", f"/collaborations/{COLLABORATION}", network.scientist)
    assert [station["name"] for station in detail["stations"]] == [
        "st-a",
        "st-b",
        "st-c",
    ]
    assert detail["stations"][0]["last_seen"] is not None
    assert detail["stations"][0]["version"] == "0.1.0"
    assert detail["rules"]["min_stations"] == 3
    assert detail["datasets"][0]["name"] == "lung"


def test_collaboration_unknown_member_not_found(network: Network) -> None:
    response = network.call(
        "POST",
        "/collaborations",
        network.admin,
        json={"name": "other", "members": ["Hospital A", "Nowhere"]},
    )
    assert response.status_code == 404
    assert "'Nowhere'" in response.json()["detail"]["message"]


def test_first_difference_missing_column() -> None:
    full = DatasetSchema.model_validate(LUNG_SCHEMA)
    shorter = DatasetSchema.model_validate(
        dict(LUNG_SCHEMA, columns=LUNG_SCHEMA["columns"][:3])
    )

    difference = first_difference(shorter, full, "station 'st-a'")
    assert difference is not None
    assert difference.column == "ph.ecog"
    assert "missing from this schema" in difference.message


def test_first_difference_renamed_column() -> None:
    full = DatasetSchema.model_validate(LUNG_SCHEMA)
    renamed = copy.deepcopy(LUNG_SCHEMA)
    renamed["columns"][2]["name"] = "gender"

    difference = first_difference(
        DatasetSchema.model_validate(renamed), full, "station 'st-a'"
    )
    assert difference is not None
    assert difference.column == "gender"
    assert "'sex'" in difference.message


def test_first_difference_equal_schemas() -> None:
    schema = DatasetSchema.model_validate(LUNG_SCHEMA)

    assert first_difference(schema, schema, "station 'st-a'") is None

"""A station's part of a vertical join: the layout and its own rows."""

from __future__ import annotations

import pandas as pd
import pytest
from nacl.public import PrivateKey

from linksight.network import vertical_schema_path
from linksight.query import parse_query
from linksight.result_encryption import encode_key
from linksight.schema import load_schema
from linksight.tasks import DisclosureSettings, JoinPlacement, Party, TaskSpec
from station.join_task import comparer_index, party_input, plan_join, read_owner_rows

SCHEMAS = {name: load_schema(vertical_schema_path(name)) for name in ("hospital", "gp")}


def _task(query: str, stations: dict[str, str]) -> TaskSpec:
    parties = [
        Party(station=name, organisation=name, host="127.0.0.1", port=9000 + i)
        for i, name in enumerate(["gp", "hospital", "insurer"])
    ]
    return TaskSpec(
        task_id="t",
        request_id="1",
        collaboration="vertical-study",
        query=parse_query(query, SCHEMAS),
        query_text=query,
        parties=parties,
        requester="sam",
        requester_organisation="Research Institute",
        requester_key=encode_key(PrivateKey.generate().public_key),
        disclosure=DisclosureSettings(),
        issued_at="2026-12-05T00:00:00+00:00",
        join=JoinPlacement(stations=stations, schemas=SCHEMAS),
    )


STATIONS = {"hospital": "hospital", "gp": "gp"}


def test_plan_lays_out_each_owner():
    task = _task(
        "SELECT count(*), mean(chol) FROM hospital JOIN gp USING (person_id) "
        "WHERE age > 50 GROUP BY sex",
        STATIONS,
    )

    plan = plan_join(task)
    config = party_input(task, plan, None, 1)

    hospital = plan.owners["hospital"]
    gp = plan.owners["gp"]
    assert hospital.indicators == ["hospital:where", "sex=Female", "sex=Male"]
    assert hospital.filtered
    assert gp.indicators == ["gp:where", "chol:present"]
    assert gp.values == ["chol"]
    assert gp.scales == [700.0]
    assert not gp.filtered
    assert [entry["owner"] for entry in config["layout"]] == [1, 0]
    assert config["comparer"] == 2
    assert config["means"] == [{"value": "chol", "present": "chol:present"}]
    assert "keys" not in config


def test_plan_ols_design_names():
    task = _task(
        "SELECT ols(trestbps ~ age + C(cp) + (sex == 'Male')) FROM hospital "
        "JOIN gp USING (person_id)",
        STATIONS,
    )

    plan = plan_join(task)

    assert plan.ols is not None
    assert plan.design_names == [
        "Intercept",
        "age",
        "C(cp)[T.atypical angina]",
        "C(cp)[T.non-anginal]",
        "C(cp)[T.asymptomatic]",
        "(sex == 'Male')",
    ]
    assert plan.ols["response"] == "trestbps"
    assert plan.ols["terms"][1] == "cp=atypical angina"
    assert plan.ols["present"] == [
        "age:present",
        "cp:present",
        "sex:present",
        "trestbps:present",
    ]
    assert plan.ols["factors"][0]["design_columns"] == [2, 3, 4]


def test_comparer_is_first_helper():
    task = _task("SELECT count(*) FROM hospital JOIN gp USING (person_id)", STATIONS)
    # When every party owns a dataset, the comparer is party 0.
    placement = JoinPlacement(
        stations={**STATIONS, "insurer": "insurer"}, schemas=SCHEMAS
    )
    without_helper = task.model_copy(update={"join": placement})

    assert comparer_index(task) == 2
    assert comparer_index(without_helper) == 0


def test_owner_rows_normalised_and_deduplicated(tmp_path):
    # Keys are upper-cased and stripped of spaces. P0002 occurs twice and an
    # empty key is invalid, so those three rows are dropped.
    frame = pd.DataFrame(
        {
            "person_id": ["p 0001", "P0002", "P0002", "", "P0003", "P0004"],
            "trestbps": [120, 130, 140, 150, None, 110],
            "chol": [200, 210, 220, 230, 240, None],
        }
    ).astype({"trestbps": "Int64", "chol": "Int64"})
    path = tmp_path / "gp.parquet"
    frame.to_parquet(path)
    task = _task(
        "SELECT mean(chol) FROM hospital JOIN gp USING (person_id) "
        "WHERE trestbps > 115",
        STATIONS,
    )
    plan = plan_join(task)

    rows = read_owner_rows(task, plan.owners["gp"], path)

    assert plan.owners["gp"].indicators == ["gp:where", "chol:present"]
    assert rows["keys"] == ["P0001", "P0003", "P0004"]
    assert rows["dropped_keys"] == 3
    assert rows["indicators"][0] == [1.0, 0.0, 0.0]
    assert rows["indicators"][1] == [1.0, 1.0, 0.0]
    assert rows["values"][0] == pytest.approx([200 / 700, 240 / 700, 0.0])

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
from station.join_task import (
    build_join_result,
    comparer_index,
    party_input,
    plan_join,
    read_owner_rows,
)

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
    assert config["dominance"] == {"n": 2, "k": 0.85, "p": 0.10}
    assert "keys" not in config


def test_counts_only_skip_dominance():
    task = _task(
        "SELECT count(*) FROM hospital JOIN gp USING (person_id) GROUP BY sex",
        STATIONS,
    )

    config = party_input(task, plan_join(task), None, 1)

    assert "dominance" not in config


def test_dominance_block_names_statistics():
    task = _task(
        "SELECT count(*), mean(chol), var(chol) FROM hospital JOIN gp "
        "USING (person_id) GROUP BY sex",
        STATIONS,
    )
    output = {
        "checks": [
            {"rule": "min_count", "statistic": "count(*)", "cell": ["Female"]},
            {"rule": "min_count", "statistic": "count(*)", "cell": ["Male"]},
            {
                "rule": "dominance",
                "statistic": "sum(chol)",
                "column": "chol",
                "cell": ["Female"],
                "passed": False,
            },
        ],
        "values": None,
    }
    for check in output["checks"][:2]:
        check["passed"] = True

    result = build_join_result(task, plan_join(task), output)

    assert result["status"] == "blocked"
    assert result["rows"] == []
    assert result["blocked"]["rule"] == "dominance"
    failed = [check for check in result["checks"] if not check["passed"]]
    assert failed[0]["statistic"] == "mean(chol), var(chol)"
    assert failed[0]["cell"] == {"sex": "Female"}
    message = result["blocked"]["message"]
    assert "mean(chol), var(chol) for sex=Female" in message
    assert "2 largest values" in message
    assert "85%" in message


def test_plan_ols_design_names():
    task = _task(
        "SELECT ols(trestbps ~ age + C(cp) + (sex == 'Male')) FROM hospital "
        "JOIN gp USING (person_id)",
        STATIONS,
    )

    plan = plan_join(task)

    assert plan.model is not None
    assert plan.design_names == [
        "Intercept",
        "age",
        "C(cp)[T.atypical angina]",
        "C(cp)[T.non-anginal]",
        "C(cp)[T.asymptomatic]",
        "(sex == 'Male')",
    ]
    assert plan.model["response"] == "trestbps"
    assert plan.model["terms"][1] == "cp=atypical angina"
    assert plan.model["present"] == [
        "age:present",
        "cp:present",
        "sex:present",
        "trestbps:present",
    ]
    assert plan.model["factors"][0]["design_columns"] == [2, 3, 4]


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


LOGIT = (
    "SELECT logit((num > 0) ~ age + (sex == 'Male')) FROM hospital "
    "JOIN insurer USING (person_id)"
)


def _logit_task() -> TaskSpec:
    schemas = {
        name: load_schema(vertical_schema_path(name))
        for name in ("hospital", "insurer")
    }
    task = _task("SELECT count(*) FROM hospital JOIN gp USING (person_id)", STATIONS)
    return task.model_copy(
        update={
            "query": parse_query(LOGIT, schemas),
            "query_text": LOGIT,
            "join": JoinPlacement(
                stations={"hospital": "hospital", "insurer": "insurer"},
                schemas=schemas,
            ),
        }
    )


def test_plan_logit_settings():
    task = _logit_task()

    plan = plan_join(task)
    config = party_input(task, plan, None, 1)

    assert plan.model is not None
    assert plan.design_names == ["Intercept", "age", "(sex == 'Male')"]
    assert config["logit"] is plan.model
    assert "ols" not in config
    assert plan.model["response"] == "(num > 0)"
    assert plan.model["min_level_count"] == task.disclosure.min_level_count
    assert plan.model["max_iterations"] == 25
    assert plan.model["factors"][0]["reference"] == "false"


def test_logit_result_table():
    task = _logit_task()
    output = {
        "checks": [
            {"rule": "min_count", "term": "model", "level": None, "passed": True},
            {"rule": "converged", "term": "model", "level": None, "passed": True},
        ],
        "joined": 200,
        "values": {
            "coefficients": [-3.0, 0.05, 1.2],
            "variances": [0.25, 0.0001, 0.04],
            "n": 180,
            "iterations": 5,
        },
    }

    result = build_join_result(task, plan_join(task), output)

    rows = {row["term"]: row for row in result["rows"]}
    assert result["status"] == "released"
    assert result["kind"] == "logit"
    assert result["joined"] == 200
    assert result["model"]["iterations"] == 5
    assert result["model"]["converged"] is True
    assert result["model"]["n"] == 180
    assert "z" in result["columns"]
    assert rows["age"]["std_err"] == pytest.approx(0.01)
    assert rows["age"]["z"] == pytest.approx(5.0)
    assert rows["(sex == 'Male')"]["coef"] == pytest.approx(1.2)


def test_logit_not_converged_result():
    task = _logit_task()
    output = {
        "checks": [
            {"rule": "converged", "term": "age", "level": None, "passed": False},
        ],
        "iterations": 25,
        "values": None,
    }

    result = build_join_result(task, plan_join(task), output)

    assert result["status"] == "blocked"
    assert result["blocked"]["rule"] == "converged"
    assert result["model"]["iterations"] == 25
    assert result["model"]["converged"] is False
    assert "age" in result["blocked"]["message"]

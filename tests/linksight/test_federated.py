"""The approved model families and the train(...) query, without Flower.

The federated updates are summed over the three lung stations' rows exactly
as SecAgg+ sums them (without its quantization), and compared with
statsmodels on the pooled rows.
"""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from linksight import federated
from linksight.network import (
    HEART_STATIONS,
    heart_data,
    heart_schema_path,
    lung_data,
    lung_schema_path,
    split_lung_by_institution,
)
from linksight.query import QueryError, format_query, parse_query
from linksight.rules import CollaborationRules, check_query
from linksight.schema import load_schema
from station.training import build_training_design, load_rows


@pytest.fixture(scope="module")
def schema():
    return load_schema(lung_schema_path())


@pytest.fixture(scope="module")
def station_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stations")
    paths = []
    for name, frame in split_lung_by_institution(lung_data()).items():
        path = folder / f"{name}.parquet"
        frame.to_parquet(path)
        paths.append(path)
    return paths


def _station_rows(query, schema, paths):
    spec = parse_query(query, {"lung": schema})
    design = build_training_design(spec, schema)
    return spec, design, [load_rows(spec, design, path) for path in paths]


def _federate(family, stations, hyper, rounds):
    theta = federated.initial_parameters(family, stations[0][0].shape[1], hyper)
    history = []
    for exchange in range(rounds + 1):
        total = sum(
            federated.local_update(family, theta, x, y, hyper) / federated.SUM_SCALE
            for x, y in stations
        )
        pooled = federated.split_sums(total * federated.SUM_SCALE)
        history.append(pooled)
        if exchange < rounds:
            theta = federated.next_parameters(family, theta, pooled, hyper)
    return theta, history


def test_logistic_newton_matches_pooled(schema, station_files):
    query = "SELECT train(logistic, status ~ age + C(sex) + ph.karno) FROM lung"
    _, design, stations = _station_rows(query, schema, station_files)
    hyper = federated.check_hyperparameters("logistic", {})
    theta, history = _federate("logistic", stations, hyper, rounds=6)
    x = np.vstack([s[0] for s in stations])
    y = np.concatenate([s[1] for s in stations])
    pooled = sm.GLM(y, x, family=sm.families.Binomial()).fit()
    scales = np.array(design.scales)
    assert design.names == ["Intercept", "age", "C(sex)[T.2]", "ph.karno"]
    np.testing.assert_allclose(theta / scales, pooled.params / scales, atol=1e-6)
    assert history[-1].n == len(y) == 227
    predicted = pooled.predict(x) >= 0.5
    assert history[-1].accuracy == pytest.approx(np.mean(predicted == (y == 1)))
    assert history[-1].mean_loss == pytest.approx(-pooled.llf / len(y), rel=1e-9)


def test_logistic_three_rounds_close(schema, station_files):
    query = "SELECT train(logistic, status ~ age + C(sex) + ph.karno) FROM lung"
    _, design, stations = _station_rows(query, schema, station_files)
    hyper = federated.check_hyperparameters("logistic", {})
    three, _ = _federate("logistic", stations, hyper, rounds=3)
    converged, _ = _federate("logistic", stations, hyper, rounds=8)
    scales = np.array(design.scales)
    # Three Newton steps from zero leave the intercept 1.7e-3 from the MLE here.
    np.testing.assert_allclose(three / scales, converged / scales, atol=5e-3)


def test_linear_one_round_is_ols(schema, station_files):
    query = "SELECT train(linear, age ~ ph.karno + C(sex) + wt.loss) FROM lung"
    _, design, stations = _station_rows(query, schema, station_files)
    hyper = federated.check_hyperparameters("linear", {})
    theta, history = _federate("linear", stations, hyper, rounds=1)
    x = np.vstack([s[0] for s in stations])
    y = np.concatenate([s[1] for s in stations])
    pooled = sm.OLS(y, x).fit()
    np.testing.assert_allclose(theta, pooled.params, rtol=1e-9, atol=1e-9)
    assert history[-1].mean_loss == pytest.approx(pooled.ssr / len(y))


def test_mlp_learns(schema, station_files):
    query = "SELECT train(mlp, status ~ age + C(sex) + ph.karno) FROM lung"
    _, _, stations = _station_rows(query, schema, station_files)
    hyper = federated.check_hyperparameters("mlp", {"hidden": 4})
    _, history = _federate("mlp", stations, hyper, rounds=5)
    assert history[-1].mean_loss < history[0].mean_loss
    majority = max(np.mean(np.concatenate([s[1] for s in stations])), 0.5)
    assert history[-1].accuracy >= majority - 0.05


def test_ridge_shrinks_coefficients(schema, station_files):
    query = "SELECT train(logistic, status ~ age + C(sex) + ph.karno) FROM lung"
    _, _, stations = _station_rows(query, schema, station_files)
    plain, _ = _federate("logistic", stations, {"l2": 0.0}, rounds=6)
    ridge, _ = _federate("logistic", stations, {"l2": 50.0}, rounds=6)
    assert np.linalg.norm(ridge[1:]) < np.linalg.norm(plain[1:])


def test_station_rows_capped():
    x = np.zeros((federated.MAX_STATION_ROWS + 1, 2))
    y = np.zeros(federated.MAX_STATION_ROWS + 1)
    with pytest.raises(federated.TrainingError, match="clipping range"):
        federated.local_update("linear", np.zeros(2), x, y, {"l2": 0.0})


@pytest.mark.parametrize(
    ("family", "values", "message"),
    [
        ("forest", {}, "unknown model family 'forest'"),
        ("logistic", {"hidden": 3}, "logistic takes no hyperparameter 'hidden'"),
        ("mlp", {"hidden": 0}, r"hidden = 0 is outside \[1, 64\]"),
        ("mlp", {"local_epochs": 2.5}, "must be an integer"),
        ("linear", {"l2": -1}, "outside"),
    ],
)
def test_hyperparameters_checked(family, values, message):
    with pytest.raises(federated.TrainingError, match=message):
        federated.check_hyperparameters(family, values)


def test_train_query_round_trips(schema):
    text = (
        "SELECT train(mlp, status ~ age + C(sex), rounds = 4, "
        "secure_aggregation = false, hidden = 6.0) FROM lung WHERE ph.ecog <= 2"
    )
    spec = parse_query(text, {"lung": schema})
    assert spec.kind == "train"
    assert spec.training is not None
    assert spec.training.family == "mlp"
    assert spec.training.rounds == 4
    assert spec.training.secure_aggregation is False
    assert spec.training.hyperparameters == {"hidden": 6.0}
    assert spec.columns_used()["status"] == {"label"}
    assert parse_query(format_query(spec), {"lung": schema}) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT train(logistic) FROM lung", "expected ',' and a formula"),
        ("SELECT train(logistic, status ~ age, rounds = 0) FROM lung", "rounds = 0"),
        ("SELECT train(logistic, status ~ age, rounds = 2.5) FROM lung", "whole"),
        ("SELECT train(logistic, status ~ age) FROM lung GROUP BY sex", "GROUP BY"),
        ("SELECT train(logistic, status ~ age, l2) FROM lung", "expected '='"),
        ("SELECT train(logistic, status ~ age, l2 = 'a') FROM lung", "number"),
        ("SELECT train(logistic, ph.ecog ~ age) FROM lung", "two levels"),
        ("SELECT count(*), train(logistic, status ~ age) FROM lung", "only item"),
        ("SELECT train(logistic, status ~ age, l2 = 1, l2 = 2) FROM lung", "twice"),
    ],
)
def test_train_query_errors(schema, text, message):
    with pytest.raises(QueryError, match=message):
        parse_query(text, {"lung": schema})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT train(forest, status ~ age) FROM lung", "unknown model family"),
        ("SELECT train(linear, status ~ age) FROM lung", "numeric response"),
        ("SELECT train(logistic, age ~ ph.karno) FROM lung", "two levels"),
        ("SELECT train(logistic, status ~ age, hidden = 3) FROM lung", "no hyper"),
    ],
)
def test_train_rules(schema, text, message):
    spec = parse_query(text, {"lung": schema})
    violation = check_query(spec, schema, CollaborationRules(), 3)
    assert violation is not None
    assert violation.rule == "approved_models"
    assert message in violation.message


def test_train_not_allowed(schema):
    spec = parse_query(
        "SELECT train(logistic, status ~ age) FROM lung", {"lung": schema}
    )
    rules = CollaborationRules(allowed_analyses=["aggregate"])
    violation = check_query(spec, schema, rules, 3)
    assert violation is not None
    assert violation.rule == "allowed_analyses"


def test_heart_logistic_matches_pooled(tmp_path):
    from linksight.network import HEART_STATIONS, heart_data, heart_schema_path

    schema = load_schema(heart_schema_path())
    frame = heart_data()
    paths = []
    for station, (hospital, _) in HEART_STATIONS.items():
        path = tmp_path / f"{station}.parquet"
        frame[frame["dataset"] == hospital].to_parquet(path)
        paths.append(path)
    query = (
        "SELECT train(logistic, exang ~ age + C(sex) + thalch + oldpeak + C(cp)) "
        "FROM heart"
    )
    spec = parse_query(query, {"heart": schema})
    design = build_training_design(spec, schema)
    stations = [load_rows(spec, design, path) for path in paths]
    hyper = federated.check_hyperparameters("logistic", {})
    theta, history = _federate("logistic", stations, hyper, rounds=6)
    x = np.vstack([s[0] for s in stations])
    y = np.concatenate([s[1] for s in stations])
    pooled = sm.GLM(y, x, family=sm.families.Binomial()).fit()
    scales = np.array(design.scales)
    assert history[-1].n == len(y) == 857
    np.testing.assert_allclose(theta / scales, pooled.params / scales, atol=1e-6)
    predicted = pooled.predict(x) >= 0.5
    assert history[-1].accuracy == pytest.approx(np.mean(predicted == (y == 1)))


HEART_QUERY = (
    "SELECT train(logistic, (num > 0) ~ age + (sex == 'Male') + "
    "(cp == 'asymptomatic'), rounds = 4, holdout = 0.2, holdout_seed = 7) FROM heart"
)


@pytest.fixture(scope="module")
def heart_stations(tmp_path_factory):
    """The heart query's rows at each of the four hospitals, in file order."""
    schema = load_schema(heart_schema_path())
    spec = parse_query(HEART_QUERY, {"heart": schema})
    design = build_training_design(spec, schema)
    folder = tmp_path_factory.mktemp("heart")
    frame = heart_data()
    rows = []
    for name, (hospital, _) in HEART_STATIONS.items():
        path = folder / f"{name}.parquet"
        frame[frame["dataset"] == hospital].to_parquet(path)
        rows.append(load_rows(spec, design, path))
    return spec, design, rows


def test_heart_design_has_conditions(heart_stations):
    spec, design, rows = heart_stations
    frame = heart_data()
    x = np.vstack([x for x, _ in rows])
    y = np.concatenate([y for _, y in rows])
    assert design.names == [
        "Intercept",
        "age",
        "(sex == 'Male')",
        "(cp == 'asymptomatic')",
    ]
    assert spec.training is not None
    assert spec.training.holdout == 0.2
    assert spec.training.holdout_seed == 7
    assert len(y) == 920
    assert y.sum() == (frame["num"] > 0).sum()
    assert x[:, 2].sum() == (frame["sex"] == "Male").sum()
    assert x[:, 3].sum() == (frame["cp"] == "asymptomatic").sum()


def test_holdout_mask_deterministic():
    first = federated.holdout_mask(123, 0.2, 7)
    again = federated.holdout_mask(123, 0.2, 7)
    other = federated.holdout_mask(123, 0.2, 8)
    assert first.sum() == 25
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert federated.holdout_mask(10, 0.0, 7).sum() == 0
    with pytest.raises(federated.TrainingError, match=r"holdout = 0.6"):
        federated.holdout_mask(10, 0.6, 7)


def test_heart_holdout_metrics_match_pooled(heart_stations):
    spec, _, rows = heart_stations
    hyper = federated.check_hyperparameters("logistic", {})
    split = []
    for x, y in rows:
        mask = federated.holdout_mask(len(y), 0.2, 7)
        split.append((x[~mask], y[~mask], x[mask], y[mask]))

    theta = np.zeros(4)
    for exchange in range(5):
        total = sum(
            federated.local_update("logistic", theta, x_fit, y_fit, hyper, held_out)
            / federated.SUM_SCALE
            for x_fit, y_fit, *held_out in split
        )
        pooled = federated.split_sums(total * federated.SUM_SCALE)
        if exchange < 4:
            theta = federated.next_parameters("logistic", theta, pooled, hyper)

    x_train = np.vstack([s[0] for s in split])
    y_train = np.concatenate([s[1] for s in split])
    x_test = np.vstack([s[2] for s in split])
    y_test = np.concatenate([s[3] for s in split])
    fit = sm.Logit(y_train, x_train).fit(disp=0)
    predicted = fit.predict(x_test)

    # Four Newton steps from zero leave about 1e-6 of each coefficient.
    np.testing.assert_allclose(theta, fit.params, rtol=1e-5)
    assert pooled.n == len(y_train) == 735
    assert pooled.test_n == len(y_test) == 185
    assert pooled.test_accuracy == pytest.approx(
        np.mean((predicted >= 0.5) == (y_test == 1))
    )
    test_loss = -np.mean(
        y_test * np.log(predicted) + (1 - y_test) * np.log(1 - predicted)
    )
    assert pooled.test_mean_loss == pytest.approx(test_loss, rel=1e-5)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("holdout = 0.7", "holdout = 0.7 must be a share"),
        ("holdout = true", "must be a share"),
        ("holdout_seed = 1.5", "holdout_seed = 1.5 must be a whole number"),
        ("holdout_seed = -1", "must be a whole number"),
    ],
)
def test_holdout_settings_checked(setting, message):
    schema = load_schema(heart_schema_path())
    text = f"SELECT train(logistic, (num > 0) ~ age, {setting}) FROM heart"
    with pytest.raises(QueryError, match=message):
        parse_query(text, {"heart": schema})


def test_holdout_query_round_trips():
    schema = load_schema(heart_schema_path())
    spec = parse_query(HEART_QUERY, {"heart": schema})
    assert parse_query(format_query(spec), {"heart": schema}) == spec
    assert check_query(spec, schema, CollaborationRules(), 4) is None

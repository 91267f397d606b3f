"""The secure 2^-|t| and logistic function with three real MPyC parties."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mpc_parties import loopback_parties

from station.secure_sigmoid import (
    COEFFICIENTS,
    POLYNOMIAL_ERROR,
    error_bound,
    integer_bits,
)

PARTY_SCRIPT = Path(__file__).with_name("sigmoid_party.py")


def _run(tmp_path: Path, values: np.ndarray, bound: float, fraction_bits: int) -> dict:
    parties = loopback_parties(3)
    processes = []
    for index in range(3):
        config = {
            "parties": parties,
            "index": index,
            "fraction_bits": fraction_bits,
            "bound": bound,
            "count": len(values),
        }
        if index == 0:
            config["values"] = values.tolist()
        input_path = tmp_path / f"in{index}.json"
        input_path.write_text(json.dumps(config))
        log = (tmp_path / f"party{index}.log").open("w")
        command = [
            sys.executable,
            str(PARTY_SCRIPT),
            str(input_path),
            str(tmp_path / f"out{index}.json"),
        ]
        processes.append(subprocess.Popen(command, stdout=log, stderr=log))
        log.close()
    for process in processes:
        assert process.wait(timeout=120) == 0
    return json.loads((tmp_path / "out0.json").read_text())


def test_sigmoid_matches_numpy(tmp_path):
    # Prepare: both signs, zero, whole numbers, values just off them, and
    # values beyond 32, where 2^-|t| is below 2^-32.
    values = np.concatenate(
        [
            np.linspace(-40.0, 40.0, 41),
            [0.0, 1e-9, -1e-9, 0.5, -0.5, 2.999999, -3.000001, 63.5, -63.9],
            [2.0**-6, 1 - 2.0**-6, -0.0151, 7.3, 2.0**-7],
        ]
    )
    fraction_bits = 48

    # Execute.
    output = _run(tmp_path, values, 64.0, fraction_bits)

    # Assert: every value within the stated bound of float64 NumPy.
    bound = error_bound(fraction_bits)
    power = np.array(output["power"])
    logistic = np.array(output["sigmoid"])
    assert bound < 2e-10
    assert np.abs(power - np.exp2(-np.abs(values))).max() <= bound
    assert np.abs(logistic - 1 / (1 + np.exp2(-values))).max() <= bound
    assert output["negative"] == [float(v < 0) for v in values]


@pytest.mark.parametrize(
    ("fraction_bits", "bound", "message"),
    [
        (48, 2.0**50, "needs 51 integer bits, more than the 46 that SecFxp(96, 48)"),
        (4, 1.0, "SecFxp(8, 4) has 4 fraction bits, fewer than the 6"),
    ],
)
def test_sigmoid_type_rejected(tmp_path, fraction_bits, bound, message):
    output = _run(tmp_path, np.array([0.5, -0.5]), bound, fraction_bits)

    assert message in output["error"]


def test_polynomial_error_below_bound():
    # The polynomial covers the remainder below the top 6 fraction bits.
    grid = np.linspace(0.0, 2.0**-6, 100001)

    interpolant = np.polynomial.Polynomial(COEFFICIENTS)(grid)

    assert np.abs(interpolant - np.exp2(-grid)).max() <= POLYNOMIAL_ERROR
    assert POLYNOMIAL_ERROR < 1e-10


@pytest.mark.parametrize(
    ("bound", "bits"), [(0.0, 2), (1.0, 2), (1.5, 3), (30.0, 6), (61.0, 6), (61.5, 7)]
)
def test_integer_bits_cover_bound(bound, bits):
    assert integer_bits(bound) == bits
    assert 2**bits > math.ceil(bound) + 2


@pytest.mark.parametrize("bound", [-1.0, float("inf"), float("nan")])
def test_integer_bits_bound_rejected(bound):
    with pytest.raises(ValueError, match="must be a finite number >= 0"):
        integer_bits(bound)

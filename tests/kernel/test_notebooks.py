"""The example notebooks, run against the session playground by a real kernel.

nbval reruns each notebook and compares every output with the stored one,
after notebooks/sanitize.cfg has replaced request ids, audit record numbers,
durations and ports. A cell that raises fails the run unless it is tagged
raises-exception, and a UsageError that a magic prints without an error
output differs from the stored output, so it fails too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
# Seconds a notebook's nbval run may take. The federated training notebook
# waits for a Flower run of five exchanges: 200 s on two cores at a load
# average of 14.
RUN_SECONDS = {"federated_training": 840}


def test_every_analysis_has_notebook():
    assert [path.name for path in PATHS] == [
        "descriptive_statistics.ipynb",
        "federated_training.ipynb",
        "regression.ipynb",
        "survival.ipynb",
        "vertical_join.ipynb",
        "waiting_list.ipynb",
    ]


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.stem)
def test_only_tagged_cells_show_errors(path):
    # nbval below reruns every notebook and compares each output with the
    # stored one, so the stored errors are the ones a run raises.
    notebook = nbformat.read(path, as_version=4)

    errors = [
        (index, output["ename"])
        for index, cell in enumerate(notebook.cells)
        for output in cell.get("outputs", [])
        if output["output_type"] == "error"
    ]
    tagged = [
        index
        for index, cell in enumerate(notebook.cells)
        if "raises-exception" in cell.get("metadata", {}).get("tags", [])
    ]

    usage_errors = [
        index
        for index, cell in enumerate(notebook.cells)
        for output in cell.get("outputs", [])
        if output["output_type"] == "stream" and "UsageError" in output["text"]
    ]

    assert [index for index, _ in errors] == tagged
    assert {name for _, name in errors} <= {"DisclosureBlockedError"}
    assert usage_errors == []


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.stem)
def test_notebook_matches_stored_outputs(playground, path):
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval",
            "--nbval-current-env",
            f"--nbval-sanitize-with={NOTEBOOKS / 'sanitize.cfg'}",
            "-p",
            "no:cacheprovider",
            "-q",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS.get(path.stem, 280),
        env=playground.environment(),
    )

    assert completed.returncode == 0, completed.stdout[-5000:]
    assert " passed" in completed.stdout, completed.stdout[-5000:]

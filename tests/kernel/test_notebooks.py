"""The example notebooks, run against the session playground by a real kernel.

nbclient fails on any error a cell raises, including a UsageError that a
magic prints without an error output; only cells tagged raises-exception
may raise. nbval reruns each notebook and compares every output with the
stored one, after notebooks/sanitize.cfg has replaced request ids, audit
record numbers, durations and ports.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_every_analysis_has_notebook():
    assert [path.name for path in PATHS] == [
        "descriptive_statistics.ipynb",
        "regression.ipynb",
        "survival.ipynb",
        "waiting_list.ipynb",
    ]


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.stem)
def test_notebook_runs_with_nbclient(playground, path):
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
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
    assert [index for index, _ in errors] == tagged
    assert {name for _, name in errors} <= {"DisclosureBlockedError"}


def test_notebooks_match_stored_outputs(playground):
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
            str(NOTEBOOKS),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=playground.environment(),
    )
    assert completed.returncode == 0, completed.stdout[-5000:]
    assert f"{len(PATHS)} failed" not in completed.stdout

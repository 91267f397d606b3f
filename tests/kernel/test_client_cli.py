"""The scientist's `linksight` commands, and `linksight playground` as a process."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
from typer.testing import CliRunner

from linksight.cli import app

runner = CliRunner()


def test_query_command_prints_result(playground):
    outcome = runner.invoke(
        app, ["query", "SELECT count(*) FROM lung GROUP BY sex", "--purpose", "cli"]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "released; 2 of 2 disclosure checks passed" in outcome.stdout
    assert re.search(r"^1\s+138$", outcome.stdout, re.MULTILINE)


def test_query_command_blocked_exits_3(playground):
    outcome = runner.invoke(app, ["query", "SELECT crosstab(sex, ph.ecog) FROM lung"])
    assert outcome.exit_code == 3
    assert "rule min_count" in outcome.stderr


def test_query_command_invalid_exits_1(playground):
    outcome = runner.invoke(app, ["query", "SELECT mean(agee) FROM lung"])
    assert outcome.exit_code == 1
    assert "error: invalid query: unknown column 'agee'" in outcome.stderr
    assert "did you mean 'age'?" in outcome.stderr


def test_query_over_hub_limit_exits_1(playground):
    query = "SELECT count(*) FROM lung WHERE age IN (" + ", ".join(["60"] * 2600)
    query += ") GROUP BY sex"

    outcome = runner.invoke(app, ["query", query])

    assert outcome.exit_code == 1
    assert outcome.stderr == (
        f"error: invalid request: the query is {len(query):,} characters long, "
        "more than the hub's limit of 10,000; shorten it, or split the analysis "
        "into several queries\n"
    )


def test_no_wait_rejected_at_submission_exits_3(playground):
    query = "SELECT overlap(subject_id) FROM covid AT ('station-a', 'station-x')"

    outcome = runner.invoke(
        app, ["query", query, "--collaboration", "waiting-lists", "--no-wait"]
    )

    assert outcome.exit_code == 3, outcome.output
    assert "rule known_stations" in outcome.stderr
    assert "station-x" in outcome.stderr
    assert "waits for its result" not in outcome.stdout


def test_status_of_rule_rejection_asks_nobody(playground):
    query = "SELECT overlap(subject_id) FROM covid AT ('station-a', 'station-x')"
    submitted = runner.invoke(app, ["query", query, "-c", "waiting-lists"])
    request_id = re.search(r"request (\d+)", submitted.stderr).group(1)

    outcome = runner.invoke(app, ["status", request_id])

    assert outcome.exit_code == 0, outcome.output
    assert "pending" not in outcome.stdout
    assert "not asked" in outcome.stdout
    assert "station-a not started" in outcome.stdout


def test_query_timeout_not_positive(playground):
    for value in ("0", "-1"):
        outcome = runner.invoke(
            app, ["query", "SELECT count(*) FROM lung", "--timeout", value]
        )
        assert outcome.exit_code == 2
        assert f"invalid timeout {value}" in outcome.stderr


def test_query_timeout_then_result(playground):
    query = "SELECT count(*) FROM lung WHERE age >= 60 GROUP BY sex"
    outcome = runner.invoke(app, ["query", query, "--timeout", "0.2"])
    assert outcome.exit_code == 4, outcome.output
    request_id = re.search(r"request (\d+) is still", outcome.stderr).group(1)
    assert f"`linksight result {request_id}` waits again" in outcome.stderr
    assert "wait(" not in outcome.stderr

    picked_up = runner.invoke(app, ["result", request_id, "--timeout", "120"])
    assert picked_up.exit_code == 0, picked_up.output
    assert "released" in picked_up.stdout


def test_revoke_command_names_the_state_that_prevents_it(playground):
    outcome = runner.invoke(app, ["query", "SELECT count(*) FROM lung"])
    assert outcome.exit_code == 0, outcome.output
    request_id = re.search(r"request (\d+)", outcome.stdout).group(1)
    revoked = runner.invoke(app, ["revoke", request_id])
    assert revoked.exit_code == 1
    assert request_id in revoked.stderr


def test_schema_command_lists_columns(playground):
    outcome = runner.invoke(app, ["schema", "lung"])
    assert outcome.exit_code == 0
    assert re.search(r"^sex\s+categorical\s+group by, filter", outcome.stdout, re.M)


def _federated_extensions(lab_page: str) -> list[str]:
    """Return the names of the prebuilt extensions a JupyterLab page loads."""
    match = re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
        lab_page,
        re.DOTALL,
    )
    assert match is not None, lab_page[:500]
    config = json.loads(match.group(1))
    return [extension["name"] for extension in config["federated_extensions"]]


def _ignore_sigint() -> None:
    # A shell starts a background job with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_playground_starts_lab_and_stops_all(tmp_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "linksight",
            "playground",
            "--no-browser",
            "--no-auto-approve",
            "--state-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_ignore_sigint,
    )
    lines = []
    url = None
    deadline = time.monotonic() + 120
    assert process.stdout is not None
    while time.monotonic() < deadline and url is None:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("JupyterLab: "):
            url = line.split(" ", 1)[1].strip()
    children = psutil.Process(process.pid).children(recursive=True)
    try:
        assert url is not None, "".join(lines)
        assert url.startswith("http://127.0.0.1:")
        assert "/lab/tree/descriptive_statistics.ipynb?token=" in url
        token = url.split("token=")[1]
        base = url.split("/lab")[0]
        status = httpx.get(f"{base}/api/status", params={"token": token})
        contents = httpx.get(f"{base}/api/contents", params={"token": token})
        refused = httpx.get(f"{base}/api/status")
        names = [item["name"] for item in contents.json()["content"]]
        lab_page = httpx.get(f"{base}/lab", params={"token": token})
        panel = httpx.get(f"{base}/linksight/status", params={"token": token})
        assert status.status_code == 200
        assert refused.status_code == 403
        assert "descriptive_statistics.ipynb" in names
        assert "linksight-panel" in _federated_extensions(lab_page.text)
        assert panel.json()["connected"] is True
        assert panel.json()["user"]["name"] == "sam"
        assert (tmp_path / "client.toml").stat().st_mode & 0o777 == 0o600
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    alive = [child.pid for child in _still_running(children)]
    assert len(children) >= 5  # hub, three stations, JupyterLab
    assert alive == []


def _still_running(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Return the processes still running 15 s after the playground exited.

    Grandchildren such as a station's SuperNode stop after their parent
    does, so on a loaded machine they may end a moment after the playground.
    """
    _gone, alive = psutil.wait_procs(processes, timeout=15)
    return alive


def _read_until(process: subprocess.Popen[str], prefix: str, lines: list[str]) -> None:
    """Read the playground's output into `lines` up to a line containing `prefix`."""
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if prefix in line:
            return
    raise AssertionError(f"no line with {prefix!r} in:\n{''.join(lines)}")


def test_playground_survives_station_stops_at_hub_exit():
    # No --state-dir, so that the playground decides whether to keep its
    # temporary folder.
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "linksight",
            "playground",
            "--no-lab",
            "--no-dashboard",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # A playground that stays up when it should stop would block the reads.
    watchdog = threading.Timer(300, process.kill)
    watchdog.start()
    lines: list[str] = []
    root = None
    try:
        _read_until(process, "state and logs in ", lines)
        root = Path(lines[-1].split("state and logs in ", 1)[1].strip())
        _read_until(process, "press Ctrl-C", lines)
        children = psutil.Process(process.pid).children(recursive=True)
        insurer = next(
            c for c in children if "insurer/station.toml" in " ".join(c.cmdline())
        )
        insurer.kill()
        _read_until(process, "station insurer exited", lines)
        # The lung study's stations still run queries.
        query = subprocess.run(
            [
                sys.executable,
                "-m",
                "linksight",
                "query",
                "SELECT count(*) FROM lung GROUP BY sex",
            ],
            capture_output=True,
            text=True,
            env=dict(os.environ, LINKSIGHT_CONFIG=str(root / "client.toml")),
            timeout=240,
        )
        running_after_station = process.poll() is None
        hub = next(
            c for c in children if "hub" in c.cmdline() and "serve" in c.cmdline()
        )
        hub.kill()
        output, _ = process.communicate(timeout=60)
        output = "".join(lines) + output

        assert running_after_station
        assert query.returncode == 0, query.stdout + query.stderr
        assert "station insurer exited with status -9" in output
        assert str(root / "logs" / "insurer.log") in output
        assert f"station serve --config {root / 'insurer' / 'station.toml'}" in output
        assert process.returncode == 1
        assert "the hub exited with status -9" in output
        # The demo stewards warn once about the lost hub, not once per poll.
        assert output.count("demo stewards cannot reach the hub") <= 1
        assert output.count("Connection refused") <= 1
        assert "hub.log" in output
        assert f"kept the state and logs in {root}\n" in output
        assert (root / "logs" / "insurer.log").is_file()
        assert [c.pid for c in _still_running(children)] == []

        again = subprocess.run(
            [sys.executable, "-m", "linksight", "playground", "--state-dir", str(root)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert again.returncode == 2
        assert f"the state folder {root} contains an earlier playground" in (
            again.stderr
        )
        assert "pass --state-dir with another folder" in again.stderr
        assert "starting the hub" not in again.stdout
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


def test_playground_state_folder_not_empty(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    again = subprocess.run(
        [sys.executable, "-m", "linksight", "playground", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert again.returncode == 2
    assert "is not empty (it contains notes.txt)" in again.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


def test_playground_state_folder_is_file(tmp_path):
    state = tmp_path / "state"
    state.write_text("not a folder")

    outcome = runner.invoke(app, ["playground", "--state-dir", str(state)])

    assert outcome.exit_code == 2
    assert outcome.stderr == (
        f"error: the state folder {state} is a file, not a folder; pass "
        "--state-dir with a new or empty folder\n"
    )

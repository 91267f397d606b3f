"""`python -m linksight.serve_network`: the network that other languages' tests use."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import time

import httpx
import pandas as pd
import pytest

from linksight.network import lung_data
from linksight.serve_network import CONNECTION_FILE


def _wait_for_file(path, process, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"serve_network exited with status {process.returncode}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.2)


def test_serve_network_writes_connection_and_stops(tmp_path):
    state_dir = tmp_path / "network"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "linksight.serve_network",
            "--state-dir",
            str(state_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        connection_path = state_dir / CONNECTION_FILE
        _wait_for_file(connection_path, process)
        mode = stat.S_IMODE(connection_path.stat().st_mode)
        connection = json.loads(connection_path.read_text())
        hub_url = connection["hub_url"]
        scientist = httpx.get(
            f"{hub_url}/users/me",
            headers={"Authorization": f"Bearer {connection['scientist']['token']}"},
        ).json()
        stewards = [
            httpx.get(
                f"{hub_url}/users/me",
                headers={"Authorization": f"Bearer {steward['token']}"},
            ).json()
            for steward in connection["stewards"]
        ]
        pooled = pd.read_csv(connection["pooled_csv"]).astype("Int64")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)

    assert mode == 0o600
    assert hub_url.startswith("http://127.0.0.1:")
    assert connection["collaboration"] == "lung-study"
    assert scientist["name"] == connection["scientist"]["name"]
    assert scientist["roles"] == ["scientist"]
    assert [s["name"] for s in stewards] == ["steward-a", "steward-b", "steward-c"]
    assert all(s["roles"] == ["steward"] for s in stewards)
    assert [s["station"] for s in connection["stewards"]] == [
        "station-a",
        "station-b",
        "station-c",
    ]
    pd.testing.assert_frame_equal(pooled, lung_data().reset_index(drop=True))
    assert process.returncode == 0, stderr.decode()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{hub_url}/health", timeout=2)

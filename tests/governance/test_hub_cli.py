"""The hub CLI as a real process: init, public-key, and serve over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

HUB = [sys.executable, "-m", "governance"]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_hub(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run a hub CLI command to completion and return its outcome."""
    return subprocess.run(
        [*HUB, *arguments], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """The state directory of a hub initialised with admin 'root'."""
    return tmp_path / "hub"


@pytest.fixture
def admin_token(state_dir: Path) -> str:
    """Run `init` and return the token from its last line of output."""
    init = run_hub(
        "init",
        "--state-dir",
        str(state_dir),
        "--admin",
        "root",
        "--organisation",
        "Network operator",
    )
    assert init.returncode == 0, init.stderr
    return init.stdout.strip().splitlines()[-1]


@pytest.fixture
def hub_url(state_dir: Path, admin_token: str, tmp_path: Path) -> Iterator[str]:
    """Serve the hub on a free loopback port and return its URL."""
    port = free_port()
    log = (tmp_path / "hub.log").open("w")
    # The concurrency test sends 24 bad tokens from one address on purpose.
    environment = dict(os.environ, LINKSIGHT_HUB_AUTH_FAILURE_LIMIT="100")
    process = subprocess.Popen(
        [*HUB, "serve", "--state-dir", str(state_dir), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=environment,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"the hub exited: {(tmp_path / 'hub.log').read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the hub did not answer /health within 30 s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def test_init_prints_token_last(admin_token: str) -> None:
    assert len(admin_token) >= 43
    assert " " not in admin_token


def test_init_twice_refused(state_dir: Path, admin_token: str) -> None:
    again = run_hub("init", "--state-dir", str(state_dir), "--admin", "other")
    assert again.returncode == 1
    assert "already has users" in again.stderr


def test_serve_uninitialised_refused(tmp_path: Path) -> None:
    missing = tmp_path / "never-made"
    serve = run_hub("serve", "--state-dir", str(missing))
    assert serve.returncode == 1
    assert serve.stderr == (
        f"error: the hub database {missing / 'hub.db'} does not exist, so this "
        f"hub was never initialised; run `linksight hub init --state-dir {missing} "
        "--admin NAME` first, which creates it\n"
    )
    assert not missing.exists()


def test_serve_empty_folder_creates_nothing(tmp_path: Path) -> None:
    serve = run_hub("serve", "--state-dir", str(tmp_path))
    assert serve.returncode == 1
    assert "was never initialised" in serve.stderr
    assert list(tmp_path.iterdir()) == []


def test_serve_database_without_users_refused(tmp_path: Path) -> None:
    (tmp_path / "hub.db").touch()
    serve = run_hub("serve", "--state-dir", str(tmp_path))
    assert serve.returncode == 1
    assert "has no users; run `linksight hub init --state-dir" in serve.stderr


def test_public_key_uninitialised_refused(tmp_path: Path) -> None:
    result = run_hub("public-key", "--state-dir", str(tmp_path / "empty"))
    assert result.returncode == 1
    assert "no hub signing key" in result.stderr


def test_served_hub_over_http(state_dir: Path, admin_token: str, hub_url: str) -> None:
    headers = {"Authorization": f"Bearer {admin_token}"}

    health = httpx.get(f"{hub_url}/health")
    assert health.json()["status"] == "ok"
    me = httpx.get(f"{hub_url}/users/me", headers=headers)
    assert me.json()["roles"] == ["admin"]
    assert me.json()["organisation"] == "Network operator"
    anonymous = httpx.get(f"{hub_url}/users/me")
    assert anonymous.status_code == 401
    created = httpx.post(
        f"{hub_url}/organisations", headers=headers, json={"name": "Hospital A"}
    )
    assert created.status_code == 201
    served_key = httpx.get(f"{hub_url}/public-key", headers=headers).json()
    printed_key = run_hub("public-key", "--state-dir", str(state_dir)).stdout.strip()
    assert served_key["public_key"] == printed_key
    docs = httpx.get(f"{hub_url}/docs")
    assert docs.status_code == 200


def test_concurrent_writes_keep_chain(admin_token: str, hub_url: str) -> None:
    headers = {"Authorization": f"Bearer {admin_token}"}

    def create(index: int) -> int:
        with httpx.Client(base_url=hub_url, timeout=30) as client:
            client.get("/organisations", headers={"Authorization": "Bearer wrong"})
            response = client.post(
                "/organisations", headers=headers, json={"name": f"GP {index}"}
            )
            return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(create, range(24)))

    assert statuses == [201] * 24
    names = [
        o["name"] for o in httpx.get(f"{hub_url}/organisations", headers=headers).json()
    ]
    assert len(names) == 25
    report = httpx.get(f"{hub_url}/audit/verify", headers=headers).json()
    assert report["ok"] is True
    assert report["records"] == 1 + 2 * 24

"""Fixtures for hub tests: a real hub on a SQLite file, and a small network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hub_network import COLLABORATION, HOSPITALS, LUNG_SCHEMA, RESEARCH, Network

from governance.app import create_app
from governance.bootstrap import initialise_hub
from governance.config import HubSettings


@pytest.fixture
def settings(tmp_path: Path) -> HubSettings:
    """Settings for a hub whose state lives in `tmp_path`."""
    return HubSettings(state_dir=tmp_path / "hub")


@pytest.fixture
def admin_token(settings: HubSettings) -> str:
    """Initialise the hub and return the first admin's token."""
    return initialise_hub(settings, "root", "Network operator")


@pytest.fixture
def client(settings: HubSettings, admin_token: str) -> Iterator[TestClient]:
    """A client of the hub application, with its lifespan running."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def bare_network(
    client: TestClient, settings: HubSettings, admin_token: str
) -> Network:
    """A hub with the organisations, users and stations, but no collaboration."""
    network = Network(client=client, settings=settings, admin=admin_token)
    for organisation in [*HOSPITALS.values(), RESEARCH]:
        network.ok("POST", "/organisations", admin_token, json={"name": organisation})
    network.scientist = network.ok(
        "POST",
        "/users",
        admin_token,
        json={"name": "sam", "organisation": RESEARCH, "roles": ["scientist"]},
    )["token"]
    network.scientist_key = network.register_result_key(network.scientist)
    network.dual = network.ok(
        "POST",
        "/users",
        admin_token,
        json={
            "name": "dual",
            "organisation": "Hospital A",
            "roles": ["scientist", "steward"],
        },
    )["token"]
    network.register_result_key(network.dual)
    for index, (station, organisation) in enumerate(HOSPITALS.items()):
        steward = f"steward-{station[-1]}"
        network.stewards[organisation] = network.ok(
            "POST",
            "/users",
            admin_token,
            json={"name": steward, "organisation": organisation, "roles": ["steward"]},
        )["token"]
        network.stations[station] = network.ok(
            "POST",
            "/stations",
            admin_token,
            json={"name": station, "organisation": organisation},
        )["token"]
        network.ok(
            "PUT",
            "/stations/me",
            network.stations[station],
            json={
                "mpc_host": "127.0.0.1",
                "mpc_port": 11365 + index,
                "version": "0.1.0",
            },
        )
    return network


@pytest.fixture
def network(bare_network: Network) -> Network:
    """The full network: the lung study with `lung` registered at every station."""
    bare_network.ok(
        "POST",
        "/collaborations",
        bare_network.admin,
        json={"name": COLLABORATION, "members": [*HOSPITALS.values(), RESEARCH]},
    )
    for token in bare_network.stations.values():
        bare_network.ok(
            "PUT",
            f"/collaborations/{COLLABORATION}/datasets/lung",
            token,
            json={"schema": LUNG_SCHEMA},
        )
    return bare_network

"""Fixtures that start a real Linksight network on 127.0.0.1."""

from __future__ import annotations

import pytest

from linksight.network import LocalNetwork


@pytest.fixture(scope="session")
def lung_network(tmp_path_factory):
    """A hub and three stations holding the NCCTG lung data, for the session."""
    network = LocalNetwork(tmp_path_factory.mktemp("lung-network"))
    try:
        network.start_hub()
        network.set_up_lung_study()
        network.start_stations()
        yield network
    finally:
        network.stop()

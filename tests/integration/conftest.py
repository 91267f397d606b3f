"""Fixtures that start a real Linksight network on 127.0.0.1."""

from __future__ import annotations

import pytest

from linksight.network import LocalNetwork


@pytest.fixture(scope="session")
def lung_network(tmp_path_factory):
    """A hub and three stations holding the NCCTG lung data, for the session.

    The same stations also hold one clinic's COVID tests each, as waiting
    lists in collaboration "waiting-lists", so that both example networks
    share one set of processes.
    """
    network = LocalNetwork(tmp_path_factory.mktemp("lung-network"))
    try:
        network.start_hub()
        network.set_up_lung_study()
        network.set_up_waiting_lists()
        network.start_stations()
        # Unrelated tests share this network, so whether a query is refused
        # for differencing would depend on which tests ran before it. The
        # check has its own network in test_differencing.py.
        network.set_rules(differencing_window=0)
        yield network
    finally:
        network.stop()


@pytest.fixture(scope="session")
def waiting_list_network(lung_network):
    """The session's network, for tests of the waiting-list collaboration."""
    return lung_network

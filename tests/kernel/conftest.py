"""A playground for the session: hub, three stations, demo stewards, client config.

Requests of the scientist ``sam`` are approved by the demo stewards after
one second; requests of ``kim`` wait for a steward, so that tests can
approve or reject them by hand. LINKSIGHT_CONFIG points at the playground's
client config for the whole session, so that kernels started by nbclient
and nbval find it as JupyterLab's would.
"""

from __future__ import annotations

import os

import pytest

from linksight.playground import start_playground
from linksight_kernel.config import ENV_CONFIG, ENV_HUB_URL, ENV_TOKEN


@pytest.fixture(scope="session")
def playground(tmp_path_factory):
    """The running playground; stopped at the end of the session."""
    running = start_playground(
        tmp_path_factory.mktemp("playground"), auto_approve=True, approve_delay=1.0
    )
    # Unrelated tests and notebooks share this playground, so whether a
    # query is refused for differencing would depend on their order.
    running.network.set_rules(differencing_window=0)
    saved = {name: os.environ.pop(name, None) for name in (ENV_HUB_URL, ENV_TOKEN)}
    os.environ[ENV_CONFIG] = str(running.config_path)
    try:
        yield running
    finally:
        os.environ.pop(ENV_CONFIG, None)
        for name, value in saved.items():
            if value is not None:
                os.environ[name] = value
        running.stop()

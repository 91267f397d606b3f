"""A real network, the dashboard under Voila, and headless Chromium for the module.

The browser is Debian's Chromium driven by Playwright; every request to a
host other than 127.0.0.1 or localhost is aborted and recorded, and the
tests check that none was made.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

from linksight.network import LocalNetwork, free_port
from linksight_kernel.config import ENV_CONFIG, ENV_HUB_URL, ENV_TOKEN, write_config
from linksight_kernel.dashboard.server import start_dashboard

CHROMIUM = "/usr/bin/chromium"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost"}

# Seconds a closed page's kernel stays before Voila stops it, in the tests.
# A kernel has no connection between running the notebook and the page's
# first connection to it, so a much shorter time can stop a page as it loads.
CULL_IDLE_SECONDS = 10


@pytest.fixture(scope="session")
def steward_network(tmp_path_factory):
    """A hub and three stations with the lung data; kim's requests wait for stewards.

    Writes a client config with the scientist sam's token and every
    steward's and kim's as profiles, and points LINKSIGHT_CONFIG at it.
    """
    root = tmp_path_factory.mktemp("dashboard-network")
    network = LocalNetwork(root)
    try:
        network.start_hub()
        network.set_up_lung_study()
        kim = network.call(
            "POST",
            "/users",
            network.admin_token,
            json={
                "name": "kim",
                "organisation": "Research Institute",
                "roles": ["scientist"],
            },
        )
        network.start_stations()
        profiles = {s.steward: s.steward_token for s in network.stations}
        profiles["kim"] = kim["token"]
        config_path = root / "client.toml"
        write_config(
            config_path,
            network.hub_url,
            network.scientist_token,
            collaboration=network.collaboration,
            profiles=profiles,
        )
        saved = {name: os.environ.pop(name, None) for name in (ENV_HUB_URL, ENV_TOKEN)}
        saved[ENV_CONFIG] = os.environ.get(ENV_CONFIG)
        os.environ[ENV_CONFIG] = str(config_path)
        try:
            yield network
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    finally:
        network.stop()


@pytest.fixture(scope="session")
def dashboard_server(steward_network):
    """Voila serving the dashboard, with every station's config for Verify."""
    server = start_dashboard(
        free_port(),
        steward_network.root / "logs" / "voila.log",
        environment=dict(os.environ),
        station_configs=[s.config_path for s in steward_network.stations],
        cull_idle_seconds=CULL_IDLE_SECONDS,
        cull_interval_seconds=2,
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium under Playwright, for one test module.

    Playwright's sync API keeps an event loop running in the main thread
    until it stops, which breaks asyncio.run() in every later test module.
    """
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing; install Debian's chromium package, as .ci/run does"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def blocked_hosts():
    """Every non-loopback URL a dashboard page tried to reach."""
    return []


def _loopback_only(blocked: list[str]):
    def route(route) -> None:
        url = route.request.url
        host = urlsplit(url).hostname
        if url.startswith(("data:", "blob:")) or host in LOOPBACK_HOSTS:
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    return route


@pytest.fixture(scope="module")
def open_dashboard(browser, dashboard_server, blocked_hosts):
    """Return a function that opens the dashboard as a steward and waits for it.

    Each profile's page is opened once per module and reused.
    """
    pages = {}
    contexts = []
    # The Content-Security-Policy header of each profile's page.
    policies: dict[str, str] = {}

    def open_as(profile: str):
        if profile in pages:
            return pages[profile]
        context = browser.new_context(
            viewport={"width": 1280, "height": 2200}, accept_downloads=True
        )
        contexts.append(context)
        page = context.new_page()
        page.route("**/*", _loopback_only(blocked_hosts))
        response = page.goto(dashboard_server.url_for(profile))
        policies[profile] = response.headers.get("content-security-policy", "")
        # Voila shows "Loading widget..." until the kernel has built them.
        page.get_by_role("tab", name="Approval queue").wait_for(timeout=90_000)
        pages[profile] = page
        return page

    open_as.policies = policies

    try:
        yield open_as
    finally:
        for context in contexts:
            context.close()

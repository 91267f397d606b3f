"""The JupyterLab side panel in headless Chromium, against the playground's hub.

JupyterLab runs with the panel as installed in this environment and
connects as the scientist ``kim``, whose requests wait for the stewards, so
that the test decides when a request's state changes. Chromium is Debian's
(/usr/bin/chromium, installed by .ci/run); every request to a host other
than 127.0.0.1 or localhost is aborted.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
from jupyter_processes import start_jupyter
from playwright.sync_api import Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from linksight_kernel import Client
from linksight_kernel.config import (
    ENV_CONFIG,
    ENV_HUB_URL,
    ENV_TOKEN,
    read_config,
    write_config,
)

CHROMIUM = "/usr/bin/chromium"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# Upper bounds for waiting in the browser, in milliseconds; on a loaded
# machine JupyterLab's first load takes tens of seconds.
LOAD_TIMEOUT = 120_000
STATE_TIMEOUT = 90_000
# Approval to completion includes the stations' MPC run.
RUN_TIMEOUT = 240_000

EMPTY_NOTEBOOK = {
    "cells": [],
    "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3"},
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}


@pytest.fixture(scope="module")
def kim_token(playground):
    """The token of the scientist whose requests wait for the stewards."""
    return read_config(playground.config_path).profiles["kim"]["token"]


@pytest.fixture(scope="module")
def lab(playground, kim_token, tmp_path_factory):
    """JupyterLab connected to the playground's hub as kim."""
    root = tmp_path_factory.mktemp("lab")
    (root / "panel.ipynb").write_text(json.dumps(EMPTY_NOTEBOOK))
    # Without a default the panel opens the first collaboration by name,
    # heart-study; these tests use the lung data.
    config_path = root / "kim.toml"
    write_config(
        config_path, playground.network.hub_url, kim_token, collaboration="lung-study"
    )
    running = start_jupyter(
        root,
        {
            ENV_HUB_URL: playground.network.hub_url,
            ENV_TOKEN: kim_token,
            ENV_CONFIG: str(config_path),
        },
        app="jupyterlab",
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def page(lab):
    """A Chromium page on JupyterLab that may reach loopback hosts only."""
    blocked: list[str] = []

    def only_loopback(route):
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.route("**/*", only_loopback)
        # Shown by pytest when a test fails.
        page.on("console", lambda message: print("console:", message.text))
        page.goto(f"{lab.url}/lab?reset&token={lab.token}")
        expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=LOAD_TIMEOUT)
        page.locator('.jp-SideBar [data-id="linksight-panel"]').click()
        yield page
        browser.close()


def _notebook_sources(page: Page) -> list[str]:
    return page.locator(".jp-Notebook .jp-Cell .cm-content").all_inner_texts()


def test_panel_shows_connection(page, playground):
    connection = page.locator(".lks-connection")

    expect(connection).to_have_attribute("data-connected", "true", timeout=30_000)
    expect(connection).to_contain_text(
        f"Connected to {playground.network.hub_url} as kim (Research Institute)."
    )


def test_panel_lists_collaborations(page):
    options = page.locator(".lks-collaboration-select option")

    expect(options).to_have_text(
        ["heart-study", "lung-study", "vertical-study", "waiting-lists"]
    )
    expect(page.locator(".lks-collaboration-select")).to_have_value("lung-study")


def test_panel_shows_schema(page):
    age = page.locator('.lks-dataset[data-dataset="lung"] tr[data-column="age"]')

    expect(age.locator("td")).to_have_text(
        ["age", "integer", "statistic, filter", "18 to 110"]
    )
    expect(page.locator(".lks-budget")).to_contain_text("requests")


def test_request_state_changes(page, playground, kim_token):
    with Client(playground.network.hub_url, kim_token) as kim:
        request = kim.submit(
            "SELECT count(*), mean(age) FROM lung GROUP BY sex",
            collaboration="lung-study",
            purpose="browser test of the side panel",
        )
    row = page.locator(f'.lks-request[data-request-id="{request.id}"]')

    expect(row).to_have_attribute(
        "data-state", "awaiting_approval", timeout=STATE_TIMEOUT
    )
    expect(row.locator(".lks-request-state")).to_have_text(
        "awaiting approval: 0 of 3 organisations approved"
    )
    playground.network.approve_all(str(request.id))
    expect(row).to_have_attribute(
        "data-state",
        re.compile("^(approved|running|completed)$"),
        timeout=STATE_TIMEOUT,
    )
    expect(row).to_have_attribute("data-state", "completed", timeout=RUN_TIMEOUT)
    expect(row).to_have_attribute("data-finished", "true")


def test_insert_query_cell(page):
    page.locator('.jp-SideBar [data-id="filebrowser"]').click()
    page.locator(".jp-DirListing-item", has_text="panel.ipynb").dblclick()
    expect(page.locator(".jp-Notebook")).to_be_visible(timeout=LOAD_TIMEOUT)
    page.locator('.jp-SideBar [data-id="linksight-panel"]').click()
    page.locator('.lks-dataset[data-dataset="lung"] .lks-insert-query').click()

    expect(page.locator(".jp-Notebook .jp-Cell")).to_have_count(3)
    sources = _notebook_sources(page)

    assert sources[1] == "%load_ext linksight_kernel\n%linksight connect"
    assert sources[2] == (
        "%%linksight -c lung-study -o lung_result "
        "--purpose 'replace with why you need this query'\n"
        "SELECT count(*), mean(time) FROM lung GROUP BY status"
    )


def _run_from_palette(page: Page, label: str, attempts: int = 3) -> None:
    """Runs a command by its label from JupyterLab's command palette.

    The palette closes when another element takes the focus, which the
    notebook sometimes does while it loads, so it is opened again.
    """
    palette = page.locator(".lm-CommandPalette-input")
    command = page.locator(".lm-CommandPalette-item", has_text=label)
    for attempt in range(attempts):
        page.locator(".lm-MenuBar-item", has_text="View").click()
        page.locator(".lm-Menu-item", has_text="Activate Command Palette").first.click()
        try:
            palette.fill(label, timeout=5_000)
            # Enter before the palette has filtered its list runs no command.
            command.first.click(timeout=5_000)
            return
        except PlaywrightTimeoutError:
            if attempt == attempts - 1:
                raise


def test_palette_inserts_query_cell(page):
    page.locator(".jp-Notebook").click()
    _run_from_palette(page, "Insert a Linksight query cell")

    expect(page.locator(".jp-Notebook .jp-Cell")).to_have_count(4)
    sources = _notebook_sources(page)
    queries = [source for source in sources if source.startswith("%%linksight")]

    assert len(queries) == 2
    assert queries[1].startswith("%%linksight -c lung-study -o lung_result")

"""The side panel's server extension, in a real Jupyter server against a real hub.

The server extension reads the hub URL and token as the magics do; these
tests start Jupyter servers with the playground's config, with none, with
a hub that does not answer and with a token the hub does not know.
"""

from __future__ import annotations

import pytest
from jupyter_processes import json_of, start_jupyter

from linksight.network import LocalNetwork, free_port
from linksight_kernel import Client
from linksight_kernel.config import ENV_CONFIG, read_config, write_config


@pytest.fixture(scope="module")
def server(playground, tmp_path_factory):
    """A Jupyter server whose extension connects with the playground's config."""
    running = start_jupyter(
        tmp_path_factory.mktemp("jupyter-server"),
        {ENV_CONFIG: str(playground.config_path)},
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def switchable(tmp_path_factory):
    """A Jupyter server whose LINKSIGHT_CONFIG file the tests rewrite or delete.

    The server extension reads the config again on every call, so each
    test sets the connection it needs without restarting the server.
    """
    root = tmp_path_factory.mktemp("jupyter-switchable")
    config_path = root / "client.toml"
    running = start_jupyter(root / "server", {ENV_CONFIG: str(config_path)})
    yield running, config_path
    running.stop()


@pytest.fixture(scope="module")
def tls_hub(tmp_path_factory):
    """A hub alone, served over HTTPS with a certificate of its own CA."""
    network = LocalNetwork(tmp_path_factory.mktemp("tls-hub"), hub_tls=True)
    try:
        network.start_hub()
        yield network
    finally:
        network.stop()


def _connect_as(config_path, hub_url, token, ca_certificate=None):
    config_path.unlink(missing_ok=True)
    write_config(config_path, hub_url, token, ca_certificate=ca_certificate)


def test_status_connected_as_scientist(server, playground):
    response = server.get("linksight/status")

    body = json_of(response)
    assert response.status_code == 200
    assert body["connected"] is True
    assert body["hub_url"] == playground.network.hub_url
    assert body["user"]["name"] == "sam"
    assert body["user"]["organisation"] == "Research Institute"
    assert body["default_collaboration"] == "lung-study"
    assert body["error"] is None


def test_collaborations_listed(server):
    response = server.get("linksight/collaborations")

    names = [c["name"] for c in json_of(response)]
    assert response.status_code == 200
    assert names == ["heart-study", "lung-study", "vertical-study", "waiting-lists"]


def test_datasets_have_types_and_uses(server):
    response = server.get("linksight/collaborations/lung-study/datasets")

    (lung,) = json_of(response)
    columns = {c["name"]: c for c in lung["columns"]}
    assert lung["name"] == "lung"
    assert sorted(lung["stations"]) == ["station-a", "station-b", "station-c"]
    assert columns["age"]["type"] == "integer"
    assert columns["age"]["uses"] == "statistic, filter"
    assert columns["age"]["values"] == "18 to 110"
    assert columns["sex"]["uses"] == "group by, filter"


def test_identifier_is_link_only(server):
    response = server.get("linksight/collaborations/waiting-lists/datasets")

    (covid,) = json_of(response)
    identifier = next(c for c in covid["columns"] if c["role"] == "identifier")
    assert identifier["uses"] == "link only"


def test_budget_counts_requests(server):
    response = server.get("linksight/collaborations/lung-study/budget")

    body = json_of(response)
    assert response.status_code == 200
    assert body["collaboration"] == "lung-study"
    assert body["used"] >= 0
    assert set(body) >= {"limit", "remaining", "period_days", "next_release"}


def _listed(server, request_id):
    listed = json_of(server.get("linksight/requests"))
    return next(r for r in listed if r["id"] == request_id)


def test_requests_follow_state(switchable, playground):
    running, config_path = switchable
    kim_token = read_config(playground.config_path).profiles["kim"]["token"]
    _connect_as(config_path, playground.network.hub_url, kim_token)
    network = playground.network
    with Client(network.hub_url, kim_token) as kim:
        request = kim.submit(
            "SELECT count(*) FROM lung GROUP BY sex",
            collaboration="lung-study",
            purpose="panel server extension test",
        )
    listed = json_of(running.get("linksight/requests"))
    first = _listed(running, request.id)

    approve = f"/requests/{request.id}/approve"
    network.call("POST", approve, network.stations[0].steward_token, json={})
    partly = _listed(running, request.id)
    for station in network.stations[1:3]:
        network.call("POST", approve, station.steward_token, json={})
    approved = _listed(running, request.id)

    assert listed[0]["id"] == request.id
    assert first["state"] == "awaiting_approval"
    assert first["summary"] == "awaiting approval: 0 of 3 organisations approved"
    assert first["finished"] is False
    assert partly["summary"] == "awaiting approval: 1 of 3 organisations approved"
    assert approved["state"] in ("approved", "running", "completed")


def _listed(server, request_id):
    listed = json_of(server.get("linksight/requests"))
    return next(r for r in listed if r["id"] == request_id)


def test_token_never_in_responses(server, playground):
    token = playground.network.scientist_token
    paths = [
        "linksight/status",
        "linksight/collaborations",
        "linksight/collaborations/lung-study/datasets",
        "linksight/collaborations/lung-study/budget",
        "linksight/requests",
    ]

    bodies = {path: server.get(path).text for path in paths}

    for path, body in bodies.items():
        assert token not in body, path


def test_unknown_collaboration_is_404(server):
    response = server.get("linksight/collaborations/lung-studdy/budget")

    body = json_of(response)
    assert response.status_code == 404
    assert body["code"] == "not_found"
    assert "lung-studdy" in body["message"]


def test_login_required(server):
    response = server.get("linksight/requests", authenticated=False)

    assert response.status_code == 403


def test_requests_only_own(switchable, playground):
    running, config_path = switchable
    steward_token = read_config(playground.config_path).profiles["steward-a"]["token"]
    with Client() as client:
        request = client.submit(
            "SELECT count(*) FROM lung", collaboration="lung-study", purpose="own"
        )
    _connect_as(config_path, playground.network.hub_url, steward_token)

    listed = json_of(running.get("linksight/requests"))
    status = json_of(running.get("linksight/status"))

    assert status["user"]["name"] == "steward-a"
    assert request.id not in [r["id"] for r in listed]


def test_not_configured(switchable):
    running, config_path = switchable
    config_path.unlink(missing_ok=True)

    status = json_of(running.get("linksight/status"))
    response = running.get("linksight/collaborations")

    assert status["connected"] is False
    assert status["hub_url"] is None
    assert status["error"]["code"] == "not_configured"
    assert status["error"]["message"] == (
        f"{ENV_CONFIG} names {config_path}, which does not exist; correct the "
        "variable or unset it"
    )
    assert response.status_code == 503
    assert json_of(response)["code"] == "not_configured"


def test_hub_unreachable(switchable):
    running, config_path = switchable
    hub_url = f"http://127.0.0.1:{free_port()}"
    _connect_as(config_path, hub_url, "some-token")

    status = json_of(running.get("linksight/status"))
    response = running.get("linksight/requests")

    assert status["connected"] is False
    assert status["hub_url"] == hub_url
    assert status["error"]["code"] == "hub_unreachable"
    assert f"the hub at {hub_url} did not respond" in status["error"]["message"]
    assert response.status_code == 502
    assert json_of(response)["code"] == "hub_unreachable"


def test_unknown_token(switchable, playground):
    running, config_path = switchable
    _connect_as(config_path, playground.network.hub_url, "not-a-real-token")

    status = json_of(running.get("linksight/status"))
    response = running.get("linksight/collaborations")

    assert status["connected"] is False
    assert status["error"]["code"] == "unauthenticated"
    assert response.status_code == 401


def test_tls_hub_with_ca(switchable, tls_hub):
    running, config_path = switchable
    _connect_as(
        config_path,
        tls_hub.hub_url,
        tls_hub.admin_token,
        ca_certificate=tls_hub.authority.certificate_path,
    )

    status = json_of(running.get("linksight/status"))

    assert tls_hub.hub_url.startswith("https://")
    assert status["connected"] is True
    assert status["user"]["name"] == "admin"


def test_tls_hub_without_ca(switchable, tls_hub):
    running, config_path = switchable
    _connect_as(config_path, tls_hub.hub_url, tls_hub.admin_token)

    status = json_of(running.get("linksight/status"))
    response = running.get("linksight/requests")

    assert status["connected"] is False
    assert status["error"]["code"] == "certificate_not_verified"
    assert "did not verify" in status["error"]["message"]
    assert "set LINKSIGHT_CA_CERT or ca_certificate" in status["error"]["message"]
    assert response.status_code == 502

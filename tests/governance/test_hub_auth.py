"""Authentication, role checks and how tokens are stored."""

from __future__ import annotations

import sqlite3

from hub_network import Network

import linksight
from governance.tokens import hash_token


def test_health_needs_no_token(network: Network) -> None:
    response = network.call("GET", "/health", None)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": linksight.__version__}


def test_missing_token_unauthenticated(network: Network) -> None:
    response = network.call("GET", "/organisations", None)
    assert response.status_code == 401
    assert response.json()["detail"]["code"] == "unauthenticated"
    assert "Authorization: Bearer" in response.json()["detail"]["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_token_unauthenticated(network: Network) -> None:
    response = network.call("GET", "/organisations", "not-a-token")
    assert response.status_code == 401
    assert response.json()["detail"]["code"] == "unauthenticated"
    assert "invalid token" in response.json()["detail"]["message"]


def test_auth_failure_audited_without_token(network: Network) -> None:
    network.call("GET", "/requests", "secret-guess-123")

    records = network.ok("GET", "/audit", network.admin)
    failure = records[-1]
    assert failure["event"] == "auth.failed"
    assert failure["details"]["reason"] == "unknown token"
    assert failure["details"]["path"] == "/requests"
    assert "secret-guess-123" not in str(failure)


def test_scientist_creating_user_forbidden(network: Network) -> None:
    response = network.call(
        "POST",
        "/users",
        network.scientist,
        json={"name": "eve", "organisation": "Hospital A", "roles": ["admin"]},
    )
    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "forbidden"
    assert "admin role" in response.json()["detail"]["message"]


def test_station_calling_user_endpoint_forbidden(network: Network) -> None:
    response = network.call("GET", "/requests", network.stations["st-a"])
    assert response.status_code == 403
    assert "station 'st-a'" in response.json()["detail"]["message"]


def test_user_calling_station_endpoint_forbidden(network: Network) -> None:
    response = network.call(
        "PUT",
        "/stations/me",
        network.admin,
        json={"mpc_host": "127.0.0.1", "mpc_port": 1, "version": "x"},
    )
    assert response.status_code == 403
    assert "for stations" in response.json()["detail"]["message"]


def test_users_me_for_user_and_station(network: Network) -> None:
    dual = network.ok("GET", "/users/me", network.dual)
    assert dual == {
        "name": "dual",
        "organisation": "Hospital A",
        "roles": ["scientist", "steward"],
        "kind": "user",
    }
    station = network.ok("GET", "/users/me", network.stations["st-b"])
    assert station["kind"] == "station"
    assert station["organisation"] == "Hospital B"


def test_tokens_stored_only_as_hashes(network: Network) -> None:
    tokens = [
        network.admin,
        network.scientist,
        network.dual,
        *network.stewards.values(),
        *network.stations.values(),
    ]
    database = network.settings.state_dir / "hub.db"
    with sqlite3.connect(database) as connection:
        dump = "\n".join(connection.iterdump())
        user_hashes = {
            row[0]
            for row in connection.execute(
                "SELECT token_hash FROM api_tokens WHERE user_id IS NOT NULL"
            )
        }
        station_hashes = {
            row[0]
            for row in connection.execute(
                "SELECT token_hash FROM api_tokens WHERE station_id IS NOT NULL"
            )
        }
    for token in tokens:
        assert token not in dump
    assert hash_token(network.scientist) in user_hashes
    assert hash_token(network.stations["st-a"]) in station_hashes


def test_user_duplicate_name_conflict(network: Network) -> None:
    response = network.call(
        "POST",
        "/users",
        network.admin,
        json={"name": "sam", "organisation": "Hospital A", "roles": ["scientist"]},
    )
    assert response.status_code == 409
    assert response.json()["detail"]["code"] == "already_exists"


def test_user_unknown_organisation_not_found(network: Network) -> None:
    response = network.call(
        "POST",
        "/users",
        network.admin,
        json={"name": "kim", "organisation": "Nowhere", "roles": ["scientist"]},
    )
    assert response.status_code == 404
    assert "'Nowhere'" in response.json()["detail"]["message"]


def test_invalid_body_error_shape(network: Network) -> None:
    response = network.call(
        "POST",
        "/users",
        network.admin,
        json={"name": "kim", "organisation": "Hospital A", "roles": ["wizard"]},
    )
    assert response.status_code == 422
    assert response.json()["detail"]["code"] == "invalid_request"
    assert (
        "field roles.0 'wizard' is invalid: Input should be"
        in (response.json()["detail"]["message"])
    )


def test_unknown_path_error_shape(network: Network) -> None:
    response = network.call("GET", "/nowhere", network.admin)
    assert response.status_code == 404
    assert response.json()["detail"]["code"] == "not_found"


def test_openapi_lists_endpoints(network: Network) -> None:
    paths = network.call("GET", "/openapi.json", None).json()["paths"]
    assert "/requests/{request_id}/approve" in paths
    assert "/tasks/{task_id}/events" in paths

"""Token lifetimes, rotation, revocation and the failed-authentication limit."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from hub_network import Network

from governance.app import create_app
from governance.config import HubSettings


def test_token_rotation_and_revocation(network: Network) -> None:
    issued = network.ok("POST", "/tokens", network.scientist, json={"label": "laptop"})
    listed = network.ok("GET", "/tokens", issued["token"])
    old_id = next(t["id"] for t in listed if not t["current"])
    revoked = network.ok("DELETE", f"/tokens/{old_id}", issued["token"])
    rejected = network.call("GET", "/users/me", network.scientist)

    assert issued["label"] == "laptop"
    assert issued["expires_at"] is not None
    assert [t["current"] for t in listed].count(True) == 1
    assert revoked["revoked_at"] is not None
    assert rejected.status_code == 401
    assert "revoked token" in rejected.json()["detail"]["message"]
    assert network.ok("GET", "/users/me", issued["token"])["name"] == "sam"


def test_token_expired_is_rejected(network: Network) -> None:
    issued = network.ok("POST", "/tokens", network.scientist, json={"label": "old"})
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    database = network.settings.state_dir / "hub.db"
    with sqlite3.connect(database) as connection:
        connection.execute(
            "UPDATE api_tokens SET expires_at = ? WHERE id = ?", (past, issued["id"])
        )
    response = network.call("GET", "/users/me", issued["token"])
    assert response.status_code == 401
    assert "expired token" in response.json()["detail"]["message"]
    assert "POST /tokens" in response.json()["detail"]["message"]


def test_token_lifetime_above_maximum(network: Network) -> None:
    response = network.call(
        "POST", "/tokens", network.scientist, json={"lifetime_days": 10_000}
    )
    assert response.status_code == 422
    assert (
        "exceeds this hub's maximum of 90 days" in response.json()["detail"]["message"]
    )


def test_token_for_other_user_needs_admin(network: Network) -> None:
    denied = network.call("POST", "/tokens", network.scientist, json={"user": "dual"})
    granted = network.ok("POST", "/tokens", network.admin, json={"user": "sam"})
    assert denied.status_code == 403
    assert network.ok("GET", "/users/me", granted["token"])["name"] == "sam"


def test_token_of_other_user_not_revocable(network: Network) -> None:
    admin_tokens = network.ok("GET", "/tokens", network.admin)
    response = network.call(
        "DELETE", f"/tokens/{admin_tokens[0]['id']}", network.scientist
    )
    assert response.status_code == 404
    assert network.ok("GET", "/users/me", network.admin)["roles"] == ["admin"]


def test_station_token_rotation(network: Network) -> None:
    issued = network.ok("POST", "/tokens", network.stations["st-a"], json={})
    me = network.ok("GET", "/users/me", issued["token"])
    assert me["kind"] == "station"
    assert issued["kind"] == "station"


def test_failed_auth_rate_limited(tmp_path) -> None:
    settings = HubSettings(
        state_dir=tmp_path, auth_failure_limit=3, auth_failure_window_seconds=60
    )
    with TestClient(create_app(settings)) as client:
        statuses = [
            client.get(
                "/users/me", headers={"Authorization": "Bearer guess"}
            ).status_code
            for _ in range(4)
        ]
        blocked = client.get("/users/me", headers={"Authorization": "Bearer guess"})
        health = client.get("/health")
    assert statuses == [401, 401, 401, 429]
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) >= 1
    assert "too many failed authentications" in blocked.json()["detail"]["message"]
    assert health.status_code == 200

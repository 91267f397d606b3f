"""Result keys: registering, replacing, and their use in submissions and tasks."""

from __future__ import annotations

from hub_network import COLLABORATION, QUERY, RESEARCH, Network
from nacl.public import PrivateKey

from linksight.result_encryption import encode_key, fingerprint


def test_result_key_registered_and_read(network: Network) -> None:
    public_key = encode_key(network.scientist_key.public_key)

    key = network.ok("GET", "/users/me/result-key", network.scientist)

    assert key["public_key"] == public_key
    assert key["fingerprint"] == fingerprint(public_key)


def test_result_key_replaced_in_next_task(network: Network) -> None:
    new_key = encode_key(PrivateKey.generate().public_key)
    replaced = network.ok(
        "PUT",
        "/users/me/result-key",
        network.scientist,
        json={"public_key": new_key},
    )
    request_id = network.submit()["id"]
    network.approve_all(request_id)
    tasks = network.ok("GET", "/stations/me/tasks", network.stations["st-a"])

    assert replaced["public_key"] == new_key
    assert tasks[0]["task"]["requester_key"] == new_key
    records = network.ok("GET", "/audit", network.admin)
    registered = [r for r in records if r["event"] == "user.result_key"]
    assert registered[-1]["outcome"] == "replaced"
    assert registered[-1]["details"]["fingerprint"] == fingerprint(new_key)
    assert new_key not in str(records)


def test_result_key_missing_is_404(network: Network) -> None:
    token = network.ok(
        "POST",
        "/users",
        network.admin,
        json={"name": "newcomer", "organisation": RESEARCH, "roles": ["scientist"]},
    )["token"]

    response = network.call("GET", "/users/me/result-key", token)

    assert response.status_code == 404
    assert "PUT /users/me/result-key" in response.json()["detail"]["message"]


def test_submit_without_result_key_is_409(network: Network) -> None:
    token = network.ok(
        "POST",
        "/users",
        network.admin,
        json={"name": "keyless", "organisation": RESEARCH, "roles": ["scientist"]},
    )["token"]

    response = network.call(
        "POST",
        "/requests",
        token,
        json={"collaboration": COLLABORATION, "query": QUERY, "purpose": "test"},
    )

    assert response.status_code == 409
    detail = response.json()["detail"]
    assert detail["code"] == "no_result_key"
    assert "'keyless'" in detail["message"]


def test_invalid_result_key_is_422(network: Network) -> None:
    for invalid in ("not base64!", encode_key(PrivateKey.generate().public_key)[:40]):
        response = network.call(
            "PUT",
            "/users/me/result-key",
            network.scientist,
            json={"public_key": invalid},
        )

        assert response.status_code == 422


def test_station_cannot_register_result_key(network: Network) -> None:
    response = network.call(
        "PUT",
        "/users/me/result-key",
        network.stations["st-a"],
        json={"public_key": encode_key(PrivateKey.generate().public_key)},
    )

    assert response.status_code == 403

"""The hub's 422 messages for invalid request bodies, as a person reads them."""

from __future__ import annotations

from hub_network import COLLABORATION, Network

QUERY = "SELECT count(*) FROM lung GROUP BY sex"


def _submit(network: Network, **body):
    return network.call("POST", "/requests", network.scientist, json=body)


def test_query_over_limit_named(bare_network: Network) -> None:
    query = "SELECT count(*) FROM lung WHERE age IN (" + ", ".join(["60"] * 2600)
    query += ") GROUP BY sex"
    response = _submit(
        bare_network, collaboration=COLLABORATION, query=query, purpose="test"
    )

    message = response.json()["detail"]["message"]
    assert response.status_code == 422
    assert message == (
        f"invalid request: the query is {len(query):,} characters long, more "
        "than the hub's limit of 10,000; shorten it, or split the analysis "
        "into several queries"
    )
    assert "body" not in message
    assert response.json()["detail"]["errors"][0]["loc"] == ["body", "query"]


def test_empty_query_and_purpose_named(bare_network: Network) -> None:
    response = _submit(
        bare_network, collaboration=COLLABORATION, query="   ", purpose=""
    )

    message = response.json()["detail"]["message"]
    assert response.status_code == 422
    assert "the query is empty; write a query, such as SELECT count(*)" in message
    assert "the purpose is empty; say why the query is needed" in message


def test_missing_and_unknown_fields_named(bare_network: Network) -> None:
    response = _submit(bare_network, collaboration=COLLABORATION, querry=QUERY)

    message = response.json()["detail"]["message"]
    assert response.status_code == 422
    assert "the query is missing; add it" in message
    assert "the purpose is missing; add it" in message
    assert "field querry is not a field of this request; remove it" in message


def _submit_raw(network: Network, content: bytes):
    return network.client.post(
        "/requests",
        content=content,
        headers={
            "Authorization": f"Bearer {network.scientist}",
            "Content-Type": "application/json",
        },
    )


def test_body_not_json_named(bare_network: Network) -> None:
    response = _submit_raw(bare_network, b'{"query": ')

    message = response.json()["detail"]["message"]
    assert response.status_code == 422
    assert message.startswith("invalid request: the request body is not valid JSON")
    assert message.endswith("; send a JSON object")


def test_query_parameter_named(bare_network: Network) -> None:
    response = bare_network.call(
        "GET", "/requests", bare_network.scientist, params={"state": "finished"}
    )

    message = response.json()["detail"]["message"]
    assert response.status_code == 422
    assert message.startswith(
        "invalid request: query parameter state 'finished' is invalid: Input should "
        "be 'submitted', 'awaiting_approval',"
    )


def test_body_missing_named(bare_network: Network) -> None:
    response = _submit_raw(bare_network, b"")

    message = response.json()["detail"]["message"]
    assert response.status_code == 422
    assert message == (
        "invalid request: the request body is missing; send a JSON object"
    )


def test_empty_reason_named(network: Network) -> None:
    steward = next(iter(network.stewards.values()))
    response = network.call(
        "POST",
        f"/collaborations/{COLLABORATION}/rules",
        steward,
        json={"changes": {"min_count": 12}, "reason": ""},
    )

    message = response.json()["detail"]["message"]
    assert response.status_code == 422
    assert message == "invalid request: the reason is empty; say why"


def test_path_parameter_named(bare_network: Network) -> None:
    response = bare_network.call("GET", "/requests/abc", bare_network.scientist)

    message = response.json()["detail"]["message"]
    assert response.status_code == 422
    assert message.startswith(
        "invalid request: path parameter request_id 'abc' is invalid: "
    )

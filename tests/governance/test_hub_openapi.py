"""The hub's REST API exercised from its own OpenAPI document (schemathesis).

For every operation, schemathesis generates requests from the schema, valid
ones and ones that break it, and each is sent five times: without a token
and with the token of an admin, a scientist, a steward and a station. Every
response must not be a server error (5xx), must have a status code the
operation declares, and must match the declared content type, headers and
body schema. A call without a token must get 401 everywhere but /health.

The hub is a real application on a SQLite file, with the lung study set up
as in the other hub tests, one request awaiting approval and one approved.
Half of the generated requests name these existing objects in their path,
so that they get past the lookups. The others use generated names and ids.

NOTE: schemathesis' own pytest integration (`schemathesis.pytest`) fails
under pytest 9 in version 4.32 (it sets `request.node._nodeid`, which
pytest 9 no longer has), so each operation's strategy is drawn inside a
plain hypothesis test instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hub_network import COLLABORATION, HOSPITALS, LUNG_SCHEMA, RESEARCH, Network
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from governance.app import create_app
from governance.bootstrap import initialise_hub
from governance.config import HubSettings
from governance.routers import ROUTERS

# Each example sends five requests; ten examples for each of the about 30
# operations keep this file near a minute on two cores.
EXAMPLES = 10
DEADLINE_MS = 30_000

CHECKS: list[Callable[..., Any]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

# The operations, read from the routers so that they are known when pytest
# collects the tests, before any hub exists.
OPERATIONS = sorted(
    (method, route.path)
    for router in ROUTERS
    for route in router.routes
    if isinstance(route, APIRoute)
    for method in route.methods
)
PUBLIC_PATHS = {"/health"}


@dataclass
class ApiUnderTest:
    """The application, its loaded schema, and the callers' tokens."""

    app: FastAPI
    client: TestClient
    schema: Any
    tokens: dict[str, str | None]
    known_path_parameters: dict[str, list[Any]]
    protected_token_ids: set[int] = field(default_factory=set)


def set_up_network(settings: HubSettings) -> tuple[FastAPI, Network]:
    """Create the lung study: organisations, users, stations and the dataset."""
    admin = initialise_hub(settings, "root", "Network operator")
    app = create_app(settings)
    network = Network(client=TestClient(app), settings=settings, admin=admin)
    for organisation in [*HOSPITALS.values(), RESEARCH]:
        network.ok("POST", "/organisations", admin, json={"name": organisation})
    network.scientist = network.ok(
        "POST",
        "/users",
        admin,
        json={"name": "sam", "organisation": RESEARCH, "roles": ["scientist"]},
    )["token"]
    network.scientist_key = network.register_result_key(network.scientist)
    for station, organisation in HOSPITALS.items():
        network.stewards[organisation] = network.ok(
            "POST",
            "/users",
            admin,
            json={
                "name": f"steward-{station[-1]}",
                "organisation": organisation,
                "roles": ["steward"],
            },
        )["token"]
        network.stations[station] = network.ok(
            "POST",
            "/stations",
            admin,
            json={"name": station, "organisation": organisation},
        )["token"]
    network.ok(
        "POST",
        "/collaborations",
        admin,
        json={"name": COLLABORATION, "members": [*HOSPITALS.values(), RESEARCH]},
    )
    for token in network.stations.values():
        network.ok(
            "PUT",
            f"/collaborations/{COLLABORATION}/datasets/lung",
            token,
            json={"schema": LUNG_SCHEMA},
        )
    return app, network


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> ApiUnderTest:
    """A hub with the lung study, two requests, and its schema for schemathesis."""
    state_dir: Path = tmp_path_factory.mktemp("openapi") / "hub"
    # Calls without a token are failed authentications; the limit is raised
    # so that the address is never blocked with 429 during the test.
    settings = HubSettings(state_dir=state_dir, auth_failure_limit=1_000_000)
    app, network = set_up_network(settings)

    waiting = network.submit()
    approved = network.submit()
    task_id = network.approve_all(approved["id"])["task_id"]
    station_token = network.stations["st-a"]
    tokens: dict[str, str | None] = {
        "no token": None,
        "admin": network.admin,
        "scientist": network.scientist,
        "steward": network.stewards[HOSPITALS["st-a"]],
        "station": station_token,
    }

    # The callers' own tokens must survive DELETE /tokens/{token_id}.
    protected = set()
    for token in tokens.values():
        if token is not None:
            protected |= {row["id"] for row in network.ok("GET", "/tokens", token)}
    spare = network.ok("POST", "/tokens", network.scientist, json={"label": "spare"})

    return ApiUnderTest(
        app=app,
        client=network.client,
        schema=schemathesis.openapi.from_asgi("/openapi.json", app),
        tokens=tokens,
        known_path_parameters={
            "name": [COLLABORATION],
            "dataset": ["lung"],
            "request_id": [waiting["id"], approved["id"]],
            "task_id": [task_id],
            "token_id": [spare["id"]],
        },
        protected_token_ids=protected,
    )


def cases(api: ApiUnderTest, method: str, path: str) -> st.SearchStrategy[Any]:
    """Return generated requests for one operation, half naming known objects."""
    operation = api.schema[path][method]
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
    strategies = [operation.as_strategy(generation_mode=mode) for mode in modes]
    names = [name for name in api.known_path_parameters if f"{{{name}}}" in path]
    if names:
        known = st.fixed_dictionaries(
            {name: st.sampled_from(api.known_path_parameters[name]) for name in names}
        )
        named = known.flatmap(
            lambda values: operation.as_strategy(path_parameters=values)
        )
        # Listed twice, so that half of the requests name existing objects.
        strategies += [named, named]
    return st.one_of(strategies).filter(
        lambda case: (
            (case.path_parameters or {}).get("token_id") not in api.protected_token_ids
        )
    )


def unreadable(response: Any) -> bool:
    """Return whether the hub rejected the body as bytes that are not JSON.

    FastAPI decodes the body before it runs any dependency, so such a body
    is rejected with 422 before the token is checked.
    """
    if response.status_code != 422:
        return False
    detail = response.json()["detail"]
    if detail["message"].startswith("invalid request body"):
        return True
    errors = detail.get("errors", [])
    return bool(errors) and all(error["type"] == "json_invalid" for error in errors)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
@settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE_MS,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_operation_conforms_to_schema(api, method, path, data):
    case = data.draw(cases(api, method, path), label="request")
    for caller, token in api.tokens.items():
        headers = dict(case.headers or {})
        headers.pop("Authorization", None)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        case.headers = headers

        response = case.call()

        case.validate_response(response, checks=CHECKS)
        if token is None and path not in PUBLIC_PATHS and not unreadable(response):
            assert response.status_code == 401, (
                f"{method} {path} without a token returned "
                f"{response.status_code}: {response.text[:300]}"
            )
        assert response.status_code < 500, f"{caller}: {response.text[:300]}"


def test_every_documented_operation_is_tested(api):
    # An endpoint added to the application outside the routers would be
    # missing from OPERATIONS, and so untested here.
    documented = {
        (method.upper(), path)
        for path, item in api.app.openapi()["paths"].items()
        for method in item
    }
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize(
    ("caller", "method", "path"),
    [
        ("admin", "GET", f"/requests/{2**63}"),
        ("admin", "POST", f"/requests/{2**63}/revoke"),
        ("admin", "DELETE", f"/tokens/{2**63}"),
        ("admin", "GET", f"/audit?request_id={2**63}"),
        ("steward", "POST", f"/collaborations/{COLLABORATION}/rules/{2**63}/accept"),
    ],
)
def test_id_beyond_sqlite_range_is_invalid(api, caller, method, path):
    # SQLite integers are signed 64-bit, so 2**63 once overflowed into a 500.
    headers = {"Authorization": f"Bearer {api.tokens[caller]}"}

    response = api.client.request(method, path, headers=headers)

    assert response.status_code == 422
    assert response.json()["detail"]["code"] == "invalid_request"
    assert "less than or equal to 9223372036854775807" in response.text


def test_undecodable_body_is_invalid_request(api):
    headers = {
        "Authorization": f"Bearer {api.tokens['admin']}",
        "Content-Type": "application/json",
    }

    response = api.client.post(
        "/organisations", content=b'{"name": "\xff"}', headers=headers
    )

    assert response.status_code == 422
    assert response.json()["detail"] == {
        "code": "invalid_request",
        "message": "invalid request body (There was an error parsing the body); "
        "send a JSON object encoded as UTF-8",
    }


def test_token_lifetime_beyond_bound_is_invalid(tmp_path):
    # A hub without a token lifetime once computed the expiry of a token
    # asked for 1e300 days and overflowed into a 500.
    settings = HubSettings(state_dir=tmp_path / "hub", user_token_days=None)
    admin = initialise_hub(settings, "root", "Network operator")
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/tokens",
            json={"lifetime_days": 1e300},
            headers={"Authorization": f"Bearer {admin}"},
        )

    assert response.status_code == 422
    assert "less than or equal to 36500" in response.json()["detail"]["message"]

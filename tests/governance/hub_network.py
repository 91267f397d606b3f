"""A small hub network for tests, and helpers to call the hub as its members.

The network has three hospitals, each with a station holding the dataset
``lung`` and a steward, a research institute with a scientist, and the
collaboration ``lung-study`` of all four. A user ``dual`` at Hospital A is
both scientist and steward.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from nacl.public import PrivateKey

from governance.config import HubSettings
from linksight.result_encryption import encode_key, open_result, seal_result

LUNG_SCHEMA: dict[str, Any] = {
    "name": "lung",
    "description": "NCCTG lung cancer cohort",
    "max_rows": 10_000,
    "columns": [
        {"name": "patient_id", "type": "text", "role": "identifier"},
        {"name": "age", "type": "integer", "min": 18, "max": 110},
        {"name": "sex", "type": "categorical", "levels": [1, 2]},
        {"name": "ph.ecog", "type": "categorical", "levels": [0, 1, 2, 3]},
    ],
}

HOSPITALS = {"st-a": "Hospital A", "st-b": "Hospital B", "st-c": "Hospital C"}
RESEARCH = "Research Institute"
COLLABORATION = "lung-study"
QUERY = "SELECT count(*), mean(age) FROM lung GROUP BY sex"


def bearer(token: str) -> dict[str, str]:
    """Return the Authorization header for `token`."""
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Network:
    """A hub with organisations, users and stations, and their tokens."""

    client: TestClient
    settings: HubSettings
    admin: str
    scientist: str = ""
    dual: str = ""
    scientist_key: PrivateKey = field(default_factory=PrivateKey.generate)
    stewards: dict[str, str] = field(default_factory=dict)
    stations: dict[str, str] = field(default_factory=dict)

    def call(self, method: str, path: str, token: str | None, **kwargs: Any) -> Any:
        """Send a request as the holder of `token` and return the response."""
        headers = bearer(token) if token is not None else {}
        return self.client.request(method, path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, token: str, **kwargs: Any) -> Any:
        """Send a request, fail the test on an error status, return the JSON."""
        response = self.call(method, path, token, **kwargs)
        if response.status_code >= 400:
            pytest.fail(
                f"{method} {path} returned {response.status_code}: {response.text}"
            )
        return response.json()

    def submit(self, query: str = QUERY, token: str | None = None) -> dict[str, Any]:
        """Submit `query` in the lung study and return the request."""
        return self.ok(
            "POST",
            "/requests",
            token or self.scientist,
            json={
                "collaboration": COLLABORATION,
                "query": query,
                "purpose": "survival by sex for a grant proposal",
            },
        )

    def approve_all(self, request_id: int) -> dict[str, Any]:
        """Approve `request_id` by the steward of every hospital."""
        request: dict[str, Any] = {}
        for token in self.stewards.values():
            request = self.ok("POST", f"/requests/{request_id}/approve", token)
        return request

    def report(self, task_id: str, station: str, event: str, **fields: Any) -> Any:
        """Post a task event as `station` and return the response.

        A plain ``result`` document is sealed to the scientist's result key
        first, as a station seals it to the task's requester key.
        """
        result = fields.get("result")
        if isinstance(result, dict) and "ciphertext" not in result:
            fields["result"] = self.seal(result)
        return self.call(
            "POST",
            f"/tasks/{task_id}/events",
            self.stations[station],
            json={"event": event, **fields},
        )

    def seal(self, document: dict[str, Any]) -> dict[str, Any]:
        """Seal a result document to the scientist's result key."""
        return seal_result(document, encode_key(self.scientist_key.public_key))

    def open(self, relayed: dict[str, Any], request_id: int) -> dict[str, Any]:
        """Open a relayed result with the scientist's result key."""
        return open_result(relayed, self.scientist_key, request_id)

    def register_result_key(self, token: str) -> PrivateKey:
        """Register a new result key as the holder of `token`; return it."""
        key = PrivateKey.generate()
        self.ok(
            "PUT",
            "/users/me/result-key",
            token,
            json={"public_key": encode_key(key.public_key)},
        )
        return key

"""The station's outbound connection to the hub; stations never listen for it."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import httpx

from linksight.checkpoints import SignedCheckpoint, SignedKeyRotation

logger = logging.getLogger("linksight.station")


class HubError(RuntimeError):
    """A hub call that failed; `retry` says whether trying again may help."""

    def __init__(self, message: str, status: int | None = None, retry: bool = True):
        super().__init__(message)
        self.status = status
        self.retry = retry


class StationHubClient:
    """Calls the hub on behalf of one station, with the station's token."""

    def __init__(
        self,
        hub_url: str,
        token: str,
        timeout: float = 10.0,
        ca_certificate: Path | None = None,
    ):
        # An https hub's certificate is checked against `ca_certificate`, the
        # collaboration CA's certificate, or else the system's trusted CAs.
        verify = ssl.create_default_context(cafile=ca_certificate)
        self._client = httpx.Client(
            base_url=hub_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            verify=verify if ca_certificate is not None else True,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            if "CERTIFICATE_VERIFY_FAILED" in str(error):
                raise HubError(
                    f"the hub's TLS certificate did not verify at {path} ({error}); "
                    "set hub_ca_certificate in [station] to the certificate of "
                    "the CA that signed the hub's"
                ) from error
            raise HubError(f"hub unreachable at {path}: {error}") from error
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            message = detail.get("message") if isinstance(detail, dict) else detail
            raise HubError(
                f"hub returned {response.status_code} for {method} {path}: {message}",
                status=response.status_code,
                retry=response.status_code >= 500,
            )
        return response.json()

    def heartbeat(self, mpc_host: str, mpc_port: int, version: str) -> None:
        """Register this station's MPC endpoint and mark it online."""
        self._call(
            "PUT",
            "/stations/me",
            json={"mpc_host": mpc_host, "mpc_port": mpc_port, "version": version},
        )

    def register_dataset(
        self, collaboration: str, dataset: str, schema: dict[str, Any]
    ) -> None:
        """Publish a dataset's schema (never its values) in a collaboration."""
        self._call(
            "PUT",
            f"/collaborations/{collaboration}/datasets/{dataset}",
            json={"schema": schema},
        )

    def tasks(self) -> list[dict[str, Any]]:
        """Return the signed tasks this station has still to run."""
        return self._call("GET", "/stations/me/tasks")

    def task_state(self, task_id: str) -> dict[str, Any]:
        """Return the hub's state of a task's request."""
        return self._call("GET", f"/tasks/{task_id}")

    def post_event(
        self,
        task_id: str,
        event: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        progress: dict[str, int] | None = None,
    ) -> None:
        """Report started, progress, completed, failed or refused for a task."""
        body: dict[str, Any] = {"event": event, "result": result, "error": error}
        if progress is not None:
            body["progress"] = progress
        self._call("POST", f"/tasks/{task_id}/events", json=body)

    def audit_head(self) -> tuple[int, str]:
        """Return the sequence number and hash of the hub's newest audit record."""
        head = self._call("GET", "/audit/head")
        return int(head["seq"]), str(head["hash"])

    def audit_records(self, after_seq: int, limit: int) -> list[dict[str, Any]]:
        """Return up to `limit` hub audit records numbered above `after_seq`."""
        return self._call(
            "GET", "/audit/records", params={"after_seq": after_seq, "limit": limit}
        )

    def post_checkpoint(self, signed: SignedCheckpoint) -> None:
        """Send a checkpoint of the hub's chain that this station signed."""
        self._call("POST", "/audit/checkpoints", json=signed.model_dump(mode="json"))

    def checkpoint_requested(self) -> int:
        """Return the hub record of the newest checkpoint request, 0 if none."""
        head = self._call("GET", "/audit/head")
        return int(head.get("checkpoint_requested", 0))

    def post_key_rotation(self, signed: SignedKeyRotation) -> None:
        """Register this station's new audit key, signed by the old and the new."""
        self._call("POST", "/audit/key-rotations", json=signed.model_dump(mode="json"))

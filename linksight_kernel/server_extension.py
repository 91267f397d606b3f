"""The Jupyter server extension behind the JupyterLab side panel.

The panel in the browser calls these handlers on the Jupyter server, and
they call the hub with the user's token, found as the magics find it
(LINKSIGHT_HUB_URL, LINKSIGHT_TOKEN, LINKSIGHT_CONFIG or the default config
file, read by the server process). The token stays on the server: no
response contains it. Only the reads the panel needs are proxied::

    GET /linksight/status                        hub URL, user, or why not connected
    GET /linksight/collaborations                the user's collaborations
    GET /linksight/collaborations/NAME/datasets  schemas with allowed uses
    GET /linksight/collaborations/NAME/budget    the user's query budget
    GET /linksight/requests                      the user's own requests

Errors are JSON ``{"code": ..., "message": ...}``: the hub's own status and
code for 401, 403 and 404, 503 ``not_configured`` when no hub URL or token
is found, and 502 ``hub_unreachable`` or ``hub_error`` when the hub does not
respond or fails. Every handler requires the Jupyter server's own login.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from linksight.schema import DatasetSchema
from linksight_kernel.client import allowed_uses, column_values
from linksight_kernel.config import ENV_CA_CERT, Connection, resolve_connection
from linksight_kernel.errors import ConfigError
from linksight_kernel.requests import Request

logger = logging.getLogger("linksight.panel")

HUB_TIMEOUT_SECONDS = 10.0
# The longest collaboration name passed on to the hub, in characters.
MAX_NAME_LENGTH = 200


class PanelError(Exception):
    """An error to return to the panel as JSON with an HTTP status."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class _Session:
    """One hub connection: its settings, HTTP client and the user it belongs to."""

    connection: Connection
    http: httpx.AsyncClient
    me: dict[str, Any] | None = None


class HubProxy:
    """Calls the hub as the user whose settings the server process finds.

    The settings are read again on every call, so that a config file
    written after JupyterLab started (``linksight playground`` writes one)
    is picked up without a restart. The HTTP client is kept while the hub
    URL and token stay the same.
    """

    def __init__(self) -> None:
        self._session: _Session | None = None

    def _current(self) -> _Session:
        try:
            connection = resolve_connection()
        except ConfigError as exc:
            raise PanelError(503, "not_configured", str(exc)) from exc
        session = self._session
        if session is not None and _settings(session.connection) == _settings(
            connection
        ):
            return session
        if session is not None:
            # The old client is closed when the event loop gets to it.
            _close_later(session.http)
        ca_file = connection.ca_certificate
        self._session = _Session(
            connection,
            httpx.AsyncClient(
                base_url=connection.hub_url,
                headers={"Authorization": f"Bearer {connection.token}"},
                timeout=HUB_TIMEOUT_SECONDS,
                # The same trust as the magics: the collaboration CA if the
                # settings name one, else the system's CAs.
                verify=ssl.create_default_context(cafile=ca_file) if ca_file else True,
            ),
        )
        return self._session

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._session is not None:
            await self._session.http.aclose()
            self._session = None

    async def _get(self, session: _Session, path: str) -> Any:
        hub_url = session.connection.hub_url
        try:
            response = await session.http.get(path)
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" not in str(exc):
                raise _unreachable(hub_url, exc) from exc
            ca_file = session.connection.ca_certificate
            trusted = f"CA certificate {ca_file}" if ca_file else "system's CAs"
            raise PanelError(
                502,
                "certificate_not_verified",
                f"the hub at {hub_url} presented a TLS certificate that the "
                f"{trusted} did not verify ({exc}); set {ENV_CA_CERT} or "
                "ca_certificate in the config file to the collaboration CA's "
                "certificate, then restart JupyterLab if you set the variable",
            ) from exc
        except httpx.TransportError as exc:
            raise _unreachable(hub_url, exc) from exc
        if response.status_code < 400:
            return response.json()
        try:
            detail = response.json().get("detail", {})
        except ValueError:
            detail = {}
        if not isinstance(detail, dict):
            detail = {"message": str(detail)}
        code = str(detail.get("code", f"http_{response.status_code}"))
        message = str(detail.get("message", response.text))
        if response.status_code in (401, 403, 404):
            raise PanelError(response.status_code, code, message)
        logger.warning(
            "hub %s returned %s for GET %s: %s",
            hub_url,
            response.status_code,
            path,
            code,
        )
        raise PanelError(
            502,
            "hub_error",
            f"the hub at {hub_url} returned {response.status_code} ({code}) "
            f"for {path}: {message}",
        )

    async def _me(self, session: _Session) -> dict[str, Any]:
        if session.me is None:
            session.me = dict(await self._get(session, "/users/me"))
        return session.me

    async def status(self) -> dict[str, Any]:
        """Return the hub URL and the user, or why the panel is not connected."""
        try:
            session = self._current()
            me = await self._me(session)
        except PanelError as exc:
            hub_url = None
            if exc.code != "not_configured" and self._session is not None:
                hub_url = self._session.connection.hub_url
            return {
                "connected": False,
                "hub_url": hub_url,
                "user": None,
                "default_collaboration": None,
                "error": {"code": exc.code, "message": exc.message},
            }
        return {
            "connected": True,
            "hub_url": session.connection.hub_url,
            "user": {
                "name": me.get("name"),
                "organisation": me.get("organisation"),
                "roles": me.get("roles", []),
            },
            "default_collaboration": session.connection.collaboration,
            "error": None,
        }

    async def collaborations(self) -> list[dict[str, Any]]:
        """Return the collaborations of the user's organisation."""
        body = await self._get(self._current(), "/collaborations")
        return [{"name": c["name"], "members": list(c["members"])} for c in body]

    async def datasets(self, collaboration: str) -> list[dict[str, Any]]:
        """Return a collaboration's datasets with each column's allowed uses."""
        path = f"/collaborations/{_segment(collaboration)}/datasets"
        body = await self._get(self._current(), path)
        datasets = []
        for dataset in body:
            schema = DatasetSchema.model_validate(dataset["schema"])
            datasets.append(
                {
                    "name": dataset["name"],
                    "description": schema.description,
                    "stations": list(dataset["stations"]),
                    "columns": [
                        {
                            "name": column.name,
                            "type": column.type,
                            "role": column.role,
                            "uses": allowed_uses(column),
                            "values": column_values(column),
                            "nullable": column.nullable,
                            "description": column.description,
                        }
                        for column in schema.columns
                    ],
                }
            )
        return datasets

    async def budget(self, collaboration: str) -> dict[str, Any]:
        """Return the user's query budget in a collaboration."""
        path = f"/collaborations/{_segment(collaboration)}/budget"
        return dict(await self._get(self._current(), path))

    async def requests(self) -> list[dict[str, Any]]:
        """Return the user's own requests, newest first, with a one-line summary.

        A steward's hub listing also contains other users' requests touching
        their organisation; the panel shows only the user's own.
        """
        session = self._current()
        me = await self._me(session)
        body = await self._get(session, "/requests")
        own = [
            Request.from_json(item) for item in body if item["submitter"] == me["name"]
        ]
        own.sort(key=lambda request: request.id, reverse=True)
        return [
            {
                "id": request.id,
                "collaboration": request.collaboration,
                "dataset": request.dataset,
                "query": request.query,
                "purpose": request.purpose,
                "state": request.state,
                "finished": request.finished,
                "summary": request.describe(),
                "rejection": request.rejection,
                "error": request.error,
                "created_at": request.created_at.isoformat(),
                "updated_at": request.updated_at.isoformat(),
            }
            for request in own
        ]


def _settings(connection: Connection) -> tuple[object, ...]:
    return (connection.hub_url, connection.token, connection.ca_certificate)


def _unreachable(hub_url: str, exc: Exception) -> PanelError:
    return PanelError(
        502,
        "hub_unreachable",
        f"the hub at {hub_url} did not respond ({exc}); check that it runs "
        "and that LINKSIGHT_HUB_URL or the config's hub_url is right",
    )


def _segment(name: str) -> str:
    """Check a collaboration name taken from the URL and quote it for the hub."""
    if not name or len(name) > MAX_NAME_LENGTH:
        raise PanelError(
            422,
            "invalid_name",
            f"collaboration name of {len(name)} characters is invalid; it must "
            f"have 1 to {MAX_NAME_LENGTH}",
        )
    return quote(name, safe="")


def _close_later(http: httpx.AsyncClient) -> None:
    task = asyncio.get_running_loop().create_task(http.aclose())
    # The event loop keeps only a weak reference to a task.
    _closing.add(task)
    task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[None]] = set()


class _PanelHandler(APIHandler):
    """Base of the panel's handlers: JSON out, PanelError as a JSON error."""

    @property
    def hub(self) -> HubProxy:
        return self.settings["linksight_hub"]

    async def _reply(self, call: Any) -> None:
        try:
            body = await call
        except PanelError as exc:
            self.set_status(exc.status)
            self.finish(json.dumps({"code": exc.code, "message": exc.message}))
            return
        self.finish(json.dumps(body))


class StatusHandler(_PanelHandler):
    """GET /linksight/status: the hub connection and the user."""

    @web.authenticated
    async def get(self) -> None:
        await self._reply(self.hub.status())


class CollaborationsHandler(_PanelHandler):
    """GET /linksight/collaborations: the user's collaborations."""

    @web.authenticated
    async def get(self) -> None:
        await self._reply(self.hub.collaborations())


class DatasetsHandler(_PanelHandler):
    """GET /linksight/collaborations/NAME/datasets: the schemas."""

    @web.authenticated
    async def get(self, collaboration: str) -> None:
        await self._reply(self.hub.datasets(collaboration))


class BudgetHandler(_PanelHandler):
    """GET /linksight/collaborations/NAME/budget: the user's budget."""

    @web.authenticated
    async def get(self, collaboration: str) -> None:
        await self._reply(self.hub.budget(collaboration))


class RequestsHandler(_PanelHandler):
    """GET /linksight/requests: the user's own requests."""

    @web.authenticated
    async def get(self) -> None:
        await self._reply(self.hub.requests())


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the panel's handlers under ``/linksight/`` on the Jupyter server."""
    web_app = serverapp.web_app
    base = url_path_join(web_app.settings["base_url"], "linksight")
    web_app.settings["linksight_hub"] = HubProxy()
    name = r"([^/]+)"
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "status"), StatusHandler),
            (url_path_join(base, "collaborations"), CollaborationsHandler),
            (url_path_join(base, "collaborations", name, "datasets"), DatasetsHandler),
            (url_path_join(base, "collaborations", name, "budget"), BudgetHandler),
            (url_path_join(base, "requests"), RequestsHandler),
        ],
    )
    serverapp.log.info("linksight: panel handlers registered under %s", base)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Name this module as the Jupyter server extension to load."""
    return [{"module": "linksight_kernel.server_extension"}]

"""The hub's FastAPI application."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

import linksight
from governance.concurrency import MAX_CONCURRENT_REQUESTS, ConcurrencyLimitMiddleware
from governance.config import HubSettings
from governance.context import Hub
from governance.db import describe_url
from governance.errors import install_error_handlers
from governance.routers import ROUTERS

logger = logging.getLogger("linksight.hub")

DESCRIPTION = """\
The Linksight governance hub: organisations, users and stations,
collaborations and their rules, the public schemas of datasets, requests and
their approvals, signed tasks, and the hash-chained audit log. It never
receives records. Authenticate with `Authorization: Bearer <token>`.
"""


def create_app(settings: HubSettings) -> FastAPI:
    """Create the hub application for `settings`.

    The database tables and the signing key are created if they are
    missing; `linksight hub init` also creates the first admin.
    """
    hub = Hub.open(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info(
            "hub started: database %s, state in %s",
            describe_url(settings.database_url),
            settings.state_dir,
        )
        yield
        hub.close()
        logger.info("hub stopped")

    app = FastAPI(
        title="Linksight governance hub",
        version=linksight.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.hub = hub
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)

    @app.middleware("http")
    async def log_request(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        principal = getattr(request.state, "principal", None)
        logger.info(
            "%s %s -> %s in %.1f ms (%s)",
            request.method,
            request.url.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
            principal.describe() if principal is not None else "no principal",
        )
        return response

    # Added last, so it is the outermost middleware: a request waits here
    # before its handling time above starts.
    app.add_middleware(ConcurrencyLimitMiddleware, limit=MAX_CONCURRENT_REQUESTS)
    return app

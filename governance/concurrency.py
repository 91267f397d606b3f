"""Admit a bounded number of HTTP requests into the hub at once.

The hub's endpoints are synchronous, so FastAPI runs each dependency and
each endpoint of a request in a worker thread from AnyIO's pool (40 threads
by default). A request's database session lives from the authentication
dependency to the end of the endpoint, and on SQLite its transaction holds
the write lock from its first query (``BEGIN IMMEDIATE``, see
:mod:`governance.db`). With more requests in progress than threads, every
thread can end up blocked on the lock or on a pooled connection, while the
request that holds the lock waits for a free thread. The hub then stalls
until the 30 s database timeouts fail the waiting requests.

:class:`ConcurrencyLimitMiddleware` lets at most `limit` requests into the
application and queues the others in the event loop, where waiting takes no
thread. Keeping `limit` below both the thread pool and the database
connection pool (5 connections plus 10 overflow, SQLAlchemy's defaults)
leaves a thread and a connection for every admitted request.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

# SQLite runs one transaction at a time, so requests admitted beyond a few
# only wait for its lock, retrying after sleeps of up to 100 ms (SQLite's
# busy handler), which lengthens the slowest requests.
# NOTE: a hub on PostgreSQL runs transactions in parallel and may do better
# with a higher limit; that has not been measured.
MAX_CONCURRENT_REQUESTS = 4
"""Requests the hub handles at once; the others wait until one finishes."""


class ConcurrencyLimitMiddleware:
    """ASGI middleware that lets at most `limit` HTTP requests run at once."""

    def __init__(self, app: ASGIApp, limit: int = MAX_CONCURRENT_REQUESTS) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.app = app
        self.limit = limit
        self._semaphore = asyncio.Semaphore(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async with self._semaphore:
            await self.app(scope, receive, send)

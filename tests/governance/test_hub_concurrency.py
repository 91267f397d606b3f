"""Many requests at once against a real hub process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from governance.concurrency import ConcurrencyLimitMiddleware
from linksight.network import LocalNetwork

BURST = 80
TIMEOUT_SECONDS = 20.0


async def burst(url: str, token: str) -> list[int | str]:
    """Send BURST authenticated requests at once; return each status or error."""
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=BURST)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=TIMEOUT_SECONDS, limits=limits
    ) as client:

        async def one(index: int) -> int | str:
            path = "/collaborations" if index % 2 else "/requests"
            try:
                return (await client.get(path)).status_code
            except httpx.HTTPError as error:
                return type(error).__name__

        return await asyncio.gather(*(one(index) for index in range(BURST)))


def test_burst_of_requests_all_succeed(tmp_path: Path) -> None:
    # With more requests in progress than worker threads, the hub used to
    # stall until the database's 30 s timeouts failed them.
    network = LocalNetwork(tmp_path)
    try:
        network.start_hub()
        admin = network.admin_token
        network.call("POST", "/organisations", admin, json={"name": "Institute"})
        user = network.call(
            "POST",
            "/users",
            admin,
            json={"name": "sam", "organisation": "Institute", "roles": ["scientist"]},
        )
        started = time.monotonic()
        outcomes = asyncio.run(burst(network.hub_url, user["token"]))
        elapsed = time.monotonic() - started
    finally:
        network.stop()

    failed = [outcome for outcome in outcomes if outcome != 200]
    assert failed == []
    assert elapsed < TIMEOUT_SECONDS


def test_concurrency_limit_below_one() -> None:
    with pytest.raises(ValueError, match="limit must be at least 1, not 0"):
        ConcurrencyLimitMiddleware(app=None, limit=0)  # type: ignore[arg-type]

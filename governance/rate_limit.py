"""Limit failed authentications per client address.

After `limit` failed attempts from one address within `window_seconds`,
every further attempt from that address is rejected with 429 until the
oldest failure leaves the window, whether or not its token is valid. The
counts live in the hub process's memory, so they reset when the hub
restarts and are per worker when several workers run.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class FailureLimiter:
    """Sliding-window count of failed authentications per client address."""

    def __init__(self, limit: int, window_seconds: float):
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if window_seconds <= 0:
            raise ValueError(f"window_seconds must be positive, not {window_seconds}")
        self.limit = limit
        self.window_seconds = window_seconds
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, address: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(address, deque())
        while failures and failures[0] <= now - self.window_seconds:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return deque()
        return failures

    def retry_after(self, address: str) -> float | None:
        """Return seconds until `address` may try again, or None if it may now."""
        now = time.monotonic()
        with self._lock:
            failures = self._prune(address, now)
            if len(failures) < self.limit:
                return None
            return failures[0] + self.window_seconds - now

    def record_failure(self, address: str) -> int:
        """Count a failed attempt from `address`; return its failures in the window."""
        now = time.monotonic()
        with self._lock:
            failures = self._prune(address, now)
            failures.append(now)
            self._failures[address] = failures
            return len(failures)

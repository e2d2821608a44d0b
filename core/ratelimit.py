"""A token bucket shared by every downloader: the global speed limit."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    """`await acquire(n)` before using n bytes. rate None means unlimited (no waiting at all)."""

    def __init__(self, rate: int | None = None, burst_seconds: float = 0.25) -> None:
        self._lock = asyncio.Lock()
        self._burst_seconds = burst_seconds
        self.set_rate(rate)

    def set_rate(self, rate: int | None) -> None:
        self.rate = rate if rate and rate > 0 else None
        self._capacity = max(64 * 1024, (self.rate or 0) * self._burst_seconds)
        self._tokens = self._capacity
        self._stamp = time.monotonic()

    async def acquire(self, nbytes: int) -> None:
        if self.rate is None:
            return
        async with self._lock:
            rate = self.rate
            if rate is None:
                return
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            self._tokens -= nbytes
            if self._tokens < 0:
                # Sleep while holding the lock: callers are served in order.
                await asyncio.sleep(-self._tokens / rate)
                self._tokens = 0
                self._stamp = time.monotonic()

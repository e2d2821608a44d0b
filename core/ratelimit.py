"""Speed limits: token buckets, and which buckets a task's bytes pass (global, its host's, its own).

Owns the rule "a byte passes every bucket that applies to it": the global limit (`[download] speed_limit`,
or the schedule window in force, core/schedule.py), the task's host's limit (`[hosts."NAME"] speed`,
`[hosts."*"]` for every other host; one bucket per host shared by every task on this node) and the task's
own (`TaskOptions.speed_limit`). Every rate can change while tasks run: a change applies to the next
bytes of every running download.

Downloaders are given a `Limiter` (`ctx.limiter`): `rate` None means "no bucket applies" (they may skip
`acquire` then), otherwise `await acquire(n)` before using n bytes.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Protocol
from urllib.parse import urlsplit


class Limiter(Protocol):
    """What a downloader takes bytes from."""

    @property
    def rate(self) -> int | None:
        """Bytes per second (the tightest bucket), or None: unlimited, no need to call acquire."""
        ...

    async def acquire(self, nbytes: int) -> None:
        """Wait until nbytes may be used."""


class RateLimiter:
    """`await acquire(n)` before using n bytes. rate None means unlimited (no waiting at all)."""

    def __init__(self, rate: int | None = None, burst_seconds: float = 0.25) -> None:
        self._lock = asyncio.Lock()
        self._burst_seconds = burst_seconds
        self.rate: int | None = None
        self._wake: asyncio.Event | None = None  # set by set_rate: wakes the caller waiting for tokens
        self.set_rate(rate)

    def set_rate(self, rate: int | None) -> None:
        """A new rate, at once: a caller waiting under the old one is woken and served under the new one."""
        self.rate = rate if rate and rate > 0 else None
        self._capacity = max(64 * 1024, (self.rate or 0) * self._burst_seconds)
        self._tokens = self._capacity
        self._stamp = time.monotonic()
        if self._wake is not None:
            self._wake.set()

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
            while self._tokens < 0 and self.rate is not None:
                # Sleep while holding the lock: callers are served in order. set_rate ends the wait early
                # (with a full bucket at the new rate).
                self._wake = wake = asyncio.Event()
                try:
                    await asyncio.wait_for(wake.wait(), -self._tokens / self.rate)
                except TimeoutError:
                    self._tokens = 0
                    self._stamp = time.monotonic()
                finally:
                    self._wake = None


PACE_PIECE = 64 * 1024  # bytes let through a limiter at a time (see `paced`)


async def paced(chunks: AsyncIterator[bytes], limiter: Limiter) -> AsyncGenerator[bytes | memoryview, None]:
    """A body's chunks let through `limiter` in pieces of at most PACE_PIECE bytes.

    The transport reads up to 512 KiB at a time (core/downloaders/net.py): under a 128 KiB/s limit one such
    read would wait 4 s for its tokens, holding the bucket while the other connections queue behind it, and
    the task's progress would stand still for the whole round. In pieces, bytes and progress arrive steadily
    and connections sharing a bucket take turns."""
    async for chunk in chunks:
        if limiter.rate is None or len(chunk) <= PACE_PIECE:
            if limiter.rate is not None:
                await limiter.acquire(len(chunk))
            yield chunk
            continue
        view = memoryview(chunk)
        for start in range(0, len(chunk), PACE_PIECE):
            piece = view[start:start + PACE_PIECE]
            if limiter.rate is not None:
                await limiter.acquire(len(piece))
            yield piece


class LimiterChain:
    """Several buckets in a row: a byte waits for each in turn (so the slowest one sets the pace)."""

    def __init__(self, *limiters: RateLimiter) -> None:
        self.limiters = limiters

    @property
    def rate(self) -> int | None:
        rates = [limiter.rate for limiter in self.limiters if limiter.rate is not None]
        return min(rates) if rates else None

    async def acquire(self, nbytes: int) -> None:
        for limiter in self.limiters:
            if limiter.rate is not None:
                await limiter.acquire(nbytes)


def host_of(url: str) -> str:
    """The host name (or IP) a URL's limits are keyed by: lower case, port ignored."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


class SpeedLimits:
    """This node's buckets: one global, one per host seen, one per running task.

    `host_rates` maps host names (lower case) to bytes/s; "*" is every host not named."""

    def __init__(self, global_rate: int | None = None, host_rates: Mapping[str, int | None] | None = None) -> None:
        self.normal_rate = global_rate if global_rate and global_rate > 0 else None
        self.override: int | None = None  # set by the schedule's speed window in force (None: the normal rate)
        self.overridden = False
        self.global_limiter = RateLimiter(self.normal_rate)
        self._host_rates: dict[str, int | None] = {k.lower(): v for k, v in (host_rates or {}).items()}
        # Buckets live while some run's chain holds them: weak values drop finished tasks' and idle hosts'.
        self._hosts: weakref.WeakValueDictionary[str, RateLimiter] = weakref.WeakValueDictionary()
        self._tasks: weakref.WeakValueDictionary[int, RateLimiter] = weakref.WeakValueDictionary()

    # ---- the global limit ----------------------------------------------------------------------------
    def set_global(self, rate: int | None) -> None:
        """The normal global rate (`[download] speed_limit`); a schedule speed window still wins while in force."""
        self.normal_rate = rate if rate and rate > 0 else None
        self._apply_global()

    def set_override(self, rate: int | None, active: bool) -> None:
        """The schedule: `active` with `rate` (None: unlimited) replaces the normal rate; inactive restores it."""
        self.override, self.overridden = (rate if rate and rate > 0 else None), active
        self._apply_global()

    @property
    def global_rate(self) -> int | None:
        return self.override if self.overridden else self.normal_rate

    def _apply_global(self) -> None:
        if self.global_limiter.rate != self.global_rate:
            self.global_limiter.set_rate(self.global_rate)

    # ---- per host ------------------------------------------------------------------------------------
    def host_rate(self, host: str) -> int | None:
        host = host.lower()
        return self._host_rates[host] if host in self._host_rates else self._host_rates.get("*")

    def set_host(self, host: str, rate: int | None) -> None:
        """Change one host's rate ("*": every host not named) now, for running tasks too."""
        host = host.lower()
        self._host_rates[host] = rate if rate and rate > 0 else None
        for name, limiter in list(self._hosts.items()):
            wanted = self.host_rate(name)
            if limiter.rate != wanted:
                limiter.set_rate(wanted)

    def set_hosts(self, rates: Mapping[str, int | None]) -> None:
        """Replace every host's rate (`[hosts."NAME"] speed`; hosts not in `rates` get none), now."""
        self._host_rates = {k.lower(): (v if v and v > 0 else None) for k, v in rates.items()}
        for name, limiter in list(self._hosts.items()):
            wanted = self.host_rate(name)
            if limiter.rate != wanted:
                limiter.set_rate(wanted)

    def host_limiter(self, host: str) -> RateLimiter:
        host = host.lower()
        limiter = self._hosts.get(host)
        if limiter is None:
            limiter = self._hosts[host] = RateLimiter(self.host_rate(host))
        return limiter

    # ---- per task ------------------------------------------------------------------------------------
    def task_limiter(self, task_id: int, rate: int | None) -> RateLimiter:
        limiter = self._tasks.get(task_id)
        if limiter is None:
            limiter = self._tasks[task_id] = RateLimiter(rate)
        elif limiter.rate != (rate if rate and rate > 0 else None):
            limiter.set_rate(rate)
        return limiter

    def set_task(self, task_id: int, rate: int | None) -> bool:
        """Change a running task's own rate now; False if it has no bucket (not running here)."""
        limiter = self._tasks.get(task_id)
        if limiter is None:
            return False
        if limiter.rate != (rate if rate and rate > 0 else None):
            limiter.set_rate(rate)
        return True

    def task_rate(self, task_id: int) -> int | None:
        limiter = self._tasks.get(task_id)
        return None if limiter is None else limiter.rate

    def for_task(self, task_id: int, url: str, rate: int | None) -> LimiterChain:
        """The buckets a run's bytes pass: global, its host's, its own (`rate`: the task's speed_limit)."""
        return LimiterChain(self.global_limiter, self.host_limiter(host_of(url)), self.task_limiter(task_id, rate))

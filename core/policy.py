"""Per-host adaptive back-off: the connections this node opens to a host that answers 429 or 503.

The static caps (`[hosts."NAME"] connections, tasks`) are granted by the store's claim (core/store/rows.py
HostBudget). On top of them, this module owns what happens when a host says "too many":

- `HostPolicy` (one per engine) keeps a `HostGate` per remote host (the `[hosts]` key rule: the URL's host
  name or IP in lower case, port ignored; core/store/rows.py `host_of`).
- A `HostGate` counts the connections (requests in flight) every task of this node has open to its host.
  While no back-off is in force it lets every request through. A 429 or 503 (with or without Retry-After)
  halves its allowance (8 → 4 → 2 → 1, floor 1; the first step from the most connections open within the
  last quiet period, since a 429 often comes right after the connections broke off); a quiet period
  without another one, with requests made in it, doubles it again, until it is back where it started
  and the back-off ends.
  Requests beyond the allowance wait for a slot (first come, first served), and a holder whose slot is
  taken back (`Slot.taken_back`) stops its request early, so a long range stream shrinks at once.
  Answers to requests sent before the last step down do not count again (they tell of the old
  concurrency), so a burst of simultaneous 429s is one step, not four.
- Each step is logged in the log of every task using the host ("example.com answered 429: connections
  8 → 4"). One host's gate never touches another host's.
- `HostAccess` is one run's view (`DownloadContext.hosts`): `slot(url)` for a request, `close()` at the end
  of the run (its task stops getting the host's log lines).

Downloaders hold a slot per request: core/downloaders/http.py (probe and range workers) and
core/downloaders/hls/fetch.py (playlists, keys, segments).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from core.errors import HttpStatusError
from core.store.rows import host_of

log = logging.getLogger("fetchdeck.policy")

BACK_OFF_STATUSES = frozenset({429, 503})
DEFAULT_QUIET_SECONDS = 30.0

TaskLog = Callable[[str], None]


class SlotTaken(Exception):
    """A request's slot was taken back by a step down: the holder ends the request and waits for a slot."""


@dataclass(eq=False, slots=True)
class Slot:
    """One request's right to a connection to a host (released once; `epoch`: the gate's when granted)."""

    gate: HostGate
    epoch: int
    held: bool = True

    def taken_back(self) -> bool:
        """True (and the slot is gone) if a step down left the host more slots in use than allowed."""
        gate = self.gate
        if self.held and gate.allowance is not None and gate.in_use > gate.allowance:
            self.held = False
            gate.in_use -= 1
            return True
        return False

    def observe(self, exc: BaseException) -> None:
        """A request on this slot failed with `exc`: a 429 or 503 steps the host down."""
        if isinstance(exc, HttpStatusError) and exc.status in BACK_OFF_STATUSES:
            self.gate.throttled(exc.status, self.epoch)

    def release(self) -> None:
        if self.held:
            self.held = False
            self.gate.note_use()
            self.gate.in_use -= 1
            self.gate.wake()


class HostGate:
    """The connections this node has open to one host, and the back-off in force on it (if any)."""

    def __init__(self, host: str, policy: HostPolicy) -> None:
        self.host = host
        self._policy = policy
        self.allowance: int | None = None  # None: no back-off in force
        self.ceiling = 0  # where the back-off started: it ends once the allowance is back there
        self.in_use = 0
        self._peak = 0  # the most slots in use lately (at `_peak_at`): where a first step down starts from
        self._peak_at = 0.0
        self.epoch = 0  # steps down so far: a slot granted before the last one does not step down again
        self._sent = 0  # slots granted since the last 429/503: a quiet period needs requests, not just time
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._users: dict[int, TaskLog] = {}
        self._timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"HostGate({self.host!r}, allowance={self.allowance}, in_use={self.in_use})"

    # ---- slots -----------------------------------------------------------------------------
    def _free(self) -> bool:
        return self.allowance is None or self.in_use < self.allowance

    def note_use(self) -> None:
        """Remember `in_use` if it is the most lately (called as slots are taken and given back)."""
        if self.in_use >= self._peak:
            self._peak, self._peak_at = self.in_use, time.monotonic()

    def recent_use(self) -> int:
        """The most slots in use within the last quiet period (a 429 often follows connections that broke off)."""
        if time.monotonic() - self._peak_at > self._policy.quiet_seconds:
            self._peak = self.in_use
        return max(1, self.in_use, self._peak)

    async def acquire(self) -> Slot:
        if self._free() and not self._waiters:
            self.in_use += 1
            self._sent += 1
            self.note_use()
            return Slot(self, self.epoch)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # granted as it was cancelled: give it on
                self.in_use -= 1
                self.wake()
            else:
                self._waiters.remove(waiter)
            raise
        return Slot(self, self.epoch)

    def wake(self) -> None:
        """Grant freed slots to the waiters, oldest first (the count is taken for them here)."""
        while self._waiters and self._free():
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_use += 1
                self._sent += 1
                self.note_use()
                waiter.set_result(None)

    # ---- users (whose logs get the steps) --------------------------------------------------------
    def attach(self, task_id: int, task_log: TaskLog) -> None:
        self._users[task_id] = task_log

    def detach(self, task_id: int) -> None:
        self._users.pop(task_id, None)

    def _tell(self, text: str) -> None:
        log.info("%s", text)
        for task_log in list(self._users.values()):
            task_log(text)

    # ---- stepping -----------------------------------------------------------------------------
    def throttled(self, status: int, epoch: int) -> None:
        """The host answered `status` (429/503) to a request granted at `epoch`."""
        self._sent = 0
        self._quiet_again()
        if epoch < self.epoch:
            return  # sent before the last step down: that step already answered it
        level = self.allowance if self.allowance is not None else self.recent_use()
        if self.allowance is None:
            if level == 1:
                return  # one connection: nothing to step down (the retry waits, as for any 429)
            self.ceiling = level
        lower = max(1, level // 2)
        self.epoch += 1
        if lower != level or self.allowance is None:
            self.allowance = lower
            self._tell(f"{self.host} answered {status}: connections {level} → {lower}")

    def _quiet_again(self) -> None:
        """(Re)start the quiet period after which the allowance steps back up."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self._policy.quiet_seconds, self._step_up)

    def _step_up(self) -> None:
        self._timer = None
        if self.allowance is None:
            return
        if not self._users and not self.in_use and not self._waiters:
            self.allowance = None  # nobody uses the host any more: the next task starts afresh
            return
        if not self._sent and not self.in_use:
            self._quiet_again()  # quiet only because nothing was asked (every request waits to retry)
            return
        level, quiet = self.allowance, self._policy.quiet_seconds
        self._sent = 0
        higher = min(self.ceiling, level * 2)
        if higher >= self.ceiling:
            self.allowance = None
            self._tell(f"{self.host} quiet for {quiet:g} s: connections {level} → {self.ceiling} (back-off over)")
        else:
            self.allowance = higher
            self._tell(f"{self.host} quiet for {quiet:g} s: connections {level} → {higher}")
            self._quiet_again()
        self.wake()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class HostPolicy:
    """Every host's gate on this node (one per engine; `[policy] quiet_seconds` is the step-up delay)."""

    def __init__(self, quiet_seconds: float = DEFAULT_QUIET_SECONDS) -> None:
        self.quiet_seconds = quiet_seconds
        self._gates: dict[str, HostGate] = {}

    def gate(self, host: str) -> HostGate:
        gate = self._gates.get(host)
        if gate is None:
            gate = self._gates[host] = HostGate(host, self)
        return gate

    def allowance(self, host: str) -> int | None:
        """The connections the back-off allows to `host` now (None: no back-off in force)."""
        gate = self._gates.get(host.lower())
        return gate.allowance if gate is not None else None

    def close(self) -> None:
        for gate in self._gates.values():
            gate.close()


class HostAccess:
    """One run's use of the hosts: a slot per request, the run's task told of every step of those hosts."""

    def __init__(self, policy: HostPolicy, task_id: int = 0, task_log: TaskLog | None = None) -> None:
        self._policy = policy
        self._task_id = task_id
        self._log = task_log
        self._gates: dict[str, HostGate] = {}

    @classmethod
    def private(cls) -> HostAccess:
        """For a context built outside an engine: a policy of its own."""
        return cls(HostPolicy())

    def gate(self, url: str) -> HostGate:
        host = host_of(url)
        gate = self._gates.get(host)
        if gate is None:
            gate = self._gates[host] = self._policy.gate(host)
            if self._log is not None:
                gate.attach(self._task_id, self._log)
        return gate

    async def acquire(self, url: str) -> Slot:
        """A slot for one request to `url`'s host (waits while the host's back-off allows no more)."""
        return await self.gate(url).acquire()

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[Slot]:
        """Hold a slot for one request; a 429/503 raised inside steps the host down."""
        held = await self.acquire(url)
        try:
            yield held
        except BaseException as exc:
            held.observe(exc)
            raise
        finally:
            held.release()

    def close(self) -> None:
        """The run is over: its task leaves the hosts' users."""
        for gate in self._gates.values():
            gate.detach(self._task_id)
        self._gates.clear()

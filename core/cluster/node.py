"""One node of a fetchdeck cluster: what an engine does beside its own downloads when its store is shared.

Several fetchdeck processes (`serve`, `worker`) on one PostgreSQL store form a cluster. The store does
the queue (claims with `FOR UPDATE SKIP LOCKED`, leases, fencing, host caps: core/store/). This module
keeps a node's part of the bargain, over the store's LISTEN/NOTIFY channels:

- heartbeat: every `lease_timeout / 3` the node renews its leases (`TaskStore.renew`). Leases the store
  says are lost (another node reaped and took the task, or it was deleted) are handed to `on_lost`: the
  engine cancels those runs without writing anything. If the store cannot be reached for a whole
  `lease_timeout`, every lease is presumed lost the same way (another node may run them by now).
- reaper: every `lease_timeout / 2` the node hands tasks of dead nodes back to the queue (`reap`) and
  says so on the events channel, so an idle node claims them at once.
- events (channel `fetchdeck_events`): every lifecycle and progress event of this node's engine is sent
  (batched, core/cluster/codec.py); events from other nodes are given to `on_remote` (the engine
  republishes them on its bus, for SSE, the TUI and the dialects' push channels) and a lifecycle event
  wakes the scheduler (`on_wake`): idle nodes wait for NOTIFY, they do not poll.
- commands (channel `fetchdeck_commands`): a stop or delete for a task another node runs is sent to that
  node (`ask`); the node that runs it carries it out (`on_command`). If it does not within
  COMMAND_TIMEOUT, the sender forces it through the store (fencing makes the old runner stop writing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from core.cluster.codec import LIFECYCLE, Command, EventBatch, decode_events, encode_events
from core.errors import StoreUnavailable
from core.events import ConfigChanged, EventBus, Payload, Subscription, TaskChanged
from core.store.base import TaskStore

log = logging.getLogger("fetchdeck.cluster")

EVENTS = "fetchdeck_events"
COMMANDS = "fetchdeck_commands"
COMMAND_TIMEOUT = 3.0  # seconds the node running a task gets to carry out a stop or delete


@runtime_checkable
class Reconnecting(Protocol):
    """A shared store that says when its listening connection came back after an outage."""

    on_reconnect: Callable[[], Awaitable[None] | None] | None


@runtime_checkable
class Broadcast(Protocol):
    """What a shared store offers besides the TaskStore contract: PostgreSQL's LISTEN/NOTIFY."""

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """Call `callback(payload)` for every notification on `channel` (until the store closes)."""
        ...

    async def notify(self, channel: str, payload: str) -> None:
        """Send one notification (delivered to every listener, this node's too, after the sender's commit)."""
        ...


class ClusterNode:
    """Heartbeat, reaper, event relay and command routing of one node (started and stopped by the engine)."""

    def __init__(
        self, store: TaskStore, bus: EventBus, *, lease_timeout: float,
        on_wake: Callable[[], None],
        on_lost: Callable[[set[int]], None],
        on_command: Callable[[Command], Awaitable[None]],
        on_remote: Callable[[str, Payload], None],
    ) -> None:
        if not isinstance(store, Broadcast):
            raise TypeError("a cluster node needs a store with LISTEN/NOTIFY")
        self.store = store
        self.broadcast: Broadcast = store
        self.name = store.node
        self.bus = bus
        self.lease_timeout = lease_timeout
        self._on_wake = on_wake
        self._on_lost = on_lost
        self._on_command = on_command
        self._on_remote = on_remote
        self._loops: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._sub: Subscription | None = None
        self.last_renewed = time.monotonic()

    @property
    def heartbeat_interval(self) -> float:
        return max(0.2, self.lease_timeout / 3)

    async def start(self) -> None:
        await self.broadcast.listen(EVENTS, self._received_events)
        await self.broadcast.listen(COMMANDS, self._received_command)
        self._sub = self.bus.subscribe()
        self._loops = [
            asyncio.create_task(self._heartbeat(), name="fetchdeck-heartbeat"),
            asyncio.create_task(self._reaper(), name="fetchdeck-reaper"),
            asyncio.create_task(self._relay(self._sub), name="fetchdeck-relay"),
        ]

    async def stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        self._loops = []
        if self._sub is not None:
            self._sub.close()
        for pending in list(self._pending):
            pending.cancel()

    async def flush(self) -> None:
        """Send what the relay has not sent yet (the engine calls this before it closes)."""
        if self._sub is not None:
            await self._send(self._drain(self._sub))

    def reconnected(self) -> None:
        """The store's listening connection came back after an outage: notifications may have been missed."""
        self._on_wake()

    # ---- heartbeat and reaper ------------------------------------------------
    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                lost = await self.store.renew(self.lease_timeout)
            except Exception as exc:
                if not isinstance(exc, StoreUnavailable):
                    log.exception("heartbeat failed")
                silent = time.monotonic() - self.last_renewed
                if silent >= self.lease_timeout:
                    log.warning("no heartbeat for %.0f s (%s): giving up this node's running tasks", silent, exc)
                    self._on_lost(set())  # empty: every run of this node
                continue
            self.last_renewed = time.monotonic()
            self._on_wake()  # a backstop: a claim that skipped a host another node was counting tries again
            if lost:
                log.warning("lease lost on task(s) %s: another node runs them now", sorted(lost))
                self._on_lost(lost)

    async def _reaper(self) -> None:
        while True:
            await asyncio.sleep(max(0.2, self.lease_timeout / 2))
            try:
                reaped = await self.store.reap()
            except StoreUnavailable:
                continue
            except Exception:
                log.exception("reaping expired leases failed")
                continue
            if reaped:
                log.info("task(s) %s: their node stopped sending heartbeats; back in the queue", reaped)
                for task_id in reaped:
                    self.bus.publish(TaskChanged(task_id))  # relayed: every node wakes and may claim it
                self._on_wake()

    # ---- events ----------------------------------------------------------------
    @staticmethod
    def _drain(sub: Subscription) -> list[Payload]:
        out: list[Payload] = []
        while (event := sub.get_nowait()) is not None:
            if event.origin or isinstance(event.payload, ConfigChanged):
                continue  # relayed from another node, or a setting of this node only
            out.append(event.payload)
        return out

    async def _relay(self, sub: Subscription) -> None:
        while True:
            event = await sub.get()
            if event is None:
                return
            batch: list[Payload] = [] if event.origin or isinstance(event.payload, ConfigChanged) else [event.payload]
            batch += self._drain(sub)  # everything published meanwhile goes in the same notification(s)
            try:
                await self._send(batch)
            except StoreUnavailable:
                pass  # the store is away: other nodes miss these events, the stored rows stay right
            except Exception:
                log.exception("relaying events failed")

    async def _send(self, batch: list[Payload]) -> None:
        for payload in encode_events(self.name, batch):
            await self.broadcast.notify(EVENTS, payload)

    def _received_events(self, text: str) -> None:
        try:
            batch: EventBatch = decode_events(text)
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed cluster event: %.200s", text)
            return
        if batch.node == self.name:
            return  # our own, echoed back
        wake = False
        for payload in batch.events:
            self._on_remote(batch.node, payload)
            wake = wake or payload.type in LIFECYCLE
        if wake:
            self._on_wake()

    # ---- commands -------------------------------------------------------------
    async def ask(self, command: Command) -> None:
        await self.broadcast.notify(COMMANDS, command.encode())

    def _received_command(self, text: str) -> None:
        try:
            command = Command.decode(text)
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed cluster command: %.200s", text)
            return
        if command.to != self.name:
            return
        job = asyncio.ensure_future(self._carry_out(command))
        self._pending.add(job)
        job.add_done_callback(self._pending.discard)

    async def _carry_out(self, command: Command) -> None:
        try:
            await self._on_command(command)
        except Exception as exc:  # the task may be gone or finished meanwhile: the sender sees the store
            log.info("command %s of task %s from %s: %s", command.op.value, command.task_id, command.sender, exc)

"""GET /api/events: engine events as Server-Sent Events.

Each connection gets its own engine subscription. The stream starts with
`retry:` and a `ready` event whose id is where the stream begins, so a
client that reconnects (EventSource does, sending Last-Event-ID) gets every
event it missed from the engine's replay buffer. If the buffer no longer
reaches back that far, a `resync` event says so: refetch the task list.

Event ids are the engine's sequence numbers. Payloads are written by
server/wire.py (`encode_event`) and follow the MediaGo document: per-task
events carry `id` as a string, `download-create` carries numeric `ids` and
`count`; a `config-changed` is written by the dialect that names settings
(`config_payload`, MediaGo's keys). Progress arrives at most 4 times a second per
task (the engine coalesces; a slow subscriber skips ticks, never lifecycle
events).

Fan-out: streams do not wake per event. One flush clock per server watches
the bus; FLUSH_INTERVAL after the first event of a quiet spell it wakes every
stream once, and each writes all its pending events in one chunk (one
syscall, one trip through Quart and Hypercorn). Writes per stream are thus
bounded (≤ 1/FLUSH_INTERVAL per second) however busy the engine is, which is
what keeps hundreds of streams cheap. The same clock sends heartbeat comments
so proxies keep idle streams open.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any

from core.engine import Engine
from core.events import ConfigChanged, Event, Subscription
from server.wire import encode_event

HEARTBEAT_SECONDS = 15.0
RETRY_MS = 3000
FLUSH_INTERVAL = 0.02
MAX_BATCH_EVENTS = 4096
_CACHE_SIZE = 4096
PING = b": ping\n\n"

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def format_event(name: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {_dumps(data)}\n\n".encode()


class EventStreams:
    """Serves SSE streams off one engine; formats each event once for all subscribers."""

    def __init__(
        self, engine: Engine, heartbeat: float = HEARTBEAT_SECONDS, flush_interval: float = FLUSH_INTERVAL,
        config_payload: Callable[[ConfigChanged], dict[str, Any] | None] | None = None,
    ) -> None:
        """config_payload: the `config-changed` data a client gets for a changed engine setting,
        None to leave that change out (no config event is streamed without it)."""
        self.engine = engine
        self.config_payload = config_payload
        self.heartbeat = heartbeat
        self.flush_interval = flush_interval
        self.closing = False
        self._subs: set[Subscription] = set()
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._tick = asyncio.Event()  # set once per flush; replaced by a fresh one each time
        self._ping_round = False
        self._clock: asyncio.Task[None] | None = None
        self._clock_sub: Subscription | None = None

    @property
    def open_streams(self) -> int:
        return len(self._subs)

    # ---- the flush clock ------------------------------------------------------
    def _flush(self, ping: bool = False) -> None:
        tick, self._tick = self._tick, asyncio.Event()
        self._ping_round = ping
        tick.set()

    async def _run_clock(self, sub: Subscription) -> None:
        while not self.closing:
            event = await sub.get(timeout=self.heartbeat)
            if event is None:
                if sub.closed:
                    break
                self._flush(ping=True)
                continue
            await asyncio.sleep(self.flush_interval)
            while sub.get_nowait() is not None:  # the clock only needs to know that something happened
                pass
            self._flush()
        self._flush()  # let streams notice a closed engine or server

    def _ensure_clock(self) -> None:
        if self._clock is None or self._clock.done():
            self._clock_sub = self.engine.subscribe()
            self._clock = asyncio.create_task(self._run_clock(self._clock_sub), name="fetchdeck-sse-clock")

    # ---- streams --------------------------------------------------------------
    def _encode(self, event: Event) -> bytes:
        cached = self._cache.get(event.seq)
        if cached is None:
            payload = event.payload
            if isinstance(payload, ConfigChanged):
                data = self.config_payload(payload) if self.config_payload else None
                cached = b"" if data is None else format_event(event.type.value, data, event.seq)
            else:
                cached = format_event(event.type.value, encode_event(payload), event.seq)
            self._cache[event.seq] = cached
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return cached

    def _drain(self, sub: Subscription) -> bytes:
        chunks: list[bytes] = []
        while len(chunks) < MAX_BATCH_EVENTS:
            event = sub.get_nowait()
            if event is None:
                break
            chunks.append(self._encode(event))
        return b"".join(chunks)

    def open(self, last_event_id: int | None) -> tuple[Subscription, bytes]:
        """Subscribe (replaying after last_event_id) and build the stream's preamble."""
        self._ensure_clock()
        bus = self.engine.bus
        start = bus.last_seq if last_event_id is None else min(last_event_id, bus.last_seq)
        # An id beyond what this bus has seen comes from an earlier server run.
        covered = last_event_id is None or (last_event_id <= bus.last_seq and bus.replay_covers(last_event_id))
        sub = self.engine.subscribe(start)
        self._subs.add(sub)
        preamble = f"retry: {RETRY_MS}\n\n".encode()
        preamble += format_event("ready", {"lastEventId": start}, start)
        if not covered:
            preamble += format_event("resync", {"lastEventId": last_event_id, "reason": "events were missed"})
        return sub, preamble

    async def stream(self, last_event_id: int | None) -> AsyncIterator[bytes]:
        """The SSE body. Subscribes on first iteration, so a response never sent leaks nothing."""
        sub, preamble = self.open(last_event_id)
        try:
            yield preamble + self._drain(sub)  # the replay, if any, goes out at once
            while not self.closing and not sub.closed:
                await self._tick.wait()
                batch = self._drain(sub)
                if batch:
                    yield batch
                elif self._ping_round:
                    yield PING
        finally:
            sub.close()
            self._subs.discard(sub)

    def close(self) -> None:
        """End every open stream (server shutdown)."""
        self.closing = True
        for sub in list(self._subs):
            sub.close()
        if self._clock_sub is not None:
            self._clock_sub.close()
        self._flush()
        if self._clock is not None:
            self._clock.cancel()

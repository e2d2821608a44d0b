"""The one Server-Sent Events client: fetchdeck's `GET /api/events`, followed across reconnections.

Parsing is httpx-sse's (its line splitter splits at CR, LF and CRLF only, as the WHATWG
rules say, not at the other line breaks str.splitlines knows, which a task name may hold;
its decoder dispatches messages). `follow_events` is the one reconnect loop, used by the
remote TUI (tui/remote.py: patient, every failure retried) and by `fetchdeck watch`
(tui/api_client.py: a first connection that fails, or a refusal, is an error). It sends
Last-Event-ID on each reconnection, so the server replays what was missed (or says
`resync`), and yields connection changes between the events.

Payloads are not interpreted here: `SseEvent.data` is the parsed JSON; server/wire.py
turns it into typed engine events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse._decoders import SSEDecoder, SSELineDecoder  # pinned in pyproject; guarded in tests/tui/test_parts.py

log = logging.getLogger("fetchdeck.tui.sse")

DEFAULT_RETRY_MS = 3000  # what the WHATWG rules leave to the client; fetchdeck's server says 3000 too


@dataclass(frozen=True, slots=True)
class SseMessage:
    """One dispatched message as sent. `id` is the stream's last event id (carried over from earlier
    messages, what a reconnection sends); `own_id` says whether this message set it."""

    event: str
    data: str
    id: str | None
    own_id: bool = False


@dataclass(frozen=True, slots=True)
class SseEvent:
    """A message with its data parsed (JSON; the text when it is not JSON) and its own numeric id."""

    event: str
    data: Any
    id: int | None = None

    @classmethod
    def of(cls, message: SseMessage) -> SseEvent:
        try:
            data: Any = json.loads(message.data)
        except ValueError:
            data = message.data
        own = message.id if message.own_id and message.id is not None and message.id.isdigit() else None
        return cls(event=message.event, data=data, id=None if own is None else int(own))


class SseParser:
    """Line-by-line text/event-stream parser; keeps the last event id and the server's retry delay."""

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self._own_id = False
        self.last_id: int | None = None  # the last numeric event id seen (sent as Last-Event-ID)
        self.retry_ms: int | None = None

    def feed(self, line: str) -> SseMessage | None:
        """One line (without its line break); a message when the line ends one that has data."""
        if line.startswith("id:") or line == "id":
            self._own_id = True
        sse = self._decoder.decode(line)
        if sse is None:
            return None
        own, self._own_id = self._own_id, False
        if sse.retry is not None:
            self.retry_ms = sse.retry
        if own and sse.id.isdigit():
            self.last_id = int(sse.id)
        if not sse.data:  # WHATWG: a message without data is not dispatched (e.g. a lone `retry:`)
            return None
        return SseMessage(event=sse.event, data=sse.data, id=sse.id or None, own_id=own)

    def feed_line(self, line: str) -> SseEvent | None:
        message = self.feed(line)
        return None if message is None else SseEvent.of(message)


async def parse_sse(lines: AsyncIterable[str], parser: SseParser | None = None) -> AsyncIterator[SseMessage]:
    """The messages of an event stream given as lines. Comments (keep-alives) are skipped."""
    parser = parser or SseParser()
    async for line in lines:
        message = parser.feed(line.rstrip("\r\n"))
        if message is not None:
            yield message


async def _lines(response: httpx.Response) -> AsyncIterator[str]:
    splitter = SSELineDecoder()
    async for text in response.aiter_text():
        for line in splitter.decode(text):
            yield line
    for line in splitter.flush():
        yield line


# ---------------------------------------------------------------- the reconnect loop


@dataclass(frozen=True, slots=True)
class Connecting:
    """A connection attempt begins."""


@dataclass(frozen=True, slots=True)
class Connected:
    """The stream is open; `first`: no earlier connection of this loop got through."""

    first: bool


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The stream ended or could not be opened; the next attempt is in `retry_in` seconds."""

    reason: str
    retry_in: float


StreamItem = SseEvent | Connecting | Connected | Disconnected


class StreamRefused(Exception):
    """The server answered the stream request with an error status."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code} {response.reason_phrase}".rstrip())
        self.response = response


async def follow_events(
    http: httpx.AsyncClient, path: str = "/api/events", *, last_event_id: int | None = None,
    delays: Sequence[float] = (), connect_timeout: float = 10.0, read_timeout: float | None = None,
    fail_fast: bool = False, closed: asyncio.Event | None = None,
) -> AsyncGenerator[StreamItem, None]:
    """Follow an SSE stream forever (until `closed` is set, or the caller stops iterating).

    delays: seconds to wait after the 1st, 2nd... failed attempt in a row (the last repeats); empty:
    the server's `retry:` delay. read_timeout: silence this long is a dead link (the server pings).
    fail_fast: a first connection that fails raises (httpx.TransportError) and an error answer
    raises StreamRefused at any time; otherwise every failure is reported and retried.
    """
    parser = SseParser()
    parser.last_id = last_event_id
    closed = closed or asyncio.Event()
    failures = 0
    connected_once = False
    while not closed.is_set():
        yield Connecting()
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if parser.last_id is not None:
            headers["Last-Event-ID"] = str(parser.last_id)
        try:
            async with http.stream("GET", path, headers=headers,
                                   timeout=httpx.Timeout(connect_timeout, read=read_timeout)) as response:
                if response.is_error:
                    await response.aread()
                    raise StreamRefused(response)
                failures = 0
                yield Connected(first=not connected_once)
                connected_once = True
                async for message in parse_sse(_lines(response), parser):
                    yield SseEvent.of(message)
            reason = "the server closed the event stream"
        except StreamRefused as exc:
            if fail_fast:
                raise
            reason = str(exc)
        except (httpx.HTTPError, OSError) as exc:
            if fail_fast and not connected_once and isinstance(exc, httpx.TransportError):
                raise
            reason = str(exc) or exc.__class__.__name__
        except Exception as exc:  # a patient loop never dies
            if fail_fast:
                raise
            log.exception("event stream error")
            reason = str(exc) or exc.__class__.__name__
        if closed.is_set():
            return
        if delays:
            delay = delays[min(failures, len(delays) - 1)]
        else:
            delay = (parser.retry_ms if parser.retry_ms is not None else DEFAULT_RETRY_MS) / 1000
        failures += 1
        yield Disconnected(reason, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closed.wait(), delay)

"""tui/sse.py, the one SSE client: parsing on httpx-sse, and the one reconnect loop the remote TUI and
`fetchdeck watch` share (against scripted answers; tests/tui/test_api.py and tests/api/test_cli.py run
it against a real server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable

import httpx
import pytest
from httpx_sse._decoders import SSEDecoder, SSELineDecoder

from tui.api_client import ApiClient, ApiError, ServerUnreachable
from tui.sse import Connected, Connecting, Disconnected, SseEvent, SseParser, StreamItem, follow_events

Handler = Callable[[httpx.Request], httpx.Response]


def stream(body: str, status: int = 200) -> httpx.Response:
    return httpx.Response(status, headers={"content-type": "text/event-stream"}, content=body.encode())


def test_httpx_sse_internals_still_exist() -> None:
    """tui/sse.py feeds lines to these (pyproject pins httpx-sse below 0.5): an upgrade that changes
    them must fail here."""
    lines = SSELineDecoder()
    assert lines.decode("data: a\u2028b\r\nid: 3\n") == ["data: a\u2028b", "id: 3"]  # CR, LF, CRLF only
    assert lines.decode("data: tail") == [] and lines.flush() == ["data: tail"]
    decoder = SSEDecoder()
    assert decoder.decode("id: 3") is None and decoder.decode("data: x") is None
    sse = decoder.decode("")
    assert sse is not None and (sse.event, sse.data, sse.id, sse.retry) == ("message", "x", "3", None)


def test_own_ids_json_data_and_the_retry_delay() -> None:
    parser = SseParser()
    got = [parser.feed_line(line) for line in [
        "retry: 1500", "", "id: 4", "event: ready", 'data: {"lastEventId": 4}', "",
        "event: resync", 'data: {"reason": "events were missed"}', "", ": ping", "",
        "id: 5", "event: download-start", 'data: {"id": "1", "name": "a\u2028b"}', "", "data: not json", "",
    ]]
    events = [e for e in got if e is not None]
    assert events == [
        SseEvent("ready", {"lastEventId": 4}, 4),
        SseEvent("resync", {"reason": "events were missed"}, None),  # no id of its own
        SseEvent("download-start", {"id": "1", "name": "a\u2028b"}, 5),
        SseEvent("message", "not json", None),
    ]
    assert parser.retry_ms == 1500 and parser.last_id == 5


async def collect(
    items: AsyncGenerator[StreamItem, None], until: Callable[[list[StreamItem]], bool]
) -> list[StreamItem]:
    seen: list[StreamItem] = []
    async with asyncio.timeout(10):
        async for item in items:
            seen.append(item)
            if until(seen):
                break
    return seen


async def test_the_patient_loop_reports_failures_and_resumes_after_the_last_id() -> None:
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if len(requests) == 1:
            raise httpx.ConnectError("connection refused")
        if len(requests) == 2:
            return stream("", status=503)
        if len(requests) == 3:
            return stream('id: 7\nevent: download-start\ndata: {"id": "1"}\n\n')  # then the server hangs up
        return stream('id: 8\nevent: download-stop\ndata: {"id": "1"}\n\n')

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://fd") as http:
        items = follow_events(http, delays=(0.0, 0.01))
        seen = await collect(items, lambda s: isinstance(s[-1], SseEvent) and s[-1].id == 8)
        await items.aclose()
    assert seen == [
        Connecting(), Disconnected("connection refused", 0.0),
        Connecting(), Disconnected("HTTP 503 Service Unavailable", 0.01),
        Connecting(), Connected(first=True), SseEvent("download-start", {"id": "1"}, 7),
        Disconnected("the server closed the event stream", 0.0),  # a connection that got through resets the delays
        Connecting(), Connected(first=False), SseEvent("download-stop", {"id": "1"}, 8),
    ]
    assert [r.headers.get("Last-Event-ID") for r in requests] == [None, None, None, "7"]
    assert all(r.url.path == "/api/events" and r.headers["Accept"] == "text/event-stream" for r in requests)


async def test_closing_ends_the_patient_loop() -> None:
    closed = asyncio.Event()

    def answer(request: httpx.Request) -> httpx.Response:
        closed.set()
        raise httpx.ConnectError("refused")

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://fd") as http:
        seen = [item async for item in follow_events(http, delays=(30.0,), closed=closed)]
    assert seen == [Connecting()]


async def test_watch_fails_fast_on_the_first_connection_and_on_refusals() -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    async with ApiClient("http://fd", transport=httpx.MockTransport(unreachable)) as api:
        with pytest.raises(ServerUnreachable, match="connection refused"):
            await anext(api.events())

    def refused(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"success": False, "code": 40100, "message": "token required", "data": None})

    async with ApiClient("http://fd", transport=httpx.MockTransport(refused)) as api:
        with pytest.raises(ApiError, match="token required") as info:
            await anext(api.events())
    assert info.value.status == 401 and info.value.code == 40100


async def test_watch_reconnects_after_the_servers_retry_delay_once_connected() -> None:
    calls = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise httpx.ReadError("reset")  # a drop after the first connection: retried
        return stream(f"retry: 10\n\nid: {calls}\nevent: download-update\ndata: {{\"id\": \"1\"}}\n\n")

    async with ApiClient("http://fd", transport=httpx.MockTransport(answer)) as api:
        events = api.events()
        first, second = await anext(events), await anext(events)
        await events.aclose()  # type: ignore[attr-defined]
    assert (first.id, second.id, calls) == (1, 3, 3)
    async with ApiClient("http://fd", transport=httpx.MockTransport(answer)) as api:
        once = [event async for event in api.events(reconnect=False)]
    assert [e.id for e in once] == [4]

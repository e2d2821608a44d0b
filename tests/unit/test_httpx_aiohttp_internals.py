"""Guards for the httpx-aiohttp internals fetchdeck relies on (pyproject bounds it to <0.3).

core/downloaders/net.py raises `AiohttpResponseStream.CHUNK_SIZE` and builds its
`_AiohttpTransport` without calling `AiohttpTransport.__init__`; `classify` (the same
module) reads the aiohttp error httpx-aiohttp chains as the cause. A release
that renames or reshapes any of these must fail here, with the reason, not make downloads slow
or their errors vague.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from httpx_aiohttp import transport as aiohttp_transport

from core.downloaders.net import HttpClients, _AiohttpTransport


class _Content:
    def __init__(self) -> None:
        self.sizes: list[int] = []

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        self.sizes.append(n)
        yield b"x"


class _Response:
    def __init__(self) -> None:
        self.content = _Content()


async def test_the_stream_reads_with_the_raised_chunk_size() -> None:
    stream_class = aiohttp_transport.AiohttpResponseStream
    assert stream_class.CHUNK_SIZE == 512 * 1024, (
        "core/downloaders/net.py sets AiohttpResponseStream.CHUNK_SIZE at import; something reset or renamed it"
    )
    response = _Response()
    stream = stream_class(response)  # type: ignore[arg-type]  # the one attribute the stream reads
    assert [chunk async for chunk in stream] == [b"x"]
    assert response.content.sizes == [512 * 1024], (
        "AiohttpResponseStream no longer reads its body with content.iter_chunked(self.CHUNK_SIZE): "
        "the chunk-size patch in core/downloaders/net.py has no effect (16 KiB reads cost CPU)"
    )


def test_the_transport_sets_every_attribute_the_library_init_sets() -> None:
    theirs = set(vars(aiohttp_transport.AiohttpTransport()))
    ours = set(vars(_AiohttpTransport(lambda: aiohttp.ClientSession(), None)))
    assert theirs <= ours, (
        f"httpx-aiohttp's AiohttpTransport.__init__ now also sets {sorted(theirs - ours)}: "
        "_AiohttpTransport.__init__ (core/downloaders/net.py) must set them too"
    )
    assert callable(aiohttp_transport.AiohttpTransport.get_client), "AiohttpTransport.get_client is gone"


async def test_a_refused_connection_keeps_the_aiohttp_cause() -> None:
    with socket.socket() as held:  # bound, never listening: connecting to it is refused
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        clients = HttpClients(connect_timeout=5.0)
        try:
            with pytest.raises(httpx.TransportError) as caught:
                await clients.get().get(f"http://127.0.0.1:{port}/")
        finally:
            await clients.aclose()
    cause = caught.value.__cause__
    assert isinstance(cause, aiohttp.ClientConnectorError), (
        f"httpx-aiohttp raised {type(caught.value).__name__} with cause {cause!r}: classify reads the "
        "aiohttp error from the chain to say 'cannot connect' (refused, DNS) instead of a vague timeout"
    )

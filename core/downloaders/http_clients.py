"""The shared HTTP layer: httpx clients, pooled per (proxy, TLS) setting.

The default transport is aiohttp behind httpx's API (httpx-aiohttp): at
hundreds of MB/s httpx's own h11 transport costs about twice the CPU per byte.
SOCKS proxies need httpx's own transport (socksio), so those clients use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import httpx
from httpx_aiohttp import transport as aiohttp_transport

from core.validation import normalize_proxy

# httpx-aiohttp reads the body in 16 KiB chunks; larger reads cut per-chunk
# overhead (Python iterations, httpx stream wrappers) several-fold at speed.
aiohttp_transport.AiohttpResponseStream.CHUNK_SIZE = 512 * 1024

USER_AGENT = "fetchdeck/0.1 (+https://github.com/fetchdeck)"


def _aiohttp_session(insecure: bool) -> aiohttp.ClientSession:
    """The aiohttp session behind httpx: a 1 MiB read buffer, so a fast
    connection is not paused and resumed (epoll re-registration) every 64 KiB.
    ssl=True reuses aiohttp's ready-made verified context: loading a CA bundle
    again costs ~0.15 s of start-up per context on this VM."""
    connector = aiohttp.TCPConnector(ssl=not insecure, limit=512, keepalive_timeout=30)
    return aiohttp.ClientSession(connector=connector, read_bufsize=1 << 20)


class _AiohttpTransport(aiohttp_transport.AiohttpTransport):
    """httpx-aiohttp's transport over our own session (its __init__ would build an
    SSL context that is never used when a session factory is given)."""

    def __init__(self, session_factory: Callable[[], aiohttp.ClientSession], proxy: httpx.Proxy | None) -> None:
        self.client = session_factory
        self.proxy = proxy
        self.ssl_context = None  # type: ignore[assignment]  # never read: the session factory owns TLS
        self.limits = httpx.Limits()
        self.retries = 0
        self.socket_options = []
        self.uds = None
        self.local_address = None


@dataclass(frozen=True, slots=True)
class ClientKey:
    proxy: str | None
    insecure: bool


class HttpClients:
    """One httpx.AsyncClient per (proxy, insecure) pair, shared by all tasks."""

    def __init__(self, read_timeout: float = 30.0, connect_timeout: float = 15.0) -> None:
        self._clients: dict[ClientKey, httpx.AsyncClient] = {}
        self.timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=30.0, pool=None)

    def get(self, proxy: str | None = None, insecure: bool = False) -> httpx.AsyncClient:
        key = ClientKey(normalize_proxy(proxy), insecure)
        client = self._clients.get(key)
        if client is None or client.is_closed:
            client = self._make(key)
            self._clients[key] = client
        return client

    def _make(self, key: ClientKey) -> httpx.AsyncClient:
        proxy = httpx.Proxy(key.proxy) if key.proxy else None
        transport: httpx.AsyncBaseTransport
        if key.proxy and key.proxy.startswith("socks"):
            limits = httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30)
            transport = httpx.AsyncHTTPTransport(verify=not key.insecure, limits=limits, proxy=proxy, trust_env=False)
        else:
            transport = _AiohttpTransport(lambda: _aiohttp_session(key.insecure), proxy)
        return httpx.AsyncClient(
            transport=transport,
            timeout=self.timeout,
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT},
            trust_env=False,
        )

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

"""The network layer every downloader shares: pooled clients, transport errors, the retry rule.

- `HttpClients`: one httpx.AsyncClient per (proxy, TLS) setting, shared by all
  tasks. The default transport is aiohttp behind httpx's API (httpx-aiohttp): at
  hundreds of MB/s httpx's own h11 transport costs about twice the CPU per byte.
  SOCKS proxies need httpx's own transport (socksio), so those clients use it.
  The proxy rule itself is core/validation.py's.
- `classify`: every transport failure (httpx's exceptions, the ones httpx-aiohttp
  maps onto `httpx.ConnectTimeout` whatever they were, aiohttp's, OSError errnos)
  becomes one `NetworkError` subclass (core/errors.py) with a one-line reason:
  refused, DNS failure, TLS failure, timeout, reset. Nothing else decides that.
- `GetOpener`: a streamed GET straight on the aiohttp session behind a shared
  client, for the many small requests of a segmented download (HLS): httpx's
  request path (URL model, header merge, cookie extraction per response) costs
  as much CPU as aiohttp's own there. Same headers, cookies, proxy, TLS, timeouts
  and errors as through httpx; a redirect hands the request (and the opener's
  later ones) back to httpx, whose redirect rules for cookies and auth then apply.
- `Retry` / `retrying`: the one retry loop (backoff with jitter, Retry-After, a
  fixed schedule for webhooks), which logs each wait, shows it as the task's note
  ("retrying in 4 s: connection refused (3/8)") and, for a one-shot `get`, gives
  up on a server that never answered once `unreachable_budget` seconds are spent.
"""

from __future__ import annotations

import asyncio
import errno
import http.cookiejar
import random
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Protocol, TypeVar

import httpx

from core.errors import (
    CannotConnect,
    ConnectionRefused,
    ConnectionReset,
    DnsFailure,
    DownloadError,
    HttpStatusError,
    NetworkError,
    NoSpaceLeft,
    TimedOut,
    TlsFailure,
)
from core.validation import normalize_proxy

T = TypeVar("T")


def _import_aiohttp_deferring_cas() -> list[ssl.SSLContext]:
    """Import aiohttp without loading the CA bundle, twice, at import time.

    aiohttp.connector builds its verified and unverified SSL contexts when it is
    imported, and each loads the system CA bundle: about a third of a `get`'s
    start-up CPU, also for plain-http downloads (and for the unverified context,
    which never reads them). The loads are deferred here and done by `load_cas()`
    before the first https request. Returns the contexts still waiting for them.
    """
    deferred: list[ssl.SSLContext] = []
    own = ssl.SSLContext.__dict__.get("set_default_verify_paths")  # None: inherited from _ssl._SSLContext

    def defer(context: ssl.SSLContext) -> None:
        deferred.append(context)

    ssl.SSLContext.set_default_verify_paths = defer  # type: ignore[method-assign,assignment]
    try:
        import aiohttp.connector  # noqa: F401
    finally:
        if own is None:
            del ssl.SSLContext.set_default_verify_paths
        else:
            ssl.SSLContext.set_default_verify_paths = own  # type: ignore[method-assign]
    return [c for c in deferred if c.verify_mode != ssl.CERT_NONE]  # an unverified context needs none


_PENDING_CAS = _import_aiohttp_deferring_cas()
_CAS_LOCK = threading.Lock()

import aiohttp  # noqa: E402  (after the deferral above)
from httpx_aiohttp import transport as aiohttp_transport  # noqa: E402


def load_cas() -> None:
    """Load the CA bundle into aiohttp's verified context (blocking, once; then a no-op)."""
    with _CAS_LOCK:
        while _PENDING_CAS:
            _PENDING_CAS.pop().set_default_verify_paths()

# httpx-aiohttp reads the body in 16 KiB chunks; larger reads cut per-chunk
# overhead (Python iterations, httpx stream wrappers) several-fold at speed.
aiohttp_transport.AiohttpResponseStream.CHUNK_SIZE = 512 * 1024

USER_AGENT = "fetchdeck/0.1 (+https://github.com/fetchdeck)"


# ---- clients -------------------------------------------------------------------

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

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if _PENDING_CAS and (request.url.scheme == "https" or (self.proxy and self.proxy.url.scheme == "https")):
            await asyncio.to_thread(load_cas)
        return await super().handle_async_request(request)


class SharedClient(httpx.AsyncClient):
    """The httpx client HttpClients hands out; `direct` is its aiohttp transport, if it has one."""

    def __init__(
        self, direct: _AiohttpTransport | None, transport: httpx.AsyncBaseTransport, timeout: httpx.Timeout,
        cookies: http.cookiejar.CookieJar | None = None,
    ) -> None:
        super().__init__(transport=transport, timeout=timeout, follow_redirects=True,
                         headers={"User-Agent": USER_AGENT}, trust_env=False, cookies=cookies)
        self.direct = direct


@dataclass(frozen=True, slots=True)
class ClientKey:
    proxy: str | None
    insecure: bool


class HttpClients:
    """One httpx.AsyncClient per (proxy, insecure) pair, shared by all tasks.

    unreachable_budget: seconds a task may spend retrying a server that has not
    answered once in this run (refused, no such host, connect timeout) before it
    gives up; None = the patient policy (every retry). The one-shot `get` sets it.
    cookies: the cookie jar every client sends from and stores `Set-Cookie` into (the
    engine's, core/cookies.py; set before the first client is made); None: each client its own.
    """

    def __init__(
        self, read_timeout: float = 30.0, connect_timeout: float = 15.0, unreachable_budget: float | None = None,
        cookies: http.cookiejar.CookieJar | None = None,
    ) -> None:
        self._clients: dict[ClientKey, httpx.AsyncClient] = {}
        self.cookies = cookies
        self.timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=30.0, pool=None)
        self.unreachable_budget = unreachable_budget

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
        direct: _AiohttpTransport | None = None
        if key.proxy and key.proxy.startswith("socks"):
            limits = httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30)
            transport = httpx.AsyncHTTPTransport(verify=not key.insecure, limits=limits, proxy=proxy, trust_env=False)
        else:
            transport = direct = _AiohttpTransport(lambda: _aiohttp_session(key.insecure), proxy)
        return SharedClient(direct, transport, self.timeout, self.cookies)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


# ---- streamed GETs straight on aiohttp ------------------------------------------------

class StreamedResponse(Protocol):
    """What a downloader reads of a streamed GET (httpx.Response has it; so has DirectResponse)."""

    @property
    def status_code(self) -> int: ...
    @property
    def reason_phrase(self) -> str: ...
    @property
    def url(self) -> object: ...  # str() of it is the final URL
    @property
    def headers(self) -> Mapping[str, str]: ...
    def aiter_bytes(self) -> AsyncIterator[bytes]: ...


@contextmanager
def _as_httpx_errors(url: str) -> Iterator[None]:
    """aiohttp's errors as httpx-aiohttp maps them, with the request attached as httpx does, so
    classify() reads the same chain (and names the same host) whichever path a request took."""
    try:
        with aiohttp_transport.map_aiohttp_exceptions():
            yield
    except httpx.RequestError as exc:
        exc.request = httpx.Request("GET", url)
        raise


class _RawStream(httpx.AsyncByteStream):
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            yield chunk


class DirectResponse:
    """An aiohttp response read the way httpx would present it (a Content-Encoding is decoded by httpx)."""

    __slots__ = ("_raw", "_url")

    def __init__(self, raw: aiohttp.ClientResponse, url: str) -> None:
        self._raw = raw
        self._url = url

    @property
    def status_code(self) -> int:
        return self._raw.status

    @property
    def reason_phrase(self) -> str:
        return self._raw.reason or ""

    @property
    def url(self) -> str:
        return str(self._raw.url)

    @property
    def headers(self) -> Mapping[str, str]:
        return self._raw.headers

    async def _chunks(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._url):
            async for chunk in self._raw.content.iter_chunked(aiohttp_transport.AiohttpResponseStream.CHUNK_SIZE):
                yield chunk

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        encoding = self._raw.headers.get("content-encoding", "identity").strip().lower()
        if encoding == "identity":
            async for chunk in self._chunks():
                yield chunk
            return
        decoded = httpx.Response(self.status_code, headers=self._raw.raw_headers, stream=_RawStream(self._chunks()),
                                 request=httpx.Request("GET", self._url))
        async for chunk in decoded.aiter_bytes():
            yield chunk


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class GetOpener:
    """Streamed GETs for one download: straight on aiohttp when the client allows it (see the module doc)."""

    def __init__(self) -> None:
        self.direct = True  # False once a request was redirected: httpx follows redirects from then on

    @asynccontextmanager
    async def open(
        self, client: httpx.AsyncClient, url: str, headers: Mapping[str, str]
    ) -> AsyncIterator[StreamedResponse]:
        transport = client.direct if isinstance(client, SharedClient) and self.direct else None
        if transport is not None and url.startswith(("http://", "https://")) and not client.is_closed:
            sent = httpx.Headers(client.headers)
            sent.update(headers)
            if client.cookies.jar:  # as httpx adds them: a Cookie header the task gives wins
                request = httpx.Request("GET", url, headers=sent)
                client.cookies.set_cookie_header(request)
                sent = request.headers
            async with self._direct(transport, client, url, sent) as response:
                if response is not None:
                    yield response
                    return
            self.direct = False
        async with client.stream("GET", url, headers=headers) as streamed:
            yield streamed

    @asynccontextmanager
    async def _direct(
        self, transport: _AiohttpTransport, client: httpx.AsyncClient, url: str, headers: httpx.Headers
    ) -> AsyncIterator[DirectResponse | None]:
        """The response, or None for a redirect (released: httpx asks again and follows it)."""
        if _PENDING_CAS and (url.startswith("https:") or (transport.proxy and transport.proxy.url.scheme == "https")):
            await asyncio.to_thread(load_cas)
        if not isinstance(transport.client, aiohttp.ClientSession):  # as the transport does on its first request
            transport.client = transport.get_client()
        proxy, timeout = transport.proxy, client.timeout
        with _as_httpx_errors(url):
            request = transport.client.request(
                "GET", url, headers=headers, allow_redirects=False, auto_decompress=False, compress=False,
                timeout=aiohttp.ClientTimeout(sock_connect=timeout.connect, sock_read=timeout.read,
                                              connect=timeout.pool),
                proxy=str(proxy.url) if proxy else None,
                proxy_auth=aiohttp.BasicAuth(*proxy.auth) if proxy and proxy.auth else None,
                proxy_headers=proxy.headers if proxy else None,
            )
            raw = await request.__aenter__()
        try:
            if "set-cookie" in raw.headers:
                client.cookies.extract_cookies(
                    httpx.Response(raw.status, headers=raw.raw_headers, request=httpx.Request("GET", url)))
            if raw.status in _REDIRECTS and "location" in raw.headers:
                yield None
            else:
                yield DirectResponse(raw, url)
        finally:
            with _as_httpx_errors(url):
                await request.__aexit__(None, None, None)


# ---- HTTP status ------------------------------------------------------------------

class _HasHeaders(Protocol):
    @property
    def headers(self) -> Mapping[str, str]: ...


def retry_after_seconds(response: _HasHeaders, cap: float = 120.0) -> float | None:
    """Retry-After as seconds (delta form; an HTTP date is honoured too)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return min(cap, max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(cap, max(0.0, when.timestamp() - time.time()))


def raise_for_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise HttpStatusError(
            response.status_code, response.reason_phrase, str(response.url), retry_after_seconds(response)
        )


# ---- transport errors, classified once ------------------------------------------------

_REFUSED = {errno.ECONNREFUSED}
_RESET = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}
_NO_ROUTE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN, errno.EADDRNOTAVAIL}


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _where(chain: list[BaseException]) -> str:
    """host:port of the failed connection, when aiohttp or the request says."""
    for link in chain:
        if isinstance(link, aiohttp.ClientConnectorError):
            return f"{link.host}:{link.port}"
    for link in chain:
        if isinstance(link, httpx.RequestError):
            try:
                url = link.request.url
            except RuntimeError:  # raised without a request
                continue
            return f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
    return ""


def _os_reason(error: OSError) -> str:
    return str(error.strerror or error).strip() or type(error).__name__


def _tls(chain: list[BaseException]) -> TlsFailure | None:
    for link in chain:
        inner = getattr(link, "certificate_error", None)  # aiohttp.ClientConnectorCertificateError
        cert = inner if isinstance(inner, ssl.SSLCertVerificationError) else link
        if isinstance(cert, ssl.SSLCertVerificationError):
            detail = getattr(cert, "verify_message", None) or getattr(cert, "reason", None) or "untrusted"
            return TlsFailure(f"TLS certificate verification failed ({detail}); "
                              "enable 'insecure' to skip verification")
    handshake = any(isinstance(link, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError) for link in chain)
    for link in chain:
        if isinstance(link, aiohttp.ClientError):
            continue  # some are ssl.SSLErrors too, without a reason: read the one they wrap
        if isinstance(link, ssl.SSLError) and not isinstance(link, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            reason = str(getattr(link, "reason", None) or link).replace("_", " ").lower()
            where = _where(chain)
            hint = " (does the server speak https?)" if "wrong version number" in reason else ""
            if handshake or "handshake" in reason or hint:
                return TlsFailure(f"TLS handshake with {where or 'the server'} failed: {reason}{hint}")
    return None


def classify(exc: BaseException) -> DownloadError | None:
    """The DownloadError `exc` stands for: itself if it is one, a NetworkError for a
    transport failure, else None (not a network problem: a bug, a local OSError...).

    httpx-aiohttp maps every aiohttp connection error to httpx.ConnectTimeout, so
    the real cause is read from the exception chain before the outer type.
    """
    if isinstance(exc, DownloadError):
        return exc
    chain = _chain(exc)
    if not any(isinstance(link, httpx.HTTPError | aiohttp.ClientError | OSError) for link in chain):
        return None
    tls = _tls(chain)
    if tls is not None:
        return tls
    where = _where(chain)
    for link in chain:
        if isinstance(link, aiohttp.ClientConnectorDNSError | socket.gaierror):
            host = where.rsplit(":", 1)[0] or "the host"
            detail = next((_os_reason(g) for g in chain if isinstance(g, socket.gaierror)), "lookup failed")
            return DnsFailure(f"cannot resolve {host}: {detail}")
    for link in chain:
        if isinstance(link, ConnectionRefusedError) or (isinstance(link, OSError) and link.errno in _REFUSED):
            return ConnectionRefused(f"connection refused by {where or 'the server'}")
    for link in chain:
        if isinstance(link, aiohttp.ClientProxyConnectionError | httpx.ProxyError):
            return CannotConnect(f"proxy error: {link}" if str(link) else "cannot connect to the proxy")
    for link in chain:
        if isinstance(link, OSError) and link.errno == errno.ENOSPC:  # raised past a NoSpaceLeft wrapper
            return NoSpaceLeft(str(link.filename or ""))
    via_aiohttp = any(isinstance(link, aiohttp.ClientError) for link in chain)
    for link in chain:
        if isinstance(link, aiohttp.ConnectionTimeoutError) or (
            isinstance(link, httpx.ConnectTimeout) and not via_aiohttp  # httpx's own transport (SOCKS)
        ):
            timed_out = TimedOut(f"timed out connecting to {where or 'the server'}")
            timed_out.unreachable = True
            return timed_out
        if isinstance(link, aiohttp.ClientConnectorError):  # no route, network down...
            return CannotConnect(f"cannot connect to {where}: {_os_reason(link.os_error)}")
        if isinstance(link, OSError) and link.errno in _NO_ROUTE:
            return CannotConnect(f"cannot connect to {where or 'the server'}: {_os_reason(link)}")
    for link in chain:
        if isinstance(link, ConnectionResetError | BrokenPipeError) or (
            isinstance(link, OSError) and link.errno in _RESET
        ):
            return ConnectionReset("the connection was reset by the server")
        if isinstance(link, aiohttp.ServerDisconnectedError):
            return ConnectionReset("the server closed the connection")
        if isinstance(link, aiohttp.ClientPayloadError):
            return ConnectionReset("the connection broke off in the middle of the body")
        if isinstance(link, httpx.RemoteProtocolError):
            return ConnectionReset(f"the connection broke off: {link}" if str(link) else "the connection broke off")
    for link in chain:
        if isinstance(link, aiohttp.ServerTimeoutError | asyncio.TimeoutError | httpx.ReadTimeout):
            return TimedOut("timed out waiting for the server")
        if isinstance(link, httpx.TimeoutException):
            return TimedOut(f"timed out ({type(link).__name__})")
    for link in chain:
        if isinstance(link, httpx.TransportError | aiohttp.ClientError):
            return NetworkError(f"connection error: {link or type(link).__name__}")
    for link in chain:
        if isinstance(link, httpx.TooManyRedirects):
            return DownloadError("too many redirects")
        if isinstance(link, httpx.HTTPError):  # e.g. a body that does not decode
            return DownloadError(f"{type(link).__name__}: {link}" if str(link) else type(link).__name__)
    return None


def is_retryable(exc: BaseException) -> bool:
    error = classify(exc)
    return error is not None and error.retryable


def describe_error(exc: BaseException) -> str:
    """A one-line reason a user can read, for logs and the task's error field. Never raises."""
    try:
        return _describe(exc)
    except Exception:
        return f"{type(exc).__name__}: {exc!r}"


def _describe(exc: BaseException) -> str:
    error = classify(exc)
    if error is not None:
        return str(error) or type(error).__name__
    if isinstance(exc, OSError):
        return f"{exc.strerror or type(exc).__name__}{f': {exc.filename}' if exc.filename else ''}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def as_download_error(exc: Exception) -> Exception:
    """What a final failure raises: its DownloadError (so no path looks like a crash), else exc."""
    return classify(exc) or exc


# ---- the retry loop ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 8
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    delays: tuple[float, ...] | None = None  # a fixed schedule instead of backoff (its length is the retries)
    unreachable_budget: float | None = None  # see HttpClients

    @property
    def max_retries(self) -> int:
        return len(self.delays) if self.delays is not None else self.retries

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds before retry number `failures` (1-based); Retry-After wins when the server sent one."""
        if retry_after is not None:
            return retry_after
        if self.delays is not None:
            return self.delays[min(failures, len(self.delays)) - 1] if self.delays else 0.0
        return backoff_delay(failures - 1, self.backoff_base, self.backoff_max)


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with jitter; `attempt` counts from 0."""
    delay: float = min(cap, base * (2**attempt))
    return delay * (0.5 + random.random() / 2)


@dataclass(slots=True)
class Contact:
    """Whether the server has answered at all in this run (until it has, the unreachable budget runs)."""

    since: float = field(default_factory=time.monotonic)
    answered: bool = False


@dataclass(frozen=True, slots=True)
class RetryWait:
    """One wait before a retry, as the log and the task's note show it."""

    doing: str
    reason: str
    failures: int  # this failure's number, from 1
    retries: int
    delay: float

    @property
    def log_line(self) -> str:
        return f"{self.doing}: {self.reason}; retry {self.failures}/{self.retries} in {self.delay:.1f}s"

    @property
    def note(self) -> str:
        when = f"{self.delay:.0f}" if self.delay >= 1 else f"{self.delay:.1f}"
        return f"retrying in {when} s: {self.reason} ({self.failures}/{self.retries})"


class Retry:
    """The failures of one operation, and what to do after each: wait and retry, or raise.

    `failed(exc)` re-raises (as `final(exc)`) when exc is not worth retrying, the retries
    are used up, or the server never answered and the unreachable budget is spent;
    otherwise it logs, shows the note and sleeps. `succeeded()` starts the count again.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        doing: str,
        *,
        log: Callable[[str], None],
        note: Callable[[str | None], None] | None = None,
        contact: Contact | None = None,
        retryable: Callable[[BaseException], bool] = is_retryable,
        describe: Callable[[BaseException], str] = describe_error,
        final: Callable[[Exception], Exception] = as_download_error,
        on_wait: Callable[[RetryWait], None] | None = None,
    ) -> None:
        self.policy = policy
        self.doing = doing
        self.failures = 0
        self._log = log
        self._note = note
        self._contact = contact if contact is not None else Contact()
        self._retryable = retryable
        self._describe = describe
        self._final = final
        self._on_wait = on_wait

    def succeeded(self) -> None:
        if self.failures and self._note is not None:
            self._note(None)
        self.failures = 0
        self._contact.answered = True

    def _give_up(self, exc: Exception) -> str | None:
        if not self._retryable(exc):
            return "not retryable"
        if self.failures >= self.policy.max_retries:
            return "retries used up"
        return None

    async def failed(self, exc: Exception) -> None:
        error = classify(exc)
        unreachable = isinstance(error, NetworkError) and error.unreachable
        if not unreachable:
            self._contact.answered = True  # something answered, if only with an error
        reason = self._describe(exc)
        if self._give_up(exc) is None:
            delay = self.policy.delay(self.failures + 1, getattr(exc, "retry_after", None))
            budget = self.policy.unreachable_budget
            spent = time.monotonic() - self._contact.since
            if unreachable and budget is not None and not self._contact.answered and spent + delay > budget:
                self._log(f"{self.doing}: {reason}; giving up after {spent:.1f}s (the server never answered)")
            else:
                self.failures += 1
                wait = RetryWait(self.doing, reason, self.failures, self.policy.max_retries, delay)
                (self._on_wait or self._show)(wait)
                await asyncio.sleep(delay)
                return
        if self.failures and self._note is not None:
            self._note(None)
        final = self._final(exc)
        if final is exc:
            raise exc
        raise final from exc

    def _show(self, wait: RetryWait) -> None:
        self._log(wait.log_line)
        if self._note is not None:
            self._note(wait.note)


async def retrying(op: Callable[[], Awaitable[T]], retry: Retry) -> T:
    """Run `op` until it returns, retrying its failures as `retry` decides."""
    while True:
        try:
            result = await op()
        except Exception as exc:
            await retry.failed(exc)
        else:
            retry.succeeded()
            return result

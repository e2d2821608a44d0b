"""A real HTTP/1.1 file server on 127.0.0.1 with fault injection, for tests.

The server runs aiohttp's low-level server in its own thread with its own
event loop, so the same instance serves an async test (whose loop is
unrelated), a sync test, or a downloader running in a subprocess.

    with FileServer() as srv:
        url = srv.add("/big.bin", random_bytes(50 << 20, seed=1))
        srv.faults.fail_status("/big.bin", status=503, times=2)
        srv.faults.reset_after(None, nbytes=1 << 20, times=1)
        ...
        assert srv.stats["/big.bin"].status_counts[503] == 2

Fault and stats paths are request paths ("/big.bin"); a full URL is accepted
too. ``path=None`` in a fault means "every path". Path-specific faults are
consumed before global ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import fcntl
import hashlib
import mimetypes
import os
import socket
import ssl
import struct
import termios
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar
from urllib.parse import quote, urlsplit

from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["Faults", "FileServer", "PathStats", "Stats", "random_bytes"]

CHUNK = 256 * 1024
"""Largest single write; big enough for ~GB/s on loopback, small enough to keep memory flat."""

PACE_SLICE = 0.05
"""Throttled responses write about this many seconds' worth of bytes per write."""

SHUTDOWN_TIMEOUT = 0.5
"""How long stop() lets in-flight responses (stalls, throttled streams) run before cancelling them."""

_CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m3u": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".vtt": "text/vtt",
    ".mpd": "application/dash+xml",
    ".key": "application/octet-stream",
}


def random_bytes(n: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random bytes; AES-CTR keystream, so 100+ MB takes a fraction of a second.

    Random content (not a repeated block) makes a misplaced range show up as a hash mismatch.
    """
    key = hashlib.sha256(seed.to_bytes(16, "big", signed=True)).digest()
    encryptor = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    out = encryptor.update(bytes(n))
    encryptor.finalize()  # CTR has no tail; avoids copying `out` with a concatenation
    return out


def guess_content_type(name: str) -> str:
    """Content type for a served file; streaming types fixed because system mime tables disagree (.ts)."""
    suffix = Path(name).suffix.lower()
    if suffix in _CONTENT_TYPES:
        return _CONTENT_TYPES[suffix]
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _norm_path(path: str) -> str:
    """Accept "/a", "a" or a full URL and return the request path form "/a"."""
    if "://" in path:
        path = urlsplit(path).path
    return path if path.startswith("/") else "/" + path


def _read_file(target: Path) -> tuple[bytes, os.stat_result]:
    return target.read_bytes(), target.stat()


def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


# --------------------------------------------------------------------------- ranges


class _Unsatisfiable(Exception):
    """The Range header is valid but selects nothing: answer 416."""


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """Parse a single ``bytes=`` range into (start, end_inclusive).

    Returns None when the header must be ignored (other unit, multiple ranges,
    malformed); the response is then a full 200, as RFC 9110 allows.
    Raises _Unsatisfiable for a range that selects no byte.
    """
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    if first:
        start = int(first)
        if last and int(last) < start:
            return None
        if start >= size:
            raise _Unsatisfiable
        end = min(int(last), size - 1) if last else size - 1
        return start, end
    if not last:
        return None
    suffix = int(last)
    if suffix == 0 or size == 0:
        raise _Unsatisfiable
    return max(0, size - suffix), size - 1


# --------------------------------------------------------------------------- faults


FaultKind = Literal["reset", "truncate", "stall"]


@dataclass
class _StatusRule:
    status: int
    times: int | None
    retry_after: float | None


@dataclass
class _BodyRule:
    kind: FaultKind
    nbytes: int
    times: int | None
    seconds: float = 0.0


_R = TypeVar("_R", _StatusRule, _BodyRule)


@dataclass(frozen=True)
class BodyFault:
    """The body fault chosen for one response."""

    kind: FaultKind
    nbytes: int
    seconds: float = 0.0


class Faults:
    """Thread-safe fault plan: set from the test thread, consumed by the server thread.

    ``times=None`` means "every matching request until clear()". Rules for the
    same path queue up in the order they were set.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: dict[str | None, list[_StatusRule]] = {}
        self._body: dict[str | None, list[_BodyRule]] = {}
        self._throttle: dict[str | None, float] = {}

    @staticmethod
    def _key(path: str | None) -> str | None:
        return None if path is None else _norm_path(path)

    def fail_status(
        self, path: str | None, status: int = 503, times: int | None = 1, retry_after: float | None = None
    ) -> None:
        """The next `times` requests (any method) for path answer `status` with a tiny body."""
        with self._lock:
            self._status.setdefault(self._key(path), []).append(_StatusRule(status, times, retry_after))

    def reset_after(self, path: str | None, nbytes: int, times: int | None = 1) -> None:
        """The next `times` GET responses send headers + `nbytes` of body, then reset the TCP connection."""
        self._add_body(path, _BodyRule("reset", nbytes, times))

    def truncate(self, path: str | None, nbytes: int, times: int | None = 1) -> None:
        """The next `times` GET responses declare the full length but close cleanly after `nbytes`."""
        self._add_body(path, _BodyRule("truncate", nbytes, times))

    def stall(self, path: str | None, after_bytes: int, seconds: float, times: int | None = 1) -> None:
        """The next `times` GET responses send `after_bytes`, go silent for `seconds`, then close."""
        self._add_body(path, _BodyRule("stall", after_bytes, times, seconds))

    def throttle(self, path: str | None, bytes_per_second: float | None) -> None:
        """Pace every response body for path to this rate (per connection); None removes it.

        Takes effect on running responses too, so a test can unthrottle to let a download finish.
        """
        with self._lock:
            key = self._key(path)
            if bytes_per_second is None:
                self._throttle.pop(key, None)
            else:
                if bytes_per_second <= 0:
                    raise ValueError("bytes_per_second must be positive")
                self._throttle[key] = float(bytes_per_second)

    def clear(self) -> None:
        """Drop every fault and throttle."""
        with self._lock:
            self._status.clear()
            self._body.clear()
            self._throttle.clear()

    def clear_path(self, path: str | None) -> None:
        """Drop the faults and throttle set for exactly this path (None: the global ones)."""
        with self._lock:
            key = self._key(path)
            self._status.pop(key, None)
            self._body.pop(key, None)
            self._throttle.pop(key, None)

    def _add_body(self, path: str | None, rule: _BodyRule) -> None:
        if rule.nbytes < 0:
            raise ValueError("byte count must be >= 0")
        with self._lock:
            self._body.setdefault(self._key(path), []).append(rule)

    def take_status(self, path: str) -> _StatusRule | None:
        """Consume one status fault for this request (server side)."""
        with self._lock:
            rule = self._take(self._status, path)
            return dc_replace(rule) if rule else None

    def take_body(self, path: str) -> BodyFault | None:
        """Consume one body fault for this GET response (server side)."""
        with self._lock:
            rule = self._take(self._body, path)
            return BodyFault(rule.kind, rule.nbytes, rule.seconds) if rule else None

    def rate(self, path: str) -> float | None:
        """Current throttle for path, path-specific first."""
        with self._lock:
            return self._throttle.get(path, self._throttle.get(None))

    @staticmethod
    def _take(table: dict[str | None, list[_R]], path: str) -> _R | None:
        for key in (path, None):
            rules = table.get(key)
            while rules:
                rule = rules[0]
                if rule.times is not None and rule.times <= 0:
                    rules.pop(0)
                    continue
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times == 0:
                        rules.pop(0)
                return rule
        return None


# --------------------------------------------------------------------------- stats


@dataclass
class PathStats:
    """Counters for one request path (a snapshot when read through Stats)."""

    requests: int = 0
    range_requests: int = 0
    bytes_sent: int = 0
    status_counts: Counter[int] = field(default_factory=Counter)
    range_headers: list[str] = field(default_factory=list)
    if_range_headers: list[str] = field(default_factory=list)
    methods: Counter[str] = field(default_factory=Counter)
    headers: list[dict[str, str]] = field(default_factory=list, repr=False)
    connections: int = 0
    active: int = 0
    max_active: int = 0

    def copy(self) -> PathStats:
        return PathStats(
            requests=self.requests,
            range_requests=self.range_requests,
            bytes_sent=self.bytes_sent,
            status_counts=Counter(self.status_counts),
            range_headers=list(self.range_headers),
            if_range_headers=list(self.if_range_headers),
            methods=Counter(self.methods),
            headers=[dict(h) for h in self.headers],
            connections=self.connections,
            active=self.active,
            max_active=self.max_active,
        )


class Stats:
    """Per-path request counters, written by the server thread and read from tests.

    ``stats[path]`` returns a consistent snapshot (zeros for a path never requested);
    re-read it to see later traffic. ``connections`` counts distinct client sockets,
    ``max_active`` the peak of concurrent in-flight requests for the path.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: dict[str, PathStats] = {}
        self._peers: dict[str, set[object]] = {}
        self.in_flight = 0  # requests being answered right now, every path
        self.max_in_flight = 0  # the peak of in_flight: what a per-host connection cap is checked against
        self.served: list[tuple[str, str | None, float]] = []  # (path, Range header, time.time()) per request

    def __getitem__(self, path: str) -> PathStats:
        with self._lock:
            stats = self._paths.get(_norm_path(path))
            return stats.copy() if stats else PathStats()

    def get(self, path: str) -> PathStats:
        return self[path]

    def __contains__(self, path: object) -> bool:
        with self._lock:
            return isinstance(path, str) and _norm_path(path) in self._paths

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._paths))

    def paths(self) -> list[str]:
        """Every path that received a request, in first-seen order."""
        with self._lock:
            return list(self._paths)

    def total(self) -> PathStats:
        """All paths summed (e.g. every segment of an HLS fixture); peers counted once."""
        with self._lock:
            out = PathStats()
            for s in self._paths.values():
                out.requests += s.requests
                out.range_requests += s.range_requests
                out.bytes_sent += s.bytes_sent
                out.status_counts.update(s.status_counts)
                out.range_headers.extend(s.range_headers)
                out.if_range_headers.extend(s.if_range_headers)
                out.methods.update(s.methods)
                out.headers.extend(dict(h) for h in s.headers)
                out.active += s.active
                out.max_active = max(out.max_active, s.max_active)
            out.connections = len(set().union(*self._peers.values())) if self._peers else 0
            return out

    def reset(self) -> None:
        with self._lock:
            self._paths.clear()
            self._peers.clear()
            self.max_in_flight = self.in_flight
            self.served.clear()

    # server side ------------------------------------------------------------

    def _begin(self, path: str, request: web.BaseRequest) -> None:
        with self._lock:
            s = self._paths.setdefault(path, PathStats())
            peers = self._peers.setdefault(path, set())
            s.requests += 1
            s.methods[request.method] += 1
            s.headers.append(dict(request.headers))
            rng = request.headers.get("Range")
            if rng is not None:
                s.range_requests += 1
                s.range_headers.append(rng)
            if_range = request.headers.get("If-Range")
            if if_range is not None:
                s.if_range_headers.append(if_range)
            transport = request.transport
            peers.add(transport.get_extra_info("peername") if transport else id(request))
            s.connections = len(peers)
            s.active += 1
            s.max_active = max(s.max_active, s.active)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.served.append((path, rng, time.time()))

    def _end(self, path: str) -> None:
        with self._lock:
            s = self._paths.get(path)
            if s is not None:
                s.active -= 1
                self.in_flight -= 1

    def _status(self, path: str, status: int) -> None:
        with self._lock:
            s = self._paths.get(path)
            if s is not None:
                s.status_counts[status] += 1

    def _sent(self, path: str, nbytes: int) -> None:
        with self._lock:
            s = self._paths.get(path)
            if s is not None:
                s.bytes_sent += nbytes


# --------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class _Resource:
    """One servable body with its validators; immutable so replace() swaps it atomically."""

    data: bytes
    etag: str | None
    last_modified: float | None
    content_type: str
    content_disposition: str | None = None
    ranges: bool = True
    send_length: bool = True


@dataclass(frozen=True)
class _Entry:
    resource: _Resource
    etag_spec: str | None
    generation: int = 0


def _quote_etag(tag: str) -> str:
    return tag if tag.startswith(('"', 'W/"')) else f'"{tag}"'


def _make_etag(spec: str | None, data: bytes, generation: int) -> str | None:
    """ETag for a spec: "auto" hashes the content; the generation makes replace() always yield a new tag."""
    suffix = f"-{generation}" if generation else ""
    if spec is None:
        return None
    if spec == "auto":
        return f'"{hashlib.sha1(data, usedforsecurity=False).hexdigest()[:20]}{suffix}"'
    tag = _quote_etag(spec)
    return tag if not suffix else tag[:-1] + suffix + '"'


# --------------------------------------------------------------------------- server


class FileServer:
    """HTTP/1.1 file server in a background thread; see the module docstring.

    The listening port is reserved at construction, so add()/url() work before
    start(). stop() followed by start() serves again on the same port (useful
    for "server went away" tests).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.ssl_context = ssl_context
        self.faults = Faults()
        self.stats = Stats()
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._dirs: dict[str, Path] = {}
        self._sock: socket.socket | None = self._bind(port)
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"{'https' if ssl_context else 'http'}://{host}:{self.port}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None
        self._answering: set[asyncio.BaseTransport] = set()  # connections with a response in flight (server loop)

    # -- content --------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base_url + quote(_norm_path(path))

    def add(
        self,
        path: str,
        data: bytes,
        *,
        etag: str | None = "auto",
        last_modified: float | None = None,
        content_type: str = "application/octet-stream",
        content_disposition: str | None = None,
        ranges: bool = True,
        send_length: bool = True,
    ) -> str:
        """Serve `data` at path and return its URL.

        etag: "auto" = content-hash strong ETag, a string = that tag (quoted if bare), None = no ETag.
        last_modified: epoch seconds for Last-Modified, None = no Last-Modified header.
        ranges=False ignores Range and omits Accept-Ranges; send_length=False streams chunked
        without Content-Length (and therefore without ranges).
        """
        path = _norm_path(path)
        data = bytes(data)
        resource = _Resource(
            data=data,
            etag=_make_etag(etag, data, 0),
            last_modified=last_modified,
            content_type=content_type,
            content_disposition=content_disposition,
            ranges=ranges and send_length,
            send_length=send_length,
        )
        with self._lock:
            self._entries[path] = _Entry(resource, etag)
        return self.url(path)

    def replace(self, path: str, data: bytes) -> None:
        """Change a file's content: new ETag (if it has one) and a strictly later Last-Modified (if set)."""
        path = _norm_path(path)
        data = bytes(data)
        with self._lock:
            entry = self._entries[path]
            gen = entry.generation + 1
            old = entry.resource
            last_modified = None
            if old.last_modified is not None:
                # HTTP dates have 1 s resolution, so force a visibly different second.
                last_modified = float(max(int(time.time()), int(old.last_modified) + 1))
            new = dc_replace(old, data=data, etag=_make_etag(entry.etag_spec, data, gen), last_modified=last_modified)
            self._entries[path] = _Entry(new, entry.etag_spec, gen)

    def remove(self, path: str) -> None:
        """Stop serving path (later requests get 404)."""
        with self._lock:
            self._entries.pop(_norm_path(path), None)

    def add_dir(self, prefix: str, directory: Path) -> str:
        """Serve every file under `directory` at `prefix/...`, read at request time.

        Files are re-read per request, so a test can rewrite a live playlist on disk.
        Returns the prefix URL with a trailing slash, ready for urljoin.
        """
        prefix = _norm_path(prefix).rstrip("/")
        with self._lock:
            self._dirs[prefix] = Path(directory).resolve()
        return self.url(prefix + "/")

    def reset_stats(self) -> None:
        self.stats.reset()

    # -- lifecycle ------------------------------------------------------------

    def _bind(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, port))
        except OSError:
            sock.close()
            raise
        return sock

    def start(self) -> FileServer:
        """Start serving in a daemon thread; returns once the port accepts connections."""
        if self._thread is not None:
            return self
        if self._sock is None:
            self._sock = self._bind(self.port)
        sock, self._sock = self._sock, None
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        errors: list[BaseException] = []
        thread = threading.Thread(
            target=self._run, args=(loop, sock, ready, errors), name=f"FileServer:{self.port}", daemon=True
        )
        thread.start()
        if not ready.wait(10) or errors:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            raise RuntimeError(f"file server failed to start: {errors[0] if errors else 'timeout'}")
        self._loop, self._thread = loop, thread
        return self

    def stop(self) -> None:
        """Close every connection and the port; in-flight responses get SHUTDOWN_TIMEOUT to finish."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = None

    close = stop

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FileServer:
        return self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    def _run(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, ready: threading.Event, errors: list[BaseException]
    ) -> None:
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._startup(sock))
            except BaseException as exc:
                errors.append(exc)
                sock.close()
                return
            finally:
                ready.set()
            loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _startup(self, sock: socket.socket) -> None:
        server = web.Server(self._handle, access_log=None, handler_cancellation=True)
        runner = web.ServerRunner(server, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        site = web.SockSite(runner, sock, backlog=1024, ssl_context=self.ssl_context)
        await site.start()
        self._runner = runner

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- request handling -----------------------------------------------------

    async def _lookup(self, path: str) -> _Resource | None:
        with self._lock:
            entry = self._entries.get(path)
            dirs = list(self._dirs.items())
        if entry is not None:
            return entry.resource
        for prefix, root in sorted(dirs, key=lambda kv: -len(kv[0])):
            if not path.startswith(prefix + "/"):
                continue
            target = (root / path[len(prefix) + 1 :]).resolve()
            if not target.is_relative_to(root) or not target.is_file():
                return None
            try:
                data, st = await asyncio.to_thread(_read_file, target)
            except OSError:
                return None
            return _Resource(
                data=data,
                etag=f'"{st.st_mtime_ns:x}-{st.st_size:x}"',
                last_modified=st.st_mtime,
                content_type=guess_content_type(target.name),
            )
        return None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        self.stats._begin(path, request)
        transport = request.transport
        if transport is not None:
            self._answering.add(transport)
        try:
            resp = await self._respond(request, path)
        finally:
            self.stats._end(path)
            if transport is not None:
                self._answering.discard(transport)
        return resp

    def drop_connections(self, limit: int | None = None) -> int:
        """Abort every connection (or `limit` of them) with a response in flight now (a server shedding load);
        how many it dropped."""
        loop = self._loop
        if loop is None:
            return 0

        def drop() -> int:
            dropped = list(self._answering)[:limit]
            for transport in dropped:
                transport.abort()
            return len(dropped)

        async def run() -> int:
            return drop()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=10)

    def _simple(self, path: str, status: int, headers: dict[str, str] | None = None) -> web.Response:
        self.stats._status(path, status)
        return web.Response(status=status, text=f"{status} {path}\n", headers=headers)

    async def _respond(self, request: web.BaseRequest, path: str) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return self._simple(path, 405, {"Allow": "GET, HEAD"})
        fail = self.faults.take_status(path)
        if fail is not None:
            headers = {}
            if fail.retry_after is not None:
                headers["Retry-After"] = f"{fail.retry_after:g}"
            return self._simple(path, fail.status, headers)
        res = await self._lookup(path)
        if res is None:
            return self._simple(path, 404)

        size = len(res.data)
        headers = {"Content-Type": res.content_type}
        if res.etag is not None:
            headers["ETag"] = res.etag
        if res.last_modified is not None:
            headers["Last-Modified"] = _http_date(res.last_modified)
        if res.content_disposition is not None:
            headers["Content-Disposition"] = res.content_disposition
        if res.ranges:
            headers["Accept-Ranges"] = "bytes"

        status, start, end = 200, 0, size - 1
        range_header = request.headers.get("Range")
        if res.ranges and range_header is not None and self._if_range_ok(request, res):
            try:
                selected = parse_range(range_header, size)
            except _Unsatisfiable:
                headers["Content-Range"] = f"bytes */{size}"
                return self._simple(path, 416, headers)
            if selected is not None:
                status, (start, end) = 206, selected
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"

        resp = web.StreamResponse(status=status, headers=headers)
        if res.send_length:
            resp.content_length = end - start + 1
        else:
            resp.enable_chunked_encoding()
        self.stats._status(path, status)
        if request.method == "HEAD":
            await resp.prepare(request)
            return resp
        fault = self.faults.take_body(path)
        await resp.prepare(request)
        await self._send_body(request, resp, path, memoryview(res.data)[start : end + 1], fault)
        return resp

    @staticmethod
    def _if_range_ok(request: web.BaseRequest, res: _Resource) -> bool:
        """If-Range: an ETag must match strongly, a date must equal Last-Modified; else serve in full."""
        value = request.headers.get("If-Range")
        if value is None:
            return True
        value = value.strip()
        if value.startswith(('"', "W/")):
            return res.etag is not None and not res.etag.startswith("W/") and value == res.etag
        if res.last_modified is None:
            return False
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return False
        return int(parsed.timestamp()) == int(res.last_modified)

    async def _send_body(
        self,
        request: web.BaseRequest,
        resp: web.StreamResponse,
        path: str,
        body: memoryview,
        fault: BodyFault | None,
    ) -> None:
        """Write the body in chunks, applying the throttle and at most one body fault."""
        limit = len(body) if fault is None else min(fault.nbytes, len(body))
        pos = 0
        pace_rate: float | None = None
        pace_start = 0.0
        pace_sent = 0
        loop = asyncio.get_running_loop()
        try:
            while pos < limit:
                rate = self.faults.rate(path)
                size = CHUNK if rate is None else max(1, min(CHUNK, int(rate * PACE_SLICE)))
                size = min(size, limit - pos)
                await resp.write(body[pos : pos + size])
                pos += size
                self.stats._sent(path, size)
                if rate is None:
                    pace_rate = None
                    continue
                if rate != pace_rate:  # (re)start pacing from this byte at the new rate
                    pace_rate, pace_start, pace_sent = rate, loop.time(), 0
                pace_sent += size
                delay = pace_start + pace_sent / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
        except ConnectionError:
            return  # client went away; aiohttp notices on write_eof
        if fault is None:
            return
        transport = request.transport
        if fault.kind == "reset":
            await self._abort(transport)
        elif fault.kind == "truncate":
            if limit < len(body) and transport is not None:
                resp.force_close()
                transport.close()
        elif fault.kind == "stall" and limit < len(body):
            await asyncio.sleep(fault.seconds)
            if transport is not None:
                resp.force_close()
                transport.close()

    @staticmethod
    async def _abort(transport: asyncio.BaseTransport | None) -> None:
        """Reset the connection after the written bytes reached the peer (RST would discard unsent data)."""
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and not transport.is_closing():
            unsent = getattr(transport, "get_write_buffer_size", lambda: 0)()
            if unsent == 0 and sock is not None:
                with contextlib.suppress(OSError):
                    unsent = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
            if unsent == 0:
                break
            await asyncio.sleep(0.005)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

"""Tiny forward proxies on 127.0.0.1 for tests: HTTP (absolute-URI + CONNECT) and SOCKS5.

Both require credentials when given some, count the connections they relay, and
run in a background thread with their own event loop (like FileServer).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import struct
import threading
from urllib.parse import urlsplit


class _ThreadedServer:
    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self.username, self.password = username, password
        self.relayed = 0
        self.rejected = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._server: asyncio.AbstractServer | None = None

    def __enter__(self):
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._server:
                self._server.close()
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, sock=self._sock)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while data := await reader.read(256 * 1024):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()

    async def _relay(self, reader, writer, host: str, port: int, first: bytes = b"") -> None:
        up_reader, up_writer = await asyncio.open_connection(host, port)
        self.relayed += 1
        if first:
            up_writer.write(first)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))


class HttpProxy(_ThreadedServer):
    """Forward proxy: plain-HTTP requests with absolute URIs, and CONNECT tunnels."""

    @property
    def url(self) -> str:
        creds = f"{self.username}:{self.password}@" if self.username else ""
        return f"http://{creds}127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = [line for line in lines[1:] if line]
        auth = next((h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("proxy-authorization:")), "")
        if self.username:
            expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            if auth != expected:
                self.rejected += 1
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                writer.close()
                return
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await self._relay(reader, writer, host, int(port))
            return
        parts = urlsplit(target)
        kept = [h for h in headers if not h.lower().startswith(("proxy-", "connection:"))]
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        request = "\r\n".join([f"{method} {path or '/'} {version}", *kept, "Connection: close", "", ""])
        await self._relay(reader, writer, parts.hostname or "", parts.port or 80, request.encode("latin-1"))


class Socks5Proxy(_ThreadedServer):
    """SOCKS5 with optional username/password auth (RFC 1928/1929), CONNECT only."""

    @property
    def url(self) -> str:
        creds = f"{self.username}:{self.password}@" if self.username else ""
        return f"socks5://{creds}127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        if self.username:
            if 2 not in methods:
                writer.write(b"\x05\xff")
                self.rejected += 1
                writer.close()
                return
            writer.write(b"\x05\x02")
            _sub = await reader.readexactly(1)
            user = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
            password = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
            if (user, password) != (self.username, self.password):
                self.rejected += 1
                writer.write(b"\x01\x01")
                writer.close()
                return
            writer.write(b"\x01\x00")
        else:
            writer.write(b"\x05\x00")
        _ver, _cmd, _rsv, atyp = await reader.readexactly(4)
        if atyp == 1:
            host = socket.inet_ntoa(await reader.readexactly(4))
        elif atyp == 3:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        else:
            host = socket.inet_ntop(socket.AF_INET6, await reader.readexactly(16))
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        writer.write(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", 0))
        await self._relay(reader, writer, host, port)

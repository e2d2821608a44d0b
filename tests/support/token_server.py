"""Servers whose media links expire, for the expired-link tests (core/relink.py).

`TokenServer` serves a folder on 127.0.0.1 in a thread. Every fetch of a
*page* (an HLS playlist, or an HTML page pointing at a media file) hands out
a new token, written into the links it contains (`?token=N`); the previous
token stops working at once. A token also expires on its own after
`per_token` HLS segments (a key asked for after that is refused too) or, for a plain media
file, after `bytes_per_token` bytes (the response is cut off there and any
later request with that token answers 403). Counters let a test check what
the client did (403s answered, Range headers seen per token).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

_URI_LINE = re.compile(r"^(?!#)(\S+)$", re.MULTILINE)
_KEY_URI = re.compile(r'URI="([^"?]+)"')


@dataclass
class TokenLog:
    pages: int = 0  # page/playlist fetches (= tokens handed out)
    forbidden: Counter[str] = field(default_factory=Counter)  # file name -> 403s answered
    ranges: list[tuple[int, str | None]] = field(default_factory=list)  # (token, Range header) per media request


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up on a cut-off response is what these tests do


class TokenServer:
    def __init__(self, root: Path, *, per_token: int | None = None, bytes_per_token: int | None = None,
                 media: str | None = None) -> None:
        """root: the folder served; media: for an HTML page, the file its <video> points at."""
        self.root = root
        self.per_token = per_token
        self.bytes_per_token = bytes_per_token
        self.media = media
        self.log = TokenLog()
        self.token = 0
        self._used: Counter[int] = Counter()  # token -> media responses or bytes given under it
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def __enter__(self) -> TokenServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # ---- pages: each fetch hands out a new token ---------------------------------------
    def _page(self, name: str) -> bytes:
        with self._lock:
            self.token += 1
            self.log.pages += 1
            token = self.token
        if name.endswith(".m3u8"):
            text = (self.root / name).read_text()
            text = _URI_LINE.sub(lambda m: f"{m.group(1)}?token={token}", text)
            text = _KEY_URI.sub(lambda m: f'URI="{m.group(1)}?token={token}"', text)
            return text.encode()
        return (f'<html><head><title>Expiring video</title></head><body>'
                f'<video src="/{self.media}?token={token}" type="video/mp4"></video></body></html>').encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                name = parts.path.lstrip("/")
                if name.endswith((".m3u8", ".html")):
                    self._send(200, server._page(name), "text/html" if name.endswith(".html") else
                               "application/vnd.apple.mpegurl")
                    return
                token_text = parse_qs(parts.query).get("token", ["0"])[0]
                token = int(token_text) if token_text.isdigit() else 0
                target = server.root / name
                if not target.is_file():
                    self._send(404, b"not found")
                    return
                server.log.ranges.append((token, self.headers.get("Range")))
                data = target.read_bytes()
                with server._lock:
                    expired = token != server.token
                    if server.per_token is not None:
                        expired = expired or server._used[token] >= server.per_token
                        if not expired and not name.endswith(".key"):
                            server._used[token] += 1  # keys do not use a token up, but die with it
                    if server.bytes_per_token is not None:
                        expired = expired or server._used[token] >= server.bytes_per_token
                    if expired:
                        server.log.forbidden[name] += 1
                if expired:
                    self._send(403, b"token expired")
                    return
                self._media(token, data)

            def _media(self, token: int, data: bytes) -> None:
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match:
                    start = int(match.group(1))
                body = data[start:]
                self.send_response(206 if match else 200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(body)))
                if match:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if server.bytes_per_token is None:
                    self.wfile.write(body)
                    return
                with server._lock:
                    allowed = max(0, server.bytes_per_token - server._used[token])
                    server._used[token] += min(allowed, len(body))
                self.wfile.write(body[:allowed])
                if allowed < len(body):
                    self.close_connection = True  # cut off: the token is used up

            def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

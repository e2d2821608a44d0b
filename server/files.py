"""Downloads from the browser: short-lived signed links to a finished task's file, and serving them.

- `POST /api/downloads/:id/file-link` (server/routes/native.py, behind the token) asks `FileLinks.link` for
  `/files/<id>/<name>?expires=<unix>&sig=<hex>`: an HMAC-SHA256 of (id, file name, expiry) under a random key
  made when the listener's app is built (links die with the server), valid for `[files] link_ttl` seconds.
- `GET|HEAD /files/<id>/<name>` (the `files` blueprint here) needs no token (server/auth.py PUBLIC_PREFIXES):
  the signature is the capability, checked before anything else. It serves the task's file only while the
  task is finished, its file is a regular file, and its real path (links resolved, then checked again on the
  opened descriptor) is inside the download roots (core/naming.py `root_containing`: the same rule as
  folders). Single byte ranges (206, 416, If-Range), ETag/Last-Modified (304), read in chunks in worker
  threads: the event loop never waits for the disk and memory stays flat for any size.
- Every answer says `attachment` with an ASCII `filename` and an RFC 8187 `filename*`, `nosniff`, a media
  type that no browser renders as a page (a known audio/video/image type, else application/octet-stream)
  and a sandboxing CSP, so a file can never run as a page of this origin.

Errors are the native envelope (server/errors.py): 403/40302 bad or expired link, 403/40303 outside the
roots, 404/40401 no such task, 404/40402 the file is gone, 409/40901 (file-link) no finished file,
416/41600 a range past the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import stat
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field
from quart import Blueprint, Quart, Response, current_app, request
from quart.wrappers.response import ResponseBody
from quart_schema import hide
from werkzeug.http import http_date, parse_date

from core.config import FilesConfig
from core.engine import Engine
from core.models import Task, TaskStatus
from core.naming import root_containing
from core.storage import is_s3_url
from server.errors import ApiError, ErrorCode
from server.state import server_state

LINKS_KEY = "fetchdeck.file_links"  # app.extensions[LINKS_KEY]: this listener's FileLinks
CHUNK = 1024 * 1024  # bytes per read (and per write to the socket)
MAX_NUMBER = 19  # digits in an expiry or a range bound (an int64 holds 18 safely)

files = Blueprint("files", __name__)


# ---------------------------------------------------------------- signing


class FileLinkData(BaseModel):
    """A link that downloads the task's file without a token, until `expires`."""

    url: str = Field(description="/files/<id>/<file name>?expires=<unix>&sig=<hex>, relative to this server")
    name: str = Field(description="The file's name")
    size: int = Field(description="The file's size in bytes")
    expires: int = Field(description="Unix time after which the link is refused (403)")


@dataclass(frozen=True, slots=True)
class FileLinks:
    """Makes and checks the signed links of one listener."""

    key: bytes
    ttl: int

    @classmethod
    def create(cls, config: FilesConfig) -> FileLinks:
        return cls(key=secrets.token_bytes(32), ttl=config.link_ttl)

    def signature(self, task_id: int, name: str, expires: int) -> str:
        # NUL cannot occur in a file name: the three parts cannot be shifted into one another.
        message = f"fetchdeck-file\x00{task_id}\x00{name}\x00{expires}".encode("utf-8", "surrogatepass")
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def url(self, task_id: int, name: str, expires: int, root_path: str = "") -> str:
        sig = self.signature(task_id, name, expires)
        path = quote(name.encode("utf-8", "surrogatepass"), safe="")
        return f"{root_path}/files/{task_id}/{path}?expires={expires}&sig={sig}"

    def link(self, task_id: int, name: str, size: int, *, root_path: str = "") -> FileLinkData:
        expires = int(time.time()) + self.ttl
        return FileLinkData(url=self.url(task_id, name, expires, root_path), name=name, size=size, expires=expires)

    def check(self, task_id: int, name: str, expires: str | None, sig: str | None) -> None:
        """ApiError 403 unless sig signs (task_id, name, expires) and expires is not past."""
        if not expires or not sig or len(expires) > MAX_NUMBER or not expires.isdigit() or not sig.isascii():
            raise _refused("this link is incomplete (it needs expires= and sig=); ask for a new one")
        if not hmac.compare_digest(self.signature(task_id, name, int(expires)), sig.lower()):
            raise _refused("this link's signature is wrong; ask for a new one")
        if int(expires) < time.time():
            raise _refused("this link has expired; ask for a new one")


def _refused(message: str) -> ApiError:
    return ApiError(403, ErrorCode.LINK_REFUSED, message)


def install(app: Quart, config: FilesConfig) -> None:
    """Give the app its link key and (unless [files] enable = false) the /files/ routes."""
    if not config.enable:
        return
    app.extensions[LINKS_KEY] = FileLinks.create(config)
    app.register_blueprint(files)


def links() -> FileLinks:
    """This listener's FileLinks (404 when downloads from the browser are off)."""
    found = current_app.extensions.get(LINKS_KEY)
    if not isinstance(found, FileLinks):
        raise ApiError(404, ErrorCode.ROUTE_NOT_FOUND, "downloads from the browser are off ([files] enable = false)")
    return found


# ---------------------------------------------------------------- the task's file on disk


class NoFile(Exception):
    """The task has no finished file on disk (not finished, gone, not a regular file, in S3)."""


class OutsideRoots(Exception):
    """The task's file, links resolved, is outside every download root."""


@dataclass(slots=True)
class OpenFile:
    """A task's file, opened (the descriptor is what is served: it was checked, the path may change)."""

    fd: int
    name: str  # the task's file name (what the link names)
    size: int
    mtime: float
    etag: str

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def roots_of(engine: Engine) -> tuple[Path, ...]:
    return (engine.download_root, *engine.allowed_roots)


def open_task_file(task: Task, roots: tuple[Path, ...]) -> OpenFile:
    """Open a finished task's file for reading, or raise NoFile/OutsideRoots. Blocking: run it in a thread."""
    if task.status is not TaskStatus.SUCCESS:
        raise NoFile(f"task {task.id} is {task.status.value}, not finished")
    if not task.file or is_s3_url(task.file):
        raise NoFile(f"task {task.id} has no file on this server's disk")
    try:
        real = Path(task.file).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        raise NoFile(f"task {task.id}'s file is not on disk any more (moved or deleted)") from None
    if root_containing(real, roots) is None:
        raise OutsideRoots(f"task {task.id}'s file is outside the download roots")
    try:
        # O_NOFOLLOW: the last component was no link when resolved and must not be one now;
        # O_NONBLOCK: a FIFO swapped in does not hang the open (fstat refuses it below).
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise NoFile(f"task {task.id}'s file is not on disk any more (moved or deleted)") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NoFile(f"task {task.id}'s output is not a single file")
        opened = _opened_path(fd)
        if opened is not None and root_containing(opened, roots) is None:
            raise OutsideRoots(f"task {task.id}'s file is outside the download roots")  # a folder swapped meanwhile
    except BaseException:
        os.close(fd)
        raise
    etag = f'"{info.st_ino:x}-{info.st_size:x}-{info.st_mtime_ns:x}"'
    return OpenFile(fd=fd, name=Path(task.file).name, size=info.st_size, mtime=info.st_mtime, etag=etag)


def _opened_path(fd: int) -> Path | None:
    """Where the descriptor really is (Linux /proc), None where the system cannot say."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return None


async def finished_file(engine: Engine, task_id: int) -> OpenFile:
    """The task's open file (TaskNotFound, NoFile, OutsideRoots), checked off the event loop."""
    task = await engine.get(task_id)
    opening = asyncio.ensure_future(asyncio.to_thread(open_task_file, task, roots_of(engine)))
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:  # the client went away: close the file once the thread has opened it
        opening.add_done_callback(_close_opened)
        raise


def _close_opened(done: asyncio.Future[OpenFile]) -> None:
    if not done.cancelled() and done.exception() is None:
        done.result().close()


async def make_link(engine: Engine, task_id: int) -> FileLinkData:
    """The answer of POST /api/downloads/:id/file-link."""
    signer = links()
    try:
        opened = await finished_file(engine, task_id)
    except NoFile as exc:
        raise ApiError(409, ErrorCode.NO_FILE, str(exc)) from None
    except OutsideRoots as exc:
        raise ApiError(403, ErrorCode.OUTSIDE_ROOTS, str(exc)) from None
    opened.close()
    return signer.link(task_id, opened.name, opened.size, root_path=request.root_path)


# ---------------------------------------------------------------- headers


# Types a browser plays or shows but never runs as a page; everything else is application/octet-stream.
# (No text/*, no SVG, no XML, no PDF: those can carry script or render as a document.)
MEDIA_TYPES = {
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".mkv": "video/x-matroska",
    ".mov": "video/quicktime", ".ts": "video/mp2t", ".mp3": "audio/mpeg", ".m4a": "audio/mp4",
    ".aac": "audio/aac", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg", ".flac": "audio/flac",
    ".wav": "audio/wav", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".webp": "image/webp",
}
OCTET_STREAM = "application/octet-stream"
_UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9 ._()\[\]+,=@!#&~^{}-]")
_ATTR_CHARS = "!#$&+-.^_`|~"  # RFC 8187 attr-char besides letters and digits


def media_type(name: str) -> str:
    return MEDIA_TYPES.get(os.path.splitext(name)[1].lower(), OCTET_STREAM)


def ascii_name(name: str) -> str:
    """An ASCII stand-in for `name` that is safe in a quoted header parameter (old clients read this one)."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    text = _UNSAFE_ASCII.sub("_", text).strip(" .")
    if not text.strip("_"):
        suffix = _UNSAFE_ASCII.sub("_", os.path.splitext(text)[1]) if "." in text else ""
        text = "download" + suffix
    return text[:200]


def content_disposition(name: str) -> str:
    """`attachment` with both names: no quote, CR/LF, slash or control character survives in either."""
    encoded = quote(name.encode("utf-8", "surrogatepass"), safe=_ATTR_CHARS)
    return f"attachment; filename=\"{ascii_name(name)}\"; filename*=UTF-8''{encoded}"


def _base_headers(opened: OpenFile) -> dict[str, str]:
    return {
        "Content-Type": media_type(opened.name),
        "Content-Disposition": content_disposition(opened.name),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private",
        "Accept-Ranges": "bytes",
        "ETag": opened.etag,
        "Last-Modified": http_date(opened.mtime),
    }


# ---------------------------------------------------------------- ranges and conditions


class Unsatisfiable(Exception):
    pass


_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range asked for as (first, last) inclusive, clamped to the file; None: send it all
    (no Range, another unit, several ranges, or a malformed one: RFC 9110 lets a server ignore those);
    Unsatisfiable: the range starts past the end (or is an empty suffix)."""
    if not header:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if len(first_text) > MAX_NUMBER or len(last_text) > MAX_NUMBER or not (first_text or last_text):
        return None
    if not first_text:  # bytes=-N: the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None
    if first >= size:
        raise Unsatisfiable
    return first, min(last, size - 1)


def _etag_list(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def not_modified(opened: OpenFile, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """RFC 9110 13.1.2/13.1.3: If-None-Match (weak comparison) wins over If-Modified-Since."""
    if if_none_match is not None:
        ours = opened.etag.removeprefix("W/")
        return any(tag == "*" or tag.removeprefix("W/") == ours for tag in _etag_list(if_none_match))
    if if_modified_since:
        since = parse_date(if_modified_since)
        return since is not None and int(opened.mtime) <= since.timestamp()
    return False


def range_applies(opened: OpenFile, if_range: str | None) -> bool:
    """If-Range: the Range counts only if the file is still the one the client has part of
    (strong ETag comparison, or the exact Last-Modified date)."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        return value == opened.etag
    return value == http_date(opened.mtime)


# ---------------------------------------------------------------- the body


class FileChunks(ResponseBody):
    """Bytes [begin, end) of an open file, CHUNK at a time, each read in a worker thread; closes the file."""

    def __init__(self, opened: OpenFile, begin: int, end: int) -> None:
        self.opened = opened
        self.position = begin
        self.end = end

    async def __aenter__(self) -> FileChunks:
        return self

    async def __aexit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.opened.close()

    def __aiter__(self) -> FileChunks:
        return self

    async def __anext__(self) -> bytes:
        if self.position >= self.end or self.opened.fd < 0:
            raise StopAsyncIteration
        size = min(CHUNK, self.end - self.position)
        data = await asyncio.to_thread(os.pread, self.opened.fd, size, self.position)
        if not data:  # the file shrank under us: end here (the client sees a short body)
            raise StopAsyncIteration
        self.position += len(data)
        return data

    def __del__(self) -> None:  # a response dropped before its body was sent
        self.opened.close()


# ---------------------------------------------------------------- the route


@files.route("/files/<int:task_id>/<name>", methods=["GET"])
@hide
async def serve_file(task_id: int, name: str) -> Response:
    """A finished task's file through a signed link (no token: the signature is the capability)."""
    links().check(task_id, name, request.args.get("expires"), request.args.get("sig"))
    try:
        opened = await finished_file(server_state().engine, task_id)
    except NoFile as exc:
        raise ApiError(404, ErrorCode.FILE_NOT_FOUND, str(exc)) from None
    except OutsideRoots as exc:
        raise ApiError(403, ErrorCode.OUTSIDE_ROOTS, str(exc)) from None
    try:
        return _answer(opened, name)
    except BaseException:
        opened.close()
        raise


def _answer(opened: OpenFile, name: str) -> Response:
    if opened.name != name:
        raise ApiError(404, ErrorCode.FILE_NOT_FOUND, "this task's file has another name now; ask for a new link")
    headers = _base_headers(opened)
    if not_modified(opened, request.headers.get("If-None-Match"), request.headers.get("If-Modified-Since")):
        opened.close()
        return _bodiless(304, headers, None)
    begin, end, status = 0, opened.size, 200
    if range_applies(opened, request.headers.get("If-Range")):
        try:
            wanted = parse_range(request.headers.get("Range"), opened.size)
        except Unsatisfiable:
            opened.close()
            raise ApiError(416, ErrorCode.RANGE_NOT_SATISFIABLE,
                           f"the range starts past the end of the file ({opened.size} bytes)",
                           headers={"Content-Range": f"bytes */{opened.size}", "Accept-Ranges": "bytes"}) from None
        if wanted is not None:
            begin, end, status = wanted[0], wanted[1] + 1, 206
            headers["Content-Range"] = f"bytes {wanted[0]}-{wanted[1]}/{opened.size}"
    if request.method == "HEAD":
        opened.close()
        return _bodiless(status, headers, end - begin)
    response = Response(FileChunks(opened, begin, end), status=status, headers=headers)
    response.headers["Content-Length"] = str(end - begin)
    response.timeout = None  # a big file on a slow link takes as long as it takes
    return response


def _bodiless(status: int, headers: dict[str, Any], length: int | None) -> Response:
    response = Response(b"", status=status, headers=headers)
    if length is None:
        response.headers.pop("Content-Length", None)
    else:
        response.headers["Content-Length"] = str(length)
    return response

"""Fetching playlists, keys and segments: headers, retries, speed limit, byte ranges.

Every request holds a slot to its host (core/policy.py: fewer at once while the host backs off from a
429/503) and goes through the task's shared httpx client; segments (hundreds per stream) straight
through the aiohttp session behind it (net.GetOpener: same headers, cookies, proxy and errors, a
fraction of the CPU). A failure that is worth retrying (5xx, 429, resets, timeouts, short bodies) is
retried with backoff; the error that finally escapes names what failed ("segment 17
(seg_016.ts): HTTP 404 Not Found"), so the task's error tells the user which.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import unquote, urlsplit

import httpx

from core.downloaders.base import DownloadContext
from core.downloaders.hls.playlist import ByteRange
from core.downloaders.net import (
    GetOpener,
    classify,
    describe_error,
    is_retryable,
    retry_after_seconds,
    retrying,
)
from core.errors import DownloadError, HttpStatusError, NetworkError

PLAYLIST_MAX_BYTES = 64 * 1024 * 1024


class NotAPlaylist(DownloadError):
    """The body does not start with #EXTM3U (checked before reading all of it).

    `head` (the first bytes) and `content_type` let the caller see what it is instead (a DASH manifest?)."""

    def __init__(self, message: str, head: bytes = b"", content_type: str | None = None) -> None:
        super().__init__(message)
        self.head = head
        self.content_type = content_type


def _looks_like_playlist(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"#EXTM3U")


def short_name(url: str, byterange: ByteRange | None = None) -> str:
    """The last path component, for messages a user can match to the playlist."""
    tail = url.rsplit("/", 1)[-1]
    if url.count("/") >= 3 and "?" not in url and "#" not in url and "%" not in tail and url.isprintable():
        name = tail or url  # the common case, without urlsplit (called for every segment)
    else:
        name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or url
    if byterange is not None:
        name += f" @{byterange.offset}+{byterange.length}"
    return name


@dataclass
class Fetcher:
    """GETs playlists, keys and segments with the task's headers, retries and speed limit."""

    ctx: DownloadContext
    want_mtime: bool = False
    newest_mtime: float | None = None
    # What a playlist body must look like, and what the error says when it does not: HLS's #EXTM3U test;
    # the DASH downloader (core/downloaders/dash) puts its MPD test here.
    looks_right: Callable[[bytes], bool] = _looks_like_playlist
    wrong_body: str = "not an HLS playlist (no #EXTM3U header)"
    _warned_no_range: bool = field(default=False, repr=False)
    _opener: GetOpener = field(default_factory=GetOpener, repr=False)

    async def get_text(self, url: str, what: str, retries: int | None = None) -> tuple[str, str]:
        """A playlist: (text, final URL after redirects)."""
        body, final_url = await self._get(url, None, what, count=False, retries=retries, playlist=True)
        return body.decode("utf-8-sig", "replace"), final_url

    async def get_key(self, url: str) -> bytes:
        return (await self._get(url, None, f"key {short_name(url)}", count=False))[0]

    async def get_segment(self, url: str, byterange: ByteRange | None, what: str, count: bool = True) -> bytes:
        """count=False: not reported as progress (init sections, which no tally counts)."""
        return (await self._get(url, byterange, what, count=count))[0]

    async def _get(
        self, url: str, byterange: ByteRange | None, what: str, count: bool, retries: int | None = None,
        playlist: bool = False,
    ) -> tuple[bytes, str]:
        retry = self.ctx.retry(what, retries, final=lambda exc: named_error(exc, what))
        return await retrying(lambda: self._gated(url, byterange, what, count, playlist), retry)

    async def _gated(
        self, url: str, byterange: ByteRange | None, what: str, count: bool, playlist: bool
    ) -> tuple[bytes, str]:
        """One attempt on a slot to the host (core/policy.py: fewer at once while it backs off from a 429/503)."""
        async with self.ctx.hosts.slot(url):
            return await self._attempt(url, byterange, what, count, playlist)

    async def _attempt(
        self, url: str, byterange: ByteRange | None, what: str, count: bool, playlist: bool = False
    ) -> tuple[bytes, str]:
        ctx = self.ctx
        headers = ctx.request_headers({"Range": byterange.header} if byterange else None)
        received = 0
        checked = not playlist
        client = ctx.client()
        opened = self._opener.open(client, url, headers) if count else client.stream("GET", url, headers=headers)
        async with opened as response:
            if response.status_code >= 400:
                error = HttpStatusError(response.status_code, response.reason_phrase, str(response.url))
                error.retry_after = retry_after_seconds(response)
                raise error
            chunks: list[bytes] = []
            try:
                async for chunk in response.aiter_bytes():
                    chunks.append(chunk)
                    received += len(chunk)
                    if count:
                        ctx.progress.add(len(chunk))
                        await ctx.limiter.acquire(len(chunk))
                    elif playlist:
                        if received > PLAYLIST_MAX_BYTES:
                            raise DownloadError(f"{what}: over {PLAYLIST_MAX_BYTES >> 20} MiB, not a playlist")
                        if not checked and received >= 64:
                            checked = True  # give up early on a body that is no playlist (the video itself?)
                            if not self.looks_right(head := b"".join(chunks)[:64]):
                                raise NotAPlaylist(f"{what}: {self.wrong_body}", head,
                                                   response.headers.get("content-type"))
                if not checked and not self.looks_right(head := b"".join(chunks)):
                    raise NotAPlaylist(f"{what}: {self.wrong_body}", head, response.headers.get("content-type"))
                expected = response.headers.get("content-length")
                if expected and "content-encoding" not in response.headers and int(expected) != received:
                    raise httpx.RemoteProtocolError(f"body truncated: {received} of {expected} bytes")
            except BaseException:
                if count:
                    ctx.progress.add(-received)
                raise
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if byterange is not None:
                body = self._slice(body, response.status_code, byterange, what, count)
            if self.want_mtime and (stamp := response.headers.get("last-modified")):
                with contextlib.suppress(TypeError, ValueError, IndexError):
                    mtime = parsedate_to_datetime(stamp).timestamp()
                    self.newest_mtime = max(self.newest_mtime or 0.0, mtime)
            return body, str(response.url)

    def _slice(self, body: bytes, status: int, br: ByteRange, what: str, count: bool) -> bytes:
        if status == 206:
            if len(body) != br.length:
                raise DownloadError(f"{what}: asked for {br.length} bytes, got {len(body)}")
            return body
        # The server ignored Range and sent the whole resource: cut our part out of it.
        if not self._warned_no_range:
            self._warned_no_range = True
            self.ctx.log(f"{what}: server ignores Range; fetching whole files for byte-range segments")
        if len(body) < br.offset + br.length:
            raise DownloadError(f"{what}: resource has {len(body)} bytes, range ends at {br.offset + br.length}")
        if count:
            self.ctx.progress.add(br.length - len(body))
        return body[br.offset : br.offset + br.length]


def named_error(exc: Exception, what: str) -> Exception:
    """The same failure, its message prefixed with which segment/key/playlist it was."""
    if isinstance(exc, HttpStatusError):
        status = HttpStatusError(exc.status, exc.reason, exc.url)
        status.args = (f"{what}: {exc}",)
        return status
    if isinstance(exc, DownloadError) and str(exc).startswith(what):
        return exc  # already named (the chain keeps the original)
    classified = classify(exc)
    named: DownloadError
    if isinstance(classified, NetworkError):  # keep the class: refused, DNS, TLS, timeout, reset
        same = type(classified)(f"{what}: {classified}")
        same.unreachable = classified.unreachable
        named = same
    else:
        named = DownloadError(f"{what}: {describe_error(exc)}")
    named.retryable = is_retryable(exc)
    return named

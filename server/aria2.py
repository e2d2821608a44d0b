"""The `aria2` backend: SaveAny-Bot aria2 tasks handed to an aria2 JSON-RPC endpoint (`[aria2]`).

The engine task (kind http, `options.backend = "aria2"`) owns the name and
folder as usual; aria2 is told `dir`/`out` so the file lands where the engine
said, with `continue=true` so a restarted task resumes aria2's partial file.
Progress comes from polling `aria2.tellStatus`; stopping the task removes the
download from aria2 (its partial file and control file stay for a resume).
A magnet/torrent download that aria2 follows with another (followedBy) is
followed to the end.

The aria2 options a client may pass are an allow-list: nothing that names
paths, hooks or sessions on the aria2 host.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from core.config import Aria2Config
from core.downloaders.base import DownloadContext
from core.errors import DownloadError, InvalidInput

if TYPE_CHECKING:
    from core.downloaders import DownloaderRegistry
from core.models import Task

ALLOWED_OPTIONS = frozenset({
    "split", "max-connection-per-server", "min-split-size", "max-download-limit", "lowest-speed-limit",
    "header", "user-agent", "referer", "all-proxy", "http-proxy", "https-proxy", "check-certificate",
    "max-tries", "retry-wait", "timeout", "connect-timeout", "http-user", "http-passwd", "ftp-user",
    "ftp-passwd", "checksum", "seed-time", "seed-ratio", "select-file", "bt-tracker", "bt-exclude-tracker",
    "follow-torrent", "bt-metadata-only", "bt-save-metadata", "bt-remove-unselected-file", "stream-piece-selector",
    "uri-selector", "max-file-not-found",
})
URL_SCHEMES = ("http", "https", "ftp", "sftp", "magnet")
STATUS_KEYS = ["status", "totalLength", "completedLength", "errorMessage", "errorCode", "files", "followedBy"]


def check_options(options: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in options.items():
        if key not in ALLOWED_OPTIONS:
            raise InvalidInput(f"aria2 option {key!r} is not allowed (allowed: {', '.join(sorted(ALLOWED_OPTIONS))})")
        if not isinstance(value, str):
            raise InvalidInput(f"aria2 option {key!r} must be a string")
        out[key] = value
    return out


def check_url(url: str) -> str:
    text = (url or "").strip()
    scheme = urlsplit(text).scheme.lower()
    if scheme not in URL_SCHEMES or any(c in text for c in "\r\n\x00 "):
        raise InvalidInput(f"invalid URL {url!r} for aria2 (accepted: {', '.join(URL_SCHEMES)})")
    if scheme != "magnet" and not urlsplit(text).hostname:
        raise InvalidInput(f"invalid URL {url!r}: no host")
    return text


class Aria2Error(DownloadError):
    pass


class Aria2Rpc:
    def __init__(self, config: Aria2Config) -> None:
        self.url = config.rpc_url
        self.secret = config.secret
        self._ids = itertools.count(1)

    async def call(self, method: str, *params: Any) -> Any:
        args = [f"token:{self.secret}", *params] if self.secret else list(params)
        body = {"jsonrpc": "2.0", "id": str(next(self._ids)), "method": method, "params": args}
        try:
            async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
                response = await client.post(self.url, json=body)
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Aria2Error(f"aria2 RPC at {self.url} failed: {exc or type(exc).__name__}") from None
        if "error" in answer:
            raise Aria2Error(f"aria2 {method}: {answer['error'].get('message', answer['error'])}")
        return answer.get("result")


class Aria2Downloader:
    def __init__(self, config: Aria2Config) -> None:
        self.config = config

    async def run(self, task: Task, ctx: DownloadContext) -> Path:
        if not self.config.rpc_url:
            raise DownloadError("aria2 is not configured ([aria2] rpc_url)")
        rpc = Aria2Rpc(self.config)
        final = await ctx.claim_output(task.name)
        options = {**task.options.backend_options, "dir": str(final.parent), "out": final.name,
                   "continue": "true", "allow-overwrite": "false"}
        if task.headers:
            options["header"] = "\n".join(f"{k}: {v}" for k, v in task.headers)
        gid = await rpc.call("aria2.addUri", [task.url], options)
        ctx.log(f"aria2: queued as gid {gid} at {self.config.rpc_url}")
        try:
            while True:
                status = await rpc.call("aria2.tellStatus", gid, STATUS_KEYS)
                total, done = int(status.get("totalLength") or 0), int(status.get("completedLength") or 0)
                if total:
                    ctx.progress.set_total(total)
                ctx.progress.set_downloaded(done)
                state = status.get("status")
                if state == "complete":
                    followed = status.get("followedBy") or []
                    if followed:
                        gid = followed[0]
                        ctx.log(f"aria2: following gid {gid}")
                        continue
                    with contextlib.suppress(Aria2Error):
                        await rpc.call("aria2.removeDownloadResult", gid)
                    files = status.get("files") or []
                    path = Path(files[0]["path"]) if files and files[0].get("path") else final
                    return path if path.exists() else final
                if state in ("error", "removed"):
                    reason = status.get("errorMessage") or state
                    raise Aria2Error(f"aria2: {reason} (code {status.get('errorCode', '?')})")
                await asyncio.sleep(self.config.poll_interval)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(_forget(rpc, gid))
            raise


async def _forget(rpc: Aria2Rpc, gid: str) -> None:
    with contextlib.suppress(Aria2Error):
        await rpc.call("aria2.forceRemove", gid)
    for _ in range(20):
        try:
            status = await rpc.call("aria2.tellStatus", gid, ["status"])
        except Aria2Error:
            return
        if status.get("status") in ("removed", "complete", "error"):
            break
        await asyncio.sleep(0.05)
    with contextlib.suppress(Aria2Error):
        await rpc.call("aria2.removeDownloadResult", gid)


def register(registry: DownloaderRegistry, config: Aria2Config) -> None:
    """Add the `aria2` backend (hands the task to an aria2 RPC server) to an engine's registry."""
    registry.register_backend("aria2", Aria2Downloader(config), check_url)

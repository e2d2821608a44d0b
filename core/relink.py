"""Relink: a user gives a task a new URL, and the bytes on disk are kept when they may be.

The automatic half of "expired links refreshed" (an HLS or yt-dlp task whose
media URLs answer 403/410 re-extracts from its page URL) is
core/downloaders/refresh.py's; this module owns the manual half:

- `check_direct`: a direct (http) task continues where it stopped only when
  the new URL serves the same file: the same size and a validator that
  agrees (the ETag; else, for mirrors that tag one file differently,
  Last-Modified; with no validator to compare on either side, the size
  alone) and answers range requests; else `RelinkRefused` (409) says how it
  differs, and a relink with restart starts over from the new URL instead;
- `apply_direct`: after the task stopped, its resume state is rewritten for
  the new server (its URL and validators, so If-Range and the resume check
  use them), or, for a restart, dropped with the .part;
- HLS and yt-dlp tasks take the new URL as is: the next run fetches the new
  playlist/page (segments and .part files already on disk are kept when the
  work folder still belongs to it).
The engine's `relink(id, url, restart)` is the one entry (CLI, API, TUI).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import httpx

from core.downloaders.http_state import RemoteIdentity, discard_state, load_state, save_state
from core.downloaders.paths import part_path, state_path
from core.errors import IllegalTransition
from core.models import Task, TaskKind
from core.storage import is_s3_url

# ---- direct downloads: a new URL for a task ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelinkCheck:
    """What a relink to `url` will do with the bytes on disk."""

    url: str
    keep: int  # bytes on disk that the new URL continues from (0: starts over or nothing yet)
    identity: RemoteIdentity | None  # the new server's identity of the file, to write into the resume state
    note: str  # for the task log


class RelinkRefused(IllegalTransition):
    """The new URL does not serve the file being downloaded (the reason says how it differs)."""


def _saved(task: Task) -> tuple[Path, RemoteIdentity, int] | None:
    """(resume state file, the identity it records, bytes on disk) of a direct task with a resumable .part."""
    if not task.file or is_s3_url(task.file):
        return None
    final = Path(task.file)
    if not part_path(final).exists():
        return None
    saved = load_state(state_path(final))
    if saved is None:
        return None
    identity, plan = saved
    return state_path(final), identity, plan.done_bytes


def same_file(old: RemoteIdentity, new: RemoteIdentity) -> str | None:
    """None when `new` is the file `old` describes; else why not (what a refused relink says)."""
    if new.size != old.size:
        return f"the new URL's file has {new.size} bytes, the download has {old.size}"
    if old.etag and new.etag:
        if old.etag == new.etag:
            return None
        if old.last_modified and new.last_modified and old.last_modified == new.last_modified:
            return None  # mirrors give one file different ETags; the modification time agrees
        return f"the new URL's file has ETag {new.etag}, the download's is {old.etag}"
    if old.last_modified and new.last_modified and old.last_modified != new.last_modified:
        return f"the new URL's file was modified {new.last_modified}, the download's on {old.last_modified}"
    return None


async def probe(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> tuple[RemoteIdentity | None, bool]:
    """The new URL's identity (None: size unknown) and whether it serves ranges, from `Range: bytes=0-0`."""
    from core.downloaders.http import parse_content_range

    try:
        async with client.stream("GET", url, headers={**headers, "Accept-Encoding": "identity",
                                                      "Range": "bytes=0-0"}) as resp:
            if resp.status_code >= 400:
                raise RelinkRefused(f"the new URL answered HTTP {resp.status_code} {resp.reason_phrase}".rstrip())
            ranges = resp.status_code == 206
            size: int | None = None
            if ranges:
                parsed = parse_content_range(resp.headers.get("content-range"))
                size = parsed[2] if parsed else None
            elif (length := resp.headers.get("content-length")) and length.isdigit():
                size = int(length)
            identity = None if size is None else RemoteIdentity(
                url=str(resp.url), size=size, etag=resp.headers.get("etag"),
                last_modified=resp.headers.get("last-modified"))
            return identity, ranges
    except httpx.HTTPError as exc:
        from core.downloaders.net import describe_error

        raise RelinkRefused(f"the new URL cannot be reached: {describe_error(exc)}") from None


async def check_direct(
    task: Task, url: str, client: httpx.AsyncClient, headers: dict[str, str], restart: bool = False
) -> RelinkCheck:
    """Whether `task` can continue from `url`; RelinkRefused (→ 409) with the reason when it cannot."""
    if task.kind is not TaskKind.HTTP:
        note = "the new URL is used from the next run (segments and .part files already fetched are kept)"
        return RelinkCheck(url, 0, None, note)
    saved = _saved(task)
    if restart:
        return RelinkCheck(url, 0, None, "starting over from the new URL (--restart)")
    if saved is None and task.file and is_s3_url(task.file):
        return RelinkCheck(url, 0, None, "an s3:// output: its upload resumes only if the new URL's file matches")
    if saved is None:
        return RelinkCheck(url, 0, None, "nothing resumable on disk: the new URL is downloaded from the start")
    _state, old, done = saved
    new, ranges = await probe(client, url, headers)
    if new is None:
        raise RelinkRefused("the new URL does not say the file's size, so it cannot be checked against the "
                            f"{done} bytes downloaded; relink with restart to start over")
    reason = same_file(old, new)
    if reason is not None:
        raise RelinkRefused(f"{reason}; relink with restart to start over from it")
    if not ranges:
        raise RelinkRefused("the new URL's server does not answer range requests, so the download cannot "
                            "continue from it; relink with restart to start over")
    compared = "ETag" if old.etag and new.etag == old.etag else "Last-Modified" if old.last_modified else "size only"
    return RelinkCheck(url, done, new, f"same file ({new.size} bytes, {compared}): continuing from byte {done}")


def apply_direct(task: Task, check: RelinkCheck, restart: bool) -> None:
    """Rewrite the resume state for the new URL (after the task stopped), or drop it for a restart."""
    if task.kind is not TaskKind.HTTP or not task.file or is_s3_url(task.file):
        return
    final = Path(task.file)
    if restart:
        discard_state(state_path(final))
        with contextlib.suppress(FileNotFoundError):
            part_path(final).unlink()
        return
    if check.identity is None:
        return
    saved = load_state(state_path(final))
    if saved is None:
        return
    _old, plan = saved
    save_state(state_path(final), check.identity, plan)

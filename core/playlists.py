"""A yt-dlp playlist or channel URL added as one task per entry (`TaskOptions.expand_playlist`).

Without the option a playlist URL is one task that downloads its entries in order (core/downloaders/ytdlp).
With it, `Engine.create` asks yt-dlp what the URL holds (the flat extraction `Engine.extract` makes, with
the spec's quality, cookies, headers and flags) and adds one task per entry instead, in the playlist's
order, into a folder named after the playlist: they then run in parallel under the usual limits
(`[download] max_concurrent`, the `[hosts."NAME"]` caps, the back-off of core/policy.py). An entry with a
page of its own is a yt-dlp task for that page; a video that sits on the playlist's page itself (a
generic page's <video>) is a task for its media URL (fetchdeck's HTTP or HLS downloader); anything else
is the playlist URL with the entry picked by `--playlist-items`. A URL that is no playlist stays one task.

`expand(spec, extract)` is the whole rule; it raises `InvalidInput` when yt-dlp cannot read the URL
(the add is refused with the reason: the user asked for the entries, one task for the whole would not do).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from core.errors import DownloadError, InvalidInput
from core.models import TaskKind, TaskSpec
from core.naming import sanitize_name

if TYPE_CHECKING:
    from core.downloaders.ytdlp import MediaEntry, MediaInfo

Extract = Callable[[TaskSpec], Awaitable["MediaInfo"]]


async def expand(spec: TaskSpec, extract: Extract) -> list[TaskSpec]:
    """The specs of the entries of `spec`'s playlist (`[spec]` without the option when it is no playlist)."""
    single = [replace(spec, options=spec.options.model_copy(update={"expand_playlist": False}))]
    try:
        info = await extract(spec)
    except DownloadError as exc:
        raise InvalidInput(f"cannot list the playlist's entries: {exc}") from None
    if not info.is_playlist:
        return single
    if not info.entries:
        raise InvalidInput("the playlist is empty")
    title = sanitize_name(info.title or info.id or "playlist")
    folder = f"{spec.folder.rstrip('/')}/{title}" if spec.folder else title
    return [_entry_spec(spec, info, entry, folder, position) for position, entry in enumerate(info.entries, 1)]


def _entry_spec(spec: TaskSpec, info: MediaInfo, entry: MediaEntry, folder: str, position: int) -> TaskSpec:
    options = spec.options.model_copy(update={"expand_playlist": False})
    index = entry.index or position
    kind: TaskKind | None = TaskKind.YTDLP
    url = entry.source
    if url is None:  # only the playlist's URL reaches it: the entry picked by number
        url = info.webpage_url or info.url
        options = options.model_copy(update={"ytdlp_flags": [*options.ytdlp_flags, "--playlist-items", str(index)]})
    elif entry.direct:
        kind = None  # a media URL: its kind is guessed (HTTP, HLS) like any added URL
    name = f"{index:03d} - {entry.title}" if entry.title else None
    return TaskSpec(url=url, kind=kind, name=name, folder=folder, headers=spec.headers, is_live=spec.is_live,
                    options=options, priority=spec.priority, start_at=spec.start_at)

"""Expired media links, refreshed: what counts as expired and how often a task may re-extract.

An HLS or yt-dlp task whose media URLs stop working mid-download (tokens in
segment, key or format URLs expire) goes back to its page/playlist URL for
new ones and goes on, keeping what it has. The HLS package applies this in
core/downloaders/hls/refresh.py (new segment and key URLs mapped onto the
old segments), yt-dlp in core/downloaders/ytdlp/download.py (the extraction
run again, the .part resumed). This module owns the shared rules:

- `is_expired` / `ytdlp_expired`: HTTP 403 Forbidden or 410 Gone;
- `RefreshBudget`: at most `[relink] refreshes` re-extractions per task per
  `[relink] window` seconds (the engine keeps one budget across a task's runs);
  past it, the 403 fails the task with `limit_reason` appended.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable

from core.errors import HttpStatusError

EXPIRED_STATUSES = frozenset({403, 410})
_YTDLP_EXPIRED = re.compile(r"HTTP Error (403|410)\b")


def is_expired(exc: BaseException) -> bool:
    """An answer that means "this link is no longer yours": 403 Forbidden or 410 Gone."""
    return isinstance(exc, HttpStatusError) and exc.status in EXPIRED_STATUSES


def ytdlp_expired(message: str) -> bool:
    """yt-dlp's download error for an expired media URL ("unable to download video data: HTTP Error 403")."""
    return _YTDLP_EXPIRED.search(message) is not None


# ---- how often --------------------------------------------------------------------------------


class RefreshBudget:
    """Refreshes per task in a sliding window; thread-safe (yt-dlp runs in a worker thread)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._used: dict[int, deque[float]] = {}

    def take(self, task_id: int, limit: int, window: float) -> bool:
        """Use one refresh of task_id's budget; False when `limit` were used in the last `window` seconds."""
        now = self._clock()
        with self._lock:
            used = self._used.setdefault(task_id, deque())
            while used and now - used[0] >= window:
                used.popleft()
            if len(used) >= limit:
                return False
            used.append(now)
            return True


def limit_reason(limit: int, window: float) -> str:
    minutes = f"{window / 60:g} min" if window >= 60 else f"{window:g} s"
    return f"link refresh limit reached ({limit} in {minutes}; [relink] refreshes/window)"

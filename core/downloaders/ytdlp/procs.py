"""The programs yt-dlp starts (ffmpeg) from a task's worker thread, so a stop can end them.

yt-dlp runs ffmpeg through its own `Popen` subclass and waits for it without
calling any hook (a merge, a conversion, or a live stream recorded by ffmpeg),
so a stop flag alone cannot reach it. `install()` wraps that class's
`__init__` once to note which tracked thread started which process;
`kill_children(thread_id)` ends them. Threads that are not tracked (anything
else using yt-dlp in this process) are left alone.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from typing import Any

_lock = threading.Lock()
_children: dict[int, list[subprocess.Popen[Any]]] = {}
_installed = False


def install() -> None:
    """Wrap yt_dlp.utils.Popen.__init__ (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        from yt_dlp.utils import Popen  # type: ignore[import-untyped]

        original = Popen.__init__

        def __init__(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            ident = threading.get_ident()
            with _lock:
                procs = _children.get(ident)
                if procs is not None:
                    procs[:] = [p for p in procs if p.poll() is None]
                    procs.append(self)

        Popen.__init__ = __init__
        _installed = True


def track() -> None:
    """Start noting the processes the calling thread starts."""
    with _lock:
        _children.setdefault(threading.get_ident(), [])


def untrack(ident: int) -> None:
    with _lock:
        _children.pop(ident, None)


def kill_children(ident: int) -> int:
    """Kill the still-running processes thread `ident` started; → how many."""
    with _lock:
        procs = [p for p in _children.get(ident, []) if p.poll() is None]
    for proc in procs:
        with contextlib.suppress(OSError):
            proc.kill()
    return len(procs)

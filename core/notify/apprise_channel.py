"""Notifications through Apprise (ntfy, Gotify, Telegram, e-mail, Discord and ~100 more), one URL per channel.

Apprise is blocking (requests): each attempt runs in a worker thread (asyncio.to_thread), so no
download and no engine loop waits on it. Apprise is imported there, at the first notification,
never at start-up. Apprise reports failures through its logger, not as exceptions: a handler keeps
the warnings logged by the attempt's own thread, and they become the attempt's reason.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from core.notify.channel import DeliveryFailed, TaskLog
from core.notify.report import TaskReport

_local = threading.local()


class _PerThread(logging.Handler):
    """Collects the apprise logger's warnings of the thread that is sending (other threads send their own)."""

    def emit(self, record: logging.LogRecord) -> None:
        lines: list[str] | None = getattr(_local, "lines", None)
        if lines is not None and record.levelno >= logging.WARNING:
            lines.append(record.getMessage())


_handler_lock = threading.Lock()
_handler: _PerThread | None = None


def _capture() -> None:
    global _handler
    with _handler_lock:
        if _handler is None:
            _handler = _PerThread(logging.WARNING)
            logging.getLogger("apprise").addHandler(_handler)


def _plugin(url: str) -> Any:
    import apprise

    asset = apprise.AppriseAsset(app_id="fetchdeck", app_desc="fetchdeck download manager")
    return apprise.Apprise.instantiate(url, asset=asset)


def display_url(url: str) -> str:
    """The URL as a task log may show it (task logs are served by the API): the scheme, and the host only when
    it looks like a host name or address: many Apprise URLs carry a token where the host goes (tgram://TOKEN/,
    discord://ID/TOKEN, ntfy://TOPIC). No credentials, path or query."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "(not a URL)"
    host = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    if not (host == "localhost" or "." in host or host.startswith("[")):
        host = "…"
    return f"{scheme}://{host}/…" if host != "…" else f"{scheme}://…"


def _notify(url: str, title: str, body: str, timeout: float) -> None:
    """One blocking notification (in a worker thread); DeliveryFailed with Apprise's reason when it fails."""
    _capture()
    plugin = _plugin(url)
    if plugin is None:
        raise DeliveryFailed("Apprise does not understand this URL", retry=False)
    if "cto=" not in url:  # the URL's own timeouts win
        plugin.socket_connect_timeout = timeout
    if "rto=" not in url:
        plugin.socket_read_timeout = timeout
    _local.lines = []
    try:
        sent = plugin.notify(body=body, title=title)
    except Exception as exc:  # a plugin's own bug must not end the delivery silently
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
    finally:
        lines: list[str] = _local.lines
        _local.lines = None
    if not sent:
        raise DeliveryFailed("; ".join(lines[-2:]) or "Apprise reported a failure")


class AppriseChannel:
    """One Apprise URL."""

    def __init__(self, url: str, *, retries: int, timeout: float) -> None:
        self.url = url
        self.retries = retries
        self.timeout = timeout
        self.label = f"notify {display_url(url)}"

    async def send(self, report: TaskReport, log: TaskLog) -> str:
        await asyncio.to_thread(_notify, self.url, report.title, report.message, self.timeout)
        return "sent"

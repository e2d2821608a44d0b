"""The contract of a delivery channel (Apprise URL, webhook, hook) and how a failed attempt is reported.

A channel sends one `TaskReport` per `send` call and returns a short description of what happened
("HTTP 200", "exit 0"); a failed attempt raises `DeliveryFailed` with a readable reason. The
dispatcher (core/notify/notifier.py) owns retries, backoff, the task log and shutdown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from core.notify.report import TaskReport

TaskLog = Callable[[str], None]  # one line in the task's log


class DeliveryFailed(Exception):
    """An attempt did not deliver; `str()` is the reason the task log shows. retry=False: no use trying again."""

    def __init__(self, reason: str, retry: bool = True) -> None:
        super().__init__(reason)
        self.retry = retry


class Channel(Protocol):
    @property
    def label(self) -> str:
        """How the task log names this channel, secrets hidden ("notify ntfy://host/topic", "webhook https://…")."""
        ...

    @property
    def retries(self) -> int:
        """How many times a failed attempt is tried again."""
        ...

    async def send(self, report: TaskReport, log: TaskLog) -> str:
        """Deliver once; what happened ("HTTP 200"), or raise DeliveryFailed. `log` adds task log lines."""
        ...

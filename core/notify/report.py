"""What every channel says about a finished task: `TaskReport`, defined once.

The webhook POSTs it as its JSON body, a hook gets it on stdin (and its fields as arguments and
environment), a notification's title and message are made from it. Built from the engine's `Task`
when the bus says the task succeeded or failed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from core.models import Task, TaskKind


class Outcome(StrEnum):
    """How a task ended, as `[notify] on` / `[webhook] on` name it."""

    SUCCESS = "success"
    FAILED = "failed"


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


class TaskReport(BaseModel):
    """One finished task (the webhook's JSON body; `event` is "task.success" or "task.failed")."""

    model_config = ConfigDict(frozen=True)

    event: str
    task_id: int
    name: str
    url: str
    kind: TaskKind
    status: Outcome
    error: str | None
    file: str | None  # the finished file (a local path or s3://…); None when the task failed before one existed
    size: int | None  # bytes: the file's size, or the size the server announced for a failed task
    downloaded: int  # bytes written
    folder: str
    node: str  # the fetchdeck node that ran it
    created_at: datetime
    finished_at: datetime

    @classmethod
    def of(cls, task: Task, outcome: Outcome, error: str | None, node: str) -> TaskReport:
        size = task.total if task.total is not None else (task.downloaded or None)
        return cls(
            event=f"task.{outcome.value}", task_id=task.id, name=task.name, url=task.url, kind=task.kind,
            status=outcome, error=error if outcome is Outcome.FAILED else None, file=task.file, size=size,
            downloaded=task.downloaded, folder=task.folder, node=node, created_at=_utc(task.created_at),
            finished_at=_utc(task.updated_at),
        )

    def body(self) -> bytes:
        """The JSON body the webhook signs and sends (compact, UTF-8)."""
        return self.model_dump_json().encode("utf-8")

    @property
    def title(self) -> str:
        return f"fetchdeck: {'downloaded' if self.status is Outcome.SUCCESS else 'failed'}: {self.name}"

    @property
    def message(self) -> str:
        if self.status is Outcome.SUCCESS:
            size = f" ({self.size:,} bytes)" if self.size is not None else ""
            return f"{self.name}{size}\n{self.file or self.url}"
        return f"{self.name}\n{self.error or 'failed'}\n{self.url}"

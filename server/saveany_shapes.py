"""Engine tasks in SaveAny-Bot's shape (list/get answers and webhook bodies)."""

from __future__ import annotations

from typing import Any

from core.models import Task, TaskKind
from server.compat import group_status, iso_z

SAVEANY_TYPES = ("directlinks", "ytdlp", "aria2", "parseditem", "tgfiles", "tphpics", "transfer")
_KIND_TYPES = {TaskKind.HTTP: "directlinks", TaskKind.HLS: "directlinks", TaskKind.YTDLP: "ytdlp"}


def type_of(task: Task) -> str:
    """The SaveAny type a task was created as; tasks from other dialects by kind."""
    label = task.options.api_type
    if label in SAVEANY_TYPES:
        return label  # type: ignore[return-value]
    return _KIND_TYPES[task.kind]


def storage_and_path(task: Task) -> tuple[str, str]:
    if task.options.storage:
        return task.options.storage, task.options.storage_path or ""
    return "local", task.folder


def task_json(leader: Task, tasks: list[Task]) -> dict[str, Any]:
    """One SaveAny task: a single engine task or a group (progress summed over it)."""
    storage, path = storage_and_path(leader)
    body: dict[str, Any] = {
        "task_id": str(leader.id),
        "type": type_of(leader),
        "status": group_status(tasks),
        "title": leader.name,
        "storage": storage,
        "path": path,
    }
    error = next((t.error for t in tasks if t.error), None)
    if error:
        body["error"] = error
    body["created_at"] = iso_z(leader.created_at)
    body["updated_at"] = iso_z(max(t.updated_at for t in tasks))
    downloaded = sum(t.downloaded for t in tasks)
    totals = [t.total for t in tasks]
    if all(totals):
        total = sum(t or 0 for t in totals)
        if total > 0:
            body["progress"] = {
                "total_bytes": total,
                "downloaded_bytes": downloaded,
                "percent": round(min(100.0, 100.0 * downloaded / total), 2),
            }
    return body

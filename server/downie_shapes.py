"""Downie Enhanced's wire shapes (server/routes/downie.py): what the real backend's pydantic models
serialise to, filled from fetchdeck's tasks and yt-dlp information.

- `task_json`: TaskInfo (the tasks endpoints, the WebSocket's `initial`), with fetchdeck's `file_path`.
- `progress_json`: a WebSocket `progress` frame's payload, its texts formatted as the real server's.
- `video_info_json` (POST /api/downloads/extract) and `analysis_json` (POST /api/analyze): every key
  always there, strings "" and durations 0 when unknown, as the real server sends them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from core.models import Task, TaskStatus

if TYPE_CHECKING:
    from core.downloaders.ytdlp import MediaFormat, MediaInfo


def downie_status(task: Task, started: Mapping[int, float]) -> str:
    if task.status is TaskStatus.DOWNLOADING:
        return "downloading"
    if task.status is TaskStatus.SUCCESS:
        return "completed"
    if task.status is TaskStatus.FAILED:
        return "failed"
    if task.status is TaskStatus.STOPPED and (task.downloaded > 0 or task.id in started):
        return "cancelled"
    return "pending"


def task_json(task: Task, started: Mapping[int, float]) -> dict[str, Any]:
    """TaskInfo (tasks endpoints, the WebSocket's initial), plus fetchdeck's `file_path`."""
    status = downie_status(task, started)
    started_at = started.get(task.id)
    total = task.total or 0
    downloaded = task.downloaded if status != "completed" else max(task.downloaded, total)
    return {
        "id": str(task.id),
        "url": task.url,
        "title": task.name,
        "status": status,
        "progress_percentage": round(task.percent, 1),
        "downloaded_bytes": downloaded,
        "total_bytes": total,
        "speed": round(float(task.speed), 1) if status == "downloading" else 0.0,
        "eta": round(task.eta) if task.eta is not None and status == "downloading" else 0,
        "created_at": round(task.created_at, 3),
        "started_at": round(started_at, 3) if started_at else None,
        "completed_at": round(task.updated_at, 3) if status in ("completed", "failed") else None,
        "error_message": task.error or "",
        "file_path": task.file,
    }


def size_text(n: float) -> str:
    """The real server's byte counts: one decimal, base 1024 ("0.0 B", "8.0 KB", "1.5 MB")."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def progress_json(task: Task, started: Mapping[int, float]) -> dict[str, Any]:
    """The `progress` of a WebSocket progress frame, key for key as the real server sends it."""
    data = task_json(task, started)
    done, total = data["downloaded_bytes"], data["total_bytes"]
    text = (f"{data['progress_percentage']:.1f}% ({size_text(done)}/{size_text(total)})" if total
            else f"{size_text(done)} downloaded")
    return {
        "status": data["status"], "percentage": data["progress_percentage"], "downloaded_bytes": done,
        "total_bytes": total, "speed": data["speed"], "eta": data["eta"], "progress_text": text,
        "speed_text": f"{size_text(data['speed'])}/s",
    }


def format_json(f: MediaFormat) -> dict[str, Any]:
    return {"format_id": f.format_id, "url": f.url, "ext": f.ext, "quality": f.quality, "filesize": f.filesize,
            "width": f.width, "height": f.height, "fps": f.fps, "vcodec": f.vcodec, "acodec": f.acodec,
            "tbr": f.tbr}


def whole_seconds(seconds: float | None) -> int:
    """Durations are whole seconds, 0 when unknown (the extension's popup hides a 0)."""
    return round(seconds) if seconds is not None and math.isfinite(seconds) and seconds > 0 else 0


def video_info_json(info: MediaInfo, url: str) -> dict[str, Any]:
    """VideoInfoResponse: all 7 keys."""
    return {
        "url": info.webpage_url or url, "title": info.title or "", "duration": whole_seconds(info.duration),
        "thumbnail": info.thumbnail or "", "description": info.description or "", "uploader": info.uploader or "",
        "formats": [format_json(f) for f in info.formats],
    }


def analysis_json(info: MediaInfo) -> dict[str, Any]:
    """URLAnalyzeResponse. A playlist has no formats of its own; `playlist_count` counts its entries."""
    return {
        "title": info.title or "Unknown", "duration": whole_seconds(info.duration), "thumbnail": info.thumbnail or "",
        "formats": [format_json(f) for f in info.formats], "is_playlist": info.is_playlist,
        "playlist_count": info.playlist_count or 0,
    }

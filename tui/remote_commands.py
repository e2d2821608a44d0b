"""`fetchdeck add | ls | start | stop | rm | limit | schedule | watch`: drive a running fetchdeck over its API.

Each command talks to --server (env FETCHDECK_SERVER, default the local
http://127.0.0.1:39719) with --token (env FETCHDECK_TOKEN). Exit codes:
0 success; 1 the server refused something (one line per failure on stderr);
3 the server could not be reached.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TextIO

from core.events import TaskFailed, TaskProgress, TasksCreated
from core.models import Task, TaskStatus
from core.schedule import format_rate
from server.wire import api_type_of, decode_event, decode_schedule, decode_task
from tui.api_client import ApiClient, ApiError, ServerUnreachable

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_UNREACHABLE = 3


@dataclass(frozen=True, slots=True)
class Remote:
    server: str
    token: str | None


def _fail(message: str) -> None:
    sys.stderr.write(f"fetchdeck: {message}\n")


def _explain(exc: ApiError) -> str:
    if exc.status == 401:
        return f"{exc.message} (pass --token or set FETCHDECK_TOKEN)"
    return exc.message


def run(remote: Remote, body: Callable[[ApiClient], Awaitable[int]], *, interrupted: int = 130) -> int:
    """Run one command body against the server; map connection and API errors to exit codes."""

    async def main() -> int:
        async with ApiClient(remote.server, remote.token) as api:
            return await body(api)

    try:
        return asyncio.run(main())
    except ServerUnreachable as exc:
        _fail(str(exc))
        return EXIT_UNREACHABLE
    except ApiError as exc:
        _fail(_explain(exc))
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return interrupted


# ---- add ------------------------------------------------------------------


def add(
    remote: Remote, urls: tuple[str, ...], *, kind: str | None, name: str | None, folder: str | None,
    headers: tuple[str, ...], start: bool, out: TextIO | None = None, notify_urls: tuple[str, ...] = (),
    notify: bool = True, checksum: str | None = None, split_playlist: bool = False,
    priority: str | None = None, start_at: float | None = None,
) -> int:
    stream = out or sys.stdout
    tasks: list[dict[str, Any]] = []
    for url in urls:
        item: dict[str, Any] = {"url": url}
        if kind:
            item["type"] = kind
        if name:
            item["name"] = name
        if folder:
            item["folder"] = folder
        if headers:
            item["headers"] = "\n".join(headers)
        if notify_urls:
            item["notifyUrls"] = list(notify_urls)
        if not notify:
            item["notify"] = False
        if checksum:
            item["checksum"] = checksum
        if split_playlist:
            item["expandPlaylist"] = True
        if priority:
            item["priority"] = priority
        if start_at is not None:
            item["startAt"] = start_at
        tasks.append(item)

    async def body(api: ApiClient) -> int:
        for task in map(decode_task, await api.create(tasks, start=start)):
            stream.write(f"{task.id}\t{task.status.value}\t{task.name}\n")
        return EXIT_OK

    return run(remote, body)


# ---- ls -------------------------------------------------------------------


def human_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def format_row(task: Task) -> str:
    size = human_bytes(task.total) if task.total else human_bytes(task.downloaded)
    speed = f"{human_bytes(task.speed)}/s" if task.status is TaskStatus.DOWNLOADING else ""
    return (f"{task.id:>6}  {task.status.value:<11}  {task.percent:>5.1f}%  {size:>10}  "
            f"{speed:>12}  {api_type_of(task):<8}  {task.name}")


def ls(remote: Remote, *, status: str | None, as_json: bool, out: TextIO | None = None) -> int:
    stream = out or sys.stdout

    async def body(api: ApiClient) -> int:
        tasks = await api.list_all(status)
        if as_json:
            json.dump(tasks, stream, ensure_ascii=False, indent=2)
            stream.write("\n")
            return EXIT_OK
        stream.write(f"{'ID':>6}  {'STATUS':<11}  {'DONE':>6}  {'SIZE':>10}  {'SPEED':>12}  {'TYPE':<8}  NAME\n")
        for task in tasks:
            stream.write(format_row(decode_task(task)) + "\n")
        return EXIT_OK

    return run(remote, body)


# ---- start / stop / rm -------------------------------------------------------


def each(remote: Remote, ids: tuple[int, ...], action: str, *, delete_file: bool = False) -> int:
    """Apply start/stop/rm to every id; report each failure and go on."""

    async def body(api: ApiClient) -> int:
        failed = 0
        for task_id in ids:
            try:
                if action == "start":
                    await api.start(task_id)
                elif action == "stop":
                    await api.stop(task_id)
                else:
                    await api.delete(task_id, delete_file=delete_file)
            except ApiError as exc:
                if exc.status == 401:
                    raise
                failed += 1
                _fail(f"task {task_id}: {_explain(exc)}")
        return EXIT_REFUSED if failed else EXIT_OK

    return run(remote, body)


def relink(remote: Remote, task_id: int, url: str, *, restart: bool, out: TextIO | None = None) -> int:
    """Give a task a new URL (core/relink.py); prints the task's row, or why the server refused."""

    async def body(api: ApiClient) -> int:
        task = decode_task(await api.relink(task_id, url, restart))
        (out or sys.stdout).write(format_row(task) + "\n")
        return EXIT_OK

    return run(remote, body)


# ---- limit / schedule ----------------------------------------------------------


def limit(remote: Remote, target: int | str, speed: str, *, out: TextIO | None = None) -> int:
    """Set a task's (an int id) or a host's (a name) speed limit while it runs; "0" or "none": no limit."""
    value: str | None = None if speed.strip().lower() in ("0", "none", "off", "unlimited", "") else speed
    stream = out or sys.stdout

    async def body(api: ApiClient) -> int:
        if isinstance(target, int):
            task = decode_task(await api.set_task_limit(target, value))
            rate = task.options.speed_limit
            stream.write(f"task {task.id}: {'no speed limit' if rate is None else format_rate(rate)}\n")
        else:
            await api.set_host_limit(target, value)
            stream.write(f"host {target}: {'no speed limit' if value is None else value + '/s'}\n")
        return EXIT_OK

    return run(remote, body)


# ---- queue control: move / priority ----------------------------------------------


def _queue_line(stream: TextIO, task: Task) -> None:
    note = f"\t{task.note}" if task.note else ""
    stream.write(f"{task.id}\t{task.status.value}\t{task.priority.value}\t{task.name}{note}\n")


def move(remote: Remote, task_id: int, where: str, out: TextIO | None = None) -> int:
    """POST /api/downloads/ID/move; prints id, status, priority and name."""
    stream = out or sys.stdout

    async def body(api: ApiClient) -> int:
        _queue_line(stream, decode_task(await api.move(task_id, where)))
        return EXIT_OK

    return run(remote, body)


def schedule(remote: Remote, *, as_json: bool, out: TextIO | None = None) -> int:
    """Print the bandwidth schedule's window in force."""
    stream = out or sys.stdout

    async def body(api: ApiClient) -> int:
        data = await api.schedule()
        if as_json:
            stream.write(json.dumps(data) + "\n")
            return EXIT_OK
        state = decode_schedule(data)
        line = state.describe() or "no window in force"
        if state.cap is not None:
            line += f" (cap {human_bytes(state.cap)}, {human_bytes(state.used)} used)"
        stream.write(f"schedule: {line}\n")
        return EXIT_OK

    return run(remote, body)


def priority(remote: Remote, task_id: int, level: str, out: TextIO | None = None) -> int:
    """PUT /api/downloads/ID {priority}; prints id, status, priority and name."""
    stream = out or sys.stdout

    async def body(api: ApiClient) -> int:
        _queue_line(stream, decode_task(await api.update(task_id, priority=level)))
        return EXIT_OK

    return run(remote, body)


# ---- watch ------------------------------------------------------------------


def describe_event(event: str, data: Any) -> str:
    """One line for an SSE message: engine events read through server/wire.py, anything else as sent."""
    payload = decode_event(event, data)
    if isinstance(payload, TasksCreated):
        return f"{event} count={len(payload.ids)} ids={','.join(str(i) for i in payload.ids)}"
    if isinstance(payload, TaskProgress):
        line = (f"{event} id={payload.task_id} {payload.percent:.1f}% "
                f"{human_bytes(payload.downloaded)}/{human_bytes(payload.total)} {human_bytes(payload.speed)}/s")
        return f"{line} ({payload.note})" if payload.note else line
    if isinstance(payload, TaskFailed):
        return f"{event} id={payload.task_id} error={payload.error}"
    if not isinstance(data, dict):
        return f"{event} {data}"
    extra = " ".join(f"{k}={v}" for k, v in data.items())
    return f"{event} {extra}".rstrip()


def watch(remote: Remote, *, as_json: bool, out: TextIO | None = None) -> int:
    stream = out or sys.stdout

    async def body(api: ApiClient) -> int:
        async for event in api.events():
            if event.event in ("ready",):
                continue
            if as_json:
                stream.write(json.dumps({"id": event.id, "event": event.event, "data": event.data},
                                     ensure_ascii=False) + "\n")
            else:
                stamp = time.strftime("%H:%M:%S")
                stream.write(f"{stamp} {describe_event(event.event, event.data)}\n")
            stream.flush()
        return EXIT_OK

    return run(remote, body, interrupted=EXIT_OK)

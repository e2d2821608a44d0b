"""Queue control (issue 14 item 3): priorities, explicit moves, and start times, as words and rules.

The one owner of:
- the order the queue takes waiting tasks in: priority (high, normal, low), then `position` (an explicit
  key a move writes, one row where it can), then creation (id); a task whose `start_at` is still ahead is
  not taken (the stores' `claim` applies it, core/store/repo.py and pg.py; the key is `queue_key`);
- where a move puts a task (`moved_position`: top, bottom, up, down among the waiting tasks of its
  priority; `placement`: to an index of the queue view, aria2's changePosition and addUri position);
- the queue view (`in_queue_view`): the waiting tasks and the stopped ones a client may resume (not the
  ones a client removed, `TaskOptions.removed`), in queue order: what aria2's tellWaiting lists;
- how a start time is written by people and clients (`parse_start_at`: HH:MM, the next time the clock
  shows it, or an ISO 8601 date and time) and how a waiting task says it is scheduled (`scheduled_note`).

Pure: no I/O; the stores, the engine and the surfaces (CLI, API, TUI) call it.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Literal

from core.errors import InvalidInput
from core.models import Priority, Task, TaskStatus

__all__ = [
    "PRIORITY_WORDS",
    "RENUMBER",
    "Priority",
    "QueueMove",
    "in_queue_view",
    "moved_position",
    "parse_move",
    "parse_priority",
    "parse_start_at",
    "placement",
    "queue_key",
    "scheduled_note",
]


class QueueMove(StrEnum):
    """Where `move` puts a task among the waiting tasks of its priority."""

    TOP = "top"
    BOTTOM = "bottom"
    UP = "up"  # before the waiting task now before it
    DOWN = "down"  # after the waiting task now after it


PRIORITY_WORDS: Final = tuple(p.value for p in Priority)
RENUMBER: Final = "renumber"  # no float fits between two neighbours: spread the class's keys out first


def parse_priority(word: str) -> Priority:
    try:
        return Priority(word.strip().lower())
    except ValueError:
        raise InvalidInput(f"unknown priority {word!r} (known: {', '.join(PRIORITY_WORDS)})") from None


def parse_move(word: str) -> QueueMove:
    try:
        return QueueMove(word.strip().lower())
    except ValueError:
        known = ", ".join(m.value for m in QueueMove)
        raise InvalidInput(f"unknown move {word!r} (known: {known})") from None


def queue_key(task: Task) -> tuple[int, float, int]:
    """The order the queue takes waiting tasks in (ascending)."""
    return task.priority.rank, task.position, task.id


def moved_position(
    where: Literal[QueueMove.UP, QueueMove.DOWN], neighbours: Sequence[float]
) -> float | Literal["renumber"] | None:
    """The new position of a task moved one place up or down.

    neighbours: the positions of the (at most two) nearest waiting tasks of its priority in that
    direction, nearest first. None: there is none, the task is already first (last). RENUMBER: the two
    neighbours' keys leave no float between them (a tie, or precision spent by many moves)."""
    if not neighbours:
        return None
    step = -1.0 if where is QueueMove.UP else 1.0
    if len(neighbours) == 1:
        return neighbours[0] + step
    near, far = neighbours[0], neighbours[1]
    middle = (near + far) / 2
    if min(near, far) < middle < max(near, far):
        return middle
    return RENUMBER


def in_queue_view(task: Task) -> bool:
    """Whether a task is in the queue view: waiting, or stopped and not removed by a client (a paused task keeps
    its place; once started again it is claimed in that place)."""
    return task.status is TaskStatus.WAITING or (task.status is TaskStatus.STOPPED and not task.options.removed)


def placement(view: Sequence[Task], task: Task, index: int) -> tuple[int, list[tuple[int, float]]]:
    """Where `task` goes when moved to `index` of the queue view (every task in it, in queue order, `task`
    among them), and the positions to write: (the index it ends at, [(task id, position), ...]).

    A task stays in its priority class: the index is clamped to the class's stretch of the view. Usually one
    position is written (the midpoint of its new neighbours); when no float fits between them the class's
    tasks get fresh, evenly spaced positions in the new order."""
    others = [t for t in view if t.id != task.id]
    rank = task.priority.rank
    low = sum(1 for t in others if t.priority.rank < rank)
    same = [t for t in others if t.priority.rank == rank]
    dest = min(max(index, low), low + len(same))
    before = same[dest - low - 1] if dest > low else None
    after = same[dest - low] if dest - low < len(same) else None
    if before is None and after is None:
        return dest, []
    if before is None:
        assert after is not None
        return dest, [(task.id, after.position - 1.0)]
    if after is None:
        return dest, [(task.id, before.position + 1.0)]
    middle = (before.position + after.position) / 2
    if before.position < middle < after.position:
        return dest, [(task.id, middle)]
    order = [*same[:dest - low], task, *same[dest - low:]]
    base = min(t.position for t in order)
    return dest, [(t.id, base + i) for i, t in enumerate(order)]


# ---- start times ---------------------------------------------------------------------
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_start_at(text: str, now: float | None = None) -> float:
    """A start time as a unix time: "HH:MM" (local time; today, or tomorrow once it has passed today),
    an ISO 8601 date and time ("2026-12-01T22:30", with an offset or Z; local time without one), or a
    unix time in seconds. InvalidInput for anything else."""
    value = text.strip()
    now = time.time() if now is None else now
    match = _CLOCK.match(value)
    if match:
        today = datetime.fromtimestamp(now)
        at = today.replace(hour=int(match[1]), minute=int(match[2]), second=0, microsecond=0)
        if at.timestamp() <= now:
            at += timedelta(days=1)
        return at.timestamp()
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(number) and number >= 0:
            return number
        raise InvalidInput(f"bad start time {text!r}: a unix time is a positive number of seconds")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"bad start time {text!r}: give HH:MM or an ISO date and time "
                           "(e.g. 2026-12-01T22:30)") from None
    return parsed.timestamp()


def checked_start_at(value: float | None) -> float | None:
    """A start time as a task stores it (InvalidInput if it is not a finite, positive unix time)."""
    if value is None:
        return None
    if isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise InvalidInput(f"bad start time {value!r}: a unix time in seconds")
    return float(value)


def scheduled_note(task: Task, now: float | None = None) -> str | None:
    """What a waiting task whose start time is still ahead says ("scheduled: starts 22:30"); None otherwise."""
    start_at = task.start_at
    if start_at is None or start_at <= (time.time() if now is None else now):
        return None
    at = datetime.fromtimestamp(start_at)
    today = datetime.fromtimestamp(time.time() if now is None else now).date()
    when = at.strftime("%H:%M") if at.date() == today else at.strftime("%Y-%m-%d %H:%M")
    return f"scheduled: starts {when}"

"""core/queue.py `placement`: where a move to an index of the queue view puts a task, and what it writes."""

from __future__ import annotations

from core.models import Priority, Task, TaskKind, TaskOptions, TaskStatus
from core.queue import in_queue_view, placement, queue_key


def task(task_id: int, position: float, priority: Priority = Priority.NORMAL,
         status: TaskStatus = TaskStatus.WAITING) -> Task:
    return Task(id=task_id, kind=TaskKind.HTTP, url=f"http://a.test/{task_id}", name=str(task_id), folder="",
                headers=(), status=status, options=TaskOptions(), priority=priority, position=position)


def moved(view: list[Task], task_id: int, index: int) -> tuple[int, list[int]]:
    """Apply placement's writes; (the index it says, the view's ids in queue order afterwards)."""
    chosen = next(t for t in view if t.id == task_id)
    dest, writes = placement(view, chosen, index)
    for written_id, position in writes:
        next(t for t in view if t.id == written_id).position = position
    return dest, [t.id for t in sorted(view, key=queue_key)]


def test_a_move_writes_one_midpoint_and_clamps_to_the_list() -> None:
    view = [task(1, 0), task(2, 1), task(3, 2)]
    assert placement(view, view[2], 1) == (1, [(3, 0.5)])
    assert moved(view, 3, 0) == (0, [3, 1, 2])
    assert moved(view, 3, 99) == (2, [1, 2, 3])
    assert moved(view, 1, -4) == (0, [1, 2, 3])
    assert placement([view[0]], view[0], 3) == (0, [])  # alone: nothing to write


def test_tied_neighbours_renumber_the_class_and_priorities_are_kept() -> None:
    view = [task(1, 0), task(2, 0), task(3, 0)]  # ties: only the ids order them, no float between
    dest, writes = placement(view, view[2], 1)
    assert dest == 1 and len(writes) == 3
    assert moved(view, 3, 1) == (1, [1, 3, 2])
    mixed = [task(1, 0, Priority.HIGH), task(2, 0), task(3, 1), task(4, 0, Priority.LOW)]
    assert moved(mixed, 3, 0) == (1, [1, 3, 2, 4])  # a normal task goes no higher than the high ones
    assert moved(mixed, 2, 9) == (2, [1, 3, 2, 4])  # nor lower than the low ones


def test_the_queue_view_has_waiting_and_paused_tasks_not_removed_ones() -> None:
    removed = task(3, 0, status=TaskStatus.STOPPED)
    removed.options = TaskOptions(removed=True)
    assert [in_queue_view(t) for t in (task(1, 0), task(2, 0, status=TaskStatus.STOPPED), removed,
                                       task(4, 0, status=TaskStatus.DOWNLOADING))] == [True, True, False, False]

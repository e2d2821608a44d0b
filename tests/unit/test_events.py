import asyncio

from core.events import (
    EventBus,
    EventType,
    TaskDeleted,
    TaskProgress,
    TasksCreated,
    TaskStarted,
    TaskStopped,
    TaskSucceeded,
)


def tick(task_id: int, downloaded: int) -> TaskProgress:
    return TaskProgress(task_id, downloaded=downloaded, total=None, speed=0.0, eta=None, percent=0.0)


async def test_slow_subscriber_loses_ticks_not_lifecycle() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish(TaskStarted(1))
    for n in range(1000):
        bus.publish(tick(1, n))
    bus.publish(TaskSucceeded(1))
    got = []
    while (event := sub.get_nowait()) is not None:
        got.append(event)
    assert [e.type for e in got] == [EventType.START, EventType.PROGRESS, EventType.SUCCESS]
    assert got[1].payload.downloaded == 999  # type: ignore[union-attr]  # coalesced to the newest tick


async def test_progress_after_lifecycle_is_not_moved_before_it() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish(tick(7, 1))
    bus.publish(TaskStopped(7))
    bus.publish(TaskStarted(7))
    bus.publish(tick(7, 2))
    types = []
    while (event := sub.get_nowait()) is not None:
        types.append((event.type, getattr(event.payload, "downloaded", None)))
    assert types == [(EventType.PROGRESS, 1), (EventType.STOP, None), (EventType.START, None), (EventType.PROGRESS, 2)]


async def test_replay_after_seq_and_wakeup() -> None:
    bus = EventBus(replay=3)
    for i in range(5):
        bus.publish(TasksCreated((i,)))
    assert not bus.replay_covers(0)
    assert bus.replay_covers(2)
    sub = bus.subscribe(after_seq=3)
    assert [sub.get_nowait().seq, sub.get_nowait().seq] == [4, 5]  # type: ignore[union-attr]
    waiter = asyncio.create_task(sub.get(timeout=2))
    await asyncio.sleep(0)
    bus.publish(TaskDeleted(1))
    event = await waiter
    assert event is not None and event.type is EventType.DELETE
    sub.close()
    assert bus.subscriber_count == 0


async def test_a_changed_note_is_published_though_no_byte_moved() -> None:
    from core.models import Task, TaskKind, TaskOptions, TaskStatus
    from core.progress import ProgressPump
    from core.scheduler import TaskRun

    bus = EventBus()
    sub = bus.subscribe()
    task = Task(id=3, kind=TaskKind.HTTP, url="http://x/", name="x", folder="", headers=(),
                status=TaskStatus.DOWNLOADING, options=TaskOptions())
    run = TaskRun(task)
    pump = ProgressPump({3: run}, bus)

    def published() -> list[str | None]:
        notes = []
        while (event := sub.get_nowait()) is not None:
            assert isinstance(event.payload, TaskProgress)
            notes.append(event.payload.note)
        return notes

    pump.publish_progress()
    assert published() == [None]  # the first tick of a run
    pump.publish_progress()
    assert published() == []  # nothing moved
    run.set_note("retrying in 4 s: connection refused (3/8)")
    pump.publish_progress()
    pump.publish_progress()
    assert published() == ["retrying in 4 s: connection refused (3/8)"]
    run.set_note(None)
    pump.publish_progress()
    assert published() == [None]

"""Engine events: what happened, as typed values, and the bus that fans them out to subscribers.

Each event is one frozen dataclass (TasksCreated, TaskStarted, TaskProgress, TaskSucceeded,
TaskFailed, TaskStopped, TaskDeleted, TaskChanged, ConfigChanged) with its `EventType`, the
name clients know it by. Nothing here knows how an event looks on a wire: server/wire.py owns
event ↔ JSON for the native API; the compat dialects read the typed events.

Each subscriber has its own queue. Progress events are coalesced in place (a
newer tick for the same task replaces the pending one), so a slow subscriber
loses progress ticks but never a lifecycle event, and its queue stays bounded
by the number of tasks plus the lifecycle backlog.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from core.models import Task


class EventType(StrEnum):
    CREATE = "download-create"
    START = "download-start"
    PROGRESS = "download-progress"
    SUCCESS = "download-success"
    FAILED = "download-failed"
    STOP = "download-stop"
    DELETE = "download-delete"
    UPDATE = "download-update"
    CONFIG = "config-changed"  # a setting changed while running (key: "download.max_concurrent")


@dataclass(frozen=True, slots=True)
class TasksCreated:
    """New tasks, in creation order."""

    type: ClassVar[EventType] = EventType.CREATE
    ids: tuple[int, ...]

    @property
    def task_id(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """Something happened to one task (the base of every per-task event)."""

    type: ClassVar[EventType]
    task_id: int


@dataclass(frozen=True, slots=True)
class TaskStarted(TaskEvent):
    """The task began downloading (waiting → downloading)."""

    type: ClassVar[EventType] = EventType.START


@dataclass(frozen=True, slots=True)
class TaskProgress(TaskEvent):
    """A running task's counters moved (published at most 4 times a second per task)."""

    type: ClassVar[EventType] = EventType.PROGRESS
    downloaded: int
    total: int | None
    speed: float  # bytes/s
    eta: float | None  # seconds left, if known
    percent: float
    segments_done: int = 0
    segments_total: int = 0
    note: str | None = None  # why a running task waits ("retrying in 4 s: ..."), None when it does not

    @classmethod
    def of(cls, task: Task) -> TaskProgress:
        return cls(
            task_id=task.id, downloaded=task.downloaded, total=task.total, speed=task.speed, eta=task.eta,
            percent=task.percent, segments_done=task.segments_done, segments_total=task.segments_total,
            note=task.note,
        )


@dataclass(frozen=True, slots=True)
class TaskSucceeded(TaskEvent):
    type: ClassVar[EventType] = EventType.SUCCESS


@dataclass(frozen=True, slots=True)
class TaskFailed(TaskEvent):
    type: ClassVar[EventType] = EventType.FAILED
    error: str


@dataclass(frozen=True, slots=True)
class TaskStopped(TaskEvent):
    type: ClassVar[EventType] = EventType.STOP


@dataclass(frozen=True, slots=True)
class TaskDeleted(TaskEvent):
    type: ClassVar[EventType] = EventType.DELETE


@dataclass(frozen=True, slots=True)
class TaskChanged(TaskEvent):
    """The task's stored fields changed (name, url, file...): fetch it again."""

    type: ClassVar[EventType] = EventType.UPDATE


@dataclass(frozen=True, slots=True)
class ConfigChanged:
    """A setting changed while running: `section.key` (e.g. "download.max_concurrent") and its new value."""

    type: ClassVar[EventType] = EventType.CONFIG
    key: str
    value: Any

    @property
    def task_id(self) -> None:
        return None


Payload = (
    TasksCreated | TaskStarted | TaskProgress | TaskSucceeded | TaskFailed | TaskStopped | TaskDeleted
    | TaskChanged | ConfigChanged
)


@dataclass(frozen=True, slots=True)
class Event:
    """One published event: its place in the bus's sequence and what happened (`payload`);
    `type` and `task_id` are the payload's, kept at hand for the subscribers' queues."""

    payload: Payload
    seq: int = 0
    origin: str = ""  # "" for this process's engine; the node's name for an event relayed from another node
    type: EventType = field(init=False)
    task_id: int | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", self.payload.type)
        object.__setattr__(self, "task_id", self.payload.task_id)

    @property
    def is_progress(self) -> bool:
        return self.type is EventType.PROGRESS


@dataclass(eq=False)
class Subscription:
    """A subscriber's queue. Iterate it with `async for`; close it when done."""

    bus: EventBus
    max_backlog: int
    _pending: OrderedDict[int, Event] = field(default_factory=OrderedDict)
    _progress_slot: dict[int, int] = field(default_factory=dict)  # task id → key in _pending
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    overflowed: bool = False

    def _push(self, event: Event) -> None:
        if self.closed:
            return
        if event.is_progress and event.task_id is not None:
            slot = self._progress_slot.get(event.task_id)
            if slot is not None and slot in self._pending:
                self._pending[slot] = event  # coalesce, keep its place in line
                return
            self._progress_slot[event.task_id] = event.seq
        elif event.task_id is not None:
            # Progress queued before a lifecycle event must not absorb later ticks.
            self._progress_slot.pop(event.task_id, None)
        self._pending[event.seq] = event
        if len(self._pending) > self.max_backlog:
            # A subscriber this far behind is dead weight; end it so it reconnects.
            self.overflowed = True
            self.close()
        self._wakeup.set()

    def get_nowait(self) -> Event | None:
        if not self._pending:
            return None
        _, event = self._pending.popitem(last=False)
        if event.is_progress and event.task_id is not None:
            if self._progress_slot.get(event.task_id) == event.seq:
                del self._progress_slot[event.task_id]
        return event

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None on timeout or when closed."""
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            if self.closed:
                return None
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                return None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.bus._subscribers.discard(self)
            self._wakeup.set()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            event = await self.get()
            if event is None:
                return
            yield event


class EventBus:
    """Publish/subscribe with a bounded replay buffer (for SSE Last-Event-ID)."""

    def __init__(self, replay: int = 2048, max_backlog: int = 100_000) -> None:
        self._subscribers: set[Subscription] = set()
        self._seq = itertools.count(1)
        self._replay: deque[Event] = deque(maxlen=replay)
        self._max_backlog = max_backlog

    @property
    def last_seq(self) -> int:
        return self._replay[-1].seq if self._replay else 0

    def publish(self, payload: Payload, origin: str = "") -> Event:
        """Fan `payload` out; `origin` names the node it happened on when relayed from another node."""
        event = Event(payload=payload, seq=next(self._seq), origin=origin)
        self._replay.append(event)
        for sub in list(self._subscribers):
            sub._push(event)
        return event

    def subscribe(self, after_seq: int | None = None) -> Subscription:
        """A new subscription; with after_seq, first replays buffered events after it."""
        sub = Subscription(bus=self, max_backlog=self._max_backlog)
        if after_seq is not None:
            for event in self._replay:
                if event.seq > after_seq:
                    sub._push(event)
        self._subscribers.add(sub)
        return sub

    def replay_covers(self, after_seq: int) -> bool:
        """True if every event after `after_seq` is still in the replay buffer."""
        if not self._replay:
            return True
        return self._replay[0].seq <= after_seq + 1

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def close_all(self) -> None:
        for sub in list(self._subscribers):
            sub.close()

"""The cluster's own wire: engine events and node commands as the short JSON a PostgreSQL NOTIFY carries.

One notification holds one node's batch of events (`EventBatch`), or one `Command`. A payload stays
under NOTIFY's 8000-byte limit: `encode_events` splits a batch into as many payloads as it needs.
Field names come from the event dataclasses themselves, so this module and core/events.py cannot
drift apart; nothing outside core/cluster/ reads these payloads.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.events import (
    ConfigChanged,
    EventType,
    Payload,
    TaskChanged,
    TaskDeleted,
    TaskFailed,
    TaskProgress,
    TasksCreated,
    TaskStarted,
    TaskStopped,
    TaskSucceeded,
)

MAX_PAYLOAD = 7800  # bytes; PostgreSQL refuses a NOTIFY payload of 8000 or more

_CLASSES: dict[str, type[Any]] = {
    cls.type.value: cls
    for cls in (TasksCreated, TaskStarted, TaskProgress, TaskSucceeded, TaskFailed, TaskStopped, TaskDeleted,
                TaskChanged, ConfigChanged)
}


class Op(StrEnum):
    STOP = "stop"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Command:
    """Asks the node running a task to stop or delete it (only that node can cancel its run)."""

    to: str  # the node that runs the task
    sender: str
    op: Op
    task_id: int
    files: bool = False  # delete: the downloaded file too

    def encode(self) -> str:
        return json.dumps({"to": self.to, "from": self.sender, "op": self.op.value, "task": self.task_id,
                           "files": self.files}, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> Command:
        data = json.loads(text)
        return cls(to=str(data["to"]), sender=str(data["from"]), op=Op(data["op"]), task_id=int(data["task"]),
                   files=bool(data.get("files", False)))


@dataclass(frozen=True, slots=True)
class EventBatch:
    node: str
    events: tuple[Payload, ...]


def _encode_one(payload: Payload) -> list[Any]:
    fields = {f.name: getattr(payload, f.name) for f in dataclasses.fields(payload)}
    if isinstance(payload, TasksCreated):
        fields["ids"] = list(payload.ids)
    return [payload.type.value, fields]


def encode_events(node: str, events: Iterable[Payload]) -> Iterator[str]:
    """The events as NOTIFY payloads of at most MAX_PAYLOAD bytes each (a long TasksCreated is split)."""
    head = json.dumps(node)
    items: list[str] = []
    size = 0
    for payload in _split(events):
        item = json.dumps(_encode_one(payload), separators=(",", ":"), ensure_ascii=False)
        if items and size + len(item.encode()) + len(head) + 16 > MAX_PAYLOAD:
            yield _frame(head, items)
            items, size = [], 0
        items.append(item)
        size += len(item.encode()) + 1
    if items:
        yield _frame(head, items)


def _frame(head: str, items: list[str]) -> str:
    return '{"n":' + head + ',"e":[' + ",".join(items) + "]}"


def _split(events: Iterable[Payload]) -> Iterator[Payload]:
    for payload in events:
        if isinstance(payload, TasksCreated) and len(payload.ids) > 500:
            for start in range(0, len(payload.ids), 500):
                yield TasksCreated(payload.ids[start:start + 500])
        else:
            yield payload


def decode_events(text: str) -> EventBatch:
    """A payload back into typed events (ValueError if it is not one of ours)."""
    data = json.loads(text)
    events: list[Payload] = []
    for type_name, fields in data["e"]:
        cls = _CLASSES.get(type_name)
        if cls is None:
            continue  # a newer node's event this one does not know
        if cls is TasksCreated:
            fields["ids"] = tuple(int(i) for i in fields["ids"])
        events.append(cls(**fields))
    return EventBatch(node=str(data["n"]), events=tuple(events))


LIFECYCLE = frozenset({EventType.CREATE, EventType.START, EventType.SUCCESS, EventType.FAILED, EventType.STOP,
                       EventType.DELETE,
                       EventType.UPDATE})
"""Events after which a waiting task may be claimable by another node: a new task, a freed host slot, or a
claim that ended (a node that skipped a host another node was counting tries it again)."""

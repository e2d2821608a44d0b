"""The bandwidth schedule: weekly windows (`[[schedule]]` in config.toml) and applying the one in force.

Owns what a window means and when it is in force:
- `days = "mon-fri"` (also "sat,sun", "mon-wed,fri", "daily"/"all"), `from = "08:00"`, `to = "18:00"`, in local
  time; a window whose `to` is not after its `from` crosses midnight (it belongs to the day it starts on);
  `from == to` is a whole day.
- `speed = "2M"`: the global speed limit while in force (instead of `[download] speed_limit`);
  `pause = true`: no task starts and running ones are paused (back to waiting, resumable) until it ends;
  `cap = "10G"`: once this many bytes were downloaded on this node during the window, it acts as a pause
  window until it ends (counted from the running tasks' progress and each run's end, checked every `poll`).
- The first window (in the file's order) that contains the present moment is in force; outside every window
  the normal settings apply.
- The windows' one-line text form (the TUI settings screen): `format_windows` / `parse_windows`.

`ScheduleKeeper` is the engine's part: every `poll` seconds (and on `tick()`) it reads the `Clock` (injectable:
tests use a fake one and move it), counts the bytes the running tasks downloaded, and applies the window in
force: the global rate (core/ratelimit.py SpeedLimits), the scheduler's hold and pausing the runs
(core/scheduler.py, StopReason.PAUSE). `state` is the typed answer to "what is in force" for the engine's
readers (TUI status line, native API, task notes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from core.errors import InvalidInput

if TYPE_CHECKING:
    from core.ratelimit import SpeedLimits
    from core.scheduler import Scheduler, TaskRun

log = logging.getLogger("fetchdeck.schedule")

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LONG = {"monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6}
_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")
MINUTES_PER_DAY = 24 * 60
POLL_SECONDS = 1.0


class Clock(Protocol):
    """Where the schedule reads the time: local, naive datetimes."""

    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now()


# ---- parsing (the config loader validates each window through these) ----------------------------------


def _day(word: str) -> int:
    word = word.strip().lower()
    if word in _LONG:
        return _LONG[word]
    if word[:3] in DAY_NAMES and len(word) <= 3:
        return DAY_NAMES.index(word[:3])
    raise InvalidInput(f"{word!r} is not a day (mon, tue, wed, thu, fri, sat, sun)")


def parse_days(text: str) -> frozenset[int]:
    """'mon-fri', 'sat,sun', 'fri-mon', 'daily' → weekday numbers (0 = Monday)."""
    value = text.strip().lower()
    if value in ("daily", "all", "every day", "*"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in value.split(","):
        if not part.strip():
            raise InvalidInput(f"{text!r} is not a list of days like \"mon-fri\" or \"sat,sun\"")
        first, dash, last = part.partition("-")
        if not dash:
            days.add(_day(first))
            continue
        a, b = _day(first), _day(last)
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(days)


def parse_clock(text: str) -> int:
    """'08:00' → minutes after midnight (0-1440; '24:00' is the end of the day)."""
    match = _CLOCK.match(text)
    if not match or int(match.group(2)) > 59 or int(match.group(1)) * 60 + int(match.group(2)) > MINUTES_PER_DAY:
        raise InvalidInput(f"{text!r} is not a time of day (HH:MM, from 00:00 to 24:00)")
    return int(match.group(1)) * 60 + int(match.group(2))


def format_rate(rate: int | None) -> str:
    """2097152 → '2M/s'; None → 'unlimited'."""
    if rate is None:
        return "unlimited"
    value = float(rate)
    for unit in ("", "K", "M", "G"):
        if value < 1024 or unit == "G":
            text = f"{value:.1f}".rstrip("0").rstrip(".")
            return f"{text}{unit}/s" if unit else f"{text} B/s"
        value /= 1024
    return f"{rate} B/s"  # pragma: no cover - the loop returns


# ---- the windows ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """One `[[schedule]]` table, parsed."""

    days: frozenset[int]
    start: int  # minutes after midnight
    end: int
    speed: int | None = None  # bytes/s while in force (None: unlimited); ignored when pause
    pause: bool = False
    cap: int | None = None  # bytes per occurrence, then paused until it ends
    text: str = ""  # as written, for messages ("mon-fri 08:00-18:00")

    @property
    def length(self) -> timedelta:
        return timedelta(minutes=(self.end - self.start) % MINUTES_PER_DAY or MINUTES_PER_DAY)

    def occurrence(self, now: datetime) -> tuple[datetime, datetime] | None:
        """(start, end) of this window's occurrence containing `now`, if one does."""
        for back in (0, 1):  # one that started today, or yesterday and crosses midnight
            day = now.date() - timedelta(days=back)
            if day.weekday() not in self.days:
                continue
            start = datetime.combine(day, time()) + timedelta(minutes=self.start)
            if start <= now < start + self.length:
                return start, start + self.length
        return None


class WindowSettings(Protocol):
    """One `[[schedule]]` table as the config loader validated it (core/config.py ScheduleWindowConfig)."""

    @property
    def days(self) -> str: ...
    @property
    def from_(self) -> str: ...
    @property
    def to(self) -> str: ...
    @property
    def pause(self) -> bool: ...
    @property
    def speed(self) -> str: ...
    @property
    def cap(self) -> str: ...
    @property
    def speed_bytes(self) -> int | None: ...
    @property
    def cap_bytes(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Schedule:
    windows: tuple[Window, ...] = ()

    @classmethod
    def from_config(cls, windows: Sequence[WindowSettings]) -> Schedule:
        return cls(tuple(
            Window(days=parse_days(w.days), start=parse_clock(w.from_), end=parse_clock(w.to),
                   speed=w.speed_bytes, pause=w.pause, cap=w.cap_bytes, text=f"{w.days} {w.from_}-{w.to}")
            for w in windows
        ))

    def in_force(self, now: datetime) -> tuple[int, Window, datetime, datetime] | None:
        """(index, window, start, end) of the first window containing `now`."""
        for index, window in enumerate(self.windows):
            span = window.occurrence(now)
            if span is not None:
                return index, window, span[0], span[1]
        return None


def check_window(days: str, start: str, end: str, pause: bool, speed: str) -> None:
    """Raise InvalidInput if a `[[schedule]]` table's values do not make a window."""
    try:
        parse_days(days)
    except InvalidInput as exc:
        raise InvalidInput(f"days: {exc}") from None
    for key, text in (("from", start), ("to", end)):
        try:
            parse_clock(text)
        except InvalidInput as exc:
            raise InvalidInput(f"{key}: {exc}") from None
    if pause and speed:
        raise InvalidInput("a window has either pause = true or a speed, not both")


# ---- what is in force ------------------------------------------------------------------------------------


class Mode(StrEnum):
    NORMAL = "normal"  # outside every window (or a window with only a cap, not reached yet, at normal speed)
    SPEED = "speed"  # a speed window: the global limit is `speed`
    PAUSED = "paused"  # a pause window, or a window whose cap was reached


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """The window in force: its mode, the global rate it sets, until when, and its data cap's count."""

    mode: Mode = Mode.NORMAL
    speed: int | None = None  # SPEED: the global limit in bytes/s (None: unlimited)
    until: datetime | None = None  # the window's end (None: no window in force)
    window: str = ""  # the window as written, e.g. "mon-fri 08:00-18:00"
    cap: int | None = None  # the window's data cap in bytes
    used: int = 0  # bytes downloaded on this node during the window
    capped: bool = False  # PAUSED because the cap was reached

    @property
    def paused(self) -> bool:
        return self.mode is Mode.PAUSED

    @property
    def active(self) -> bool:
        return self.until is not None

    def describe(self) -> str:
        """'paused until 18:00', '2M/s until 18:00', 'cap reached, paused until 18:00', or '' (none in force)."""
        if self.until is None:
            return ""
        until = f"until {self.until:%H:%M}"
        if self.mode is Mode.PAUSED:
            return f"cap reached, paused {until}" if self.capped else f"paused {until}"
        if self.mode is Mode.SPEED:
            return f"{format_rate(self.speed)} {until}"
        return f"normal speed {until}"  # a cap-only window

    def waiting_note(self) -> str | None:
        """The note of a waiting task the schedule holds back."""
        return f"scheduled: starts {self.until:%H:%M}" if self.paused and self.until is not None else None


class ScheduleKeeper:
    """Applies the window in force to this node's engine (its scheduler and speed limits)."""

    def __init__(
        self, schedule: Schedule, clock: Clock, scheduler: Scheduler, limits: SpeedLimits, *,
        on_change: Callable[[ScheduleState], None] | None = None, poll: float = POLL_SECONDS,
    ) -> None:
        self.schedule = schedule
        self.clock = clock
        self.poll = poll
        self._scheduler = scheduler
        self._limits = limits
        self._on_change = on_change
        self.state = ScheduleState()
        self._occurrence: tuple[int, datetime] | None = None
        self._used = 0
        self._seen: dict[int, int] = {}  # task id → bytes downloaded when last counted
        self._lock = asyncio.Lock()
        scheduler.on_finished = self._finished

    def set_schedule(self, schedule: Schedule) -> None:
        """New windows: the next tick applies the one in force (a window's data cap counts afresh)."""
        self.schedule = schedule
        self._occurrence = None

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("schedule error")
            await asyncio.sleep(self.poll)

    def _count(self) -> None:
        """Add what the running tasks downloaded since the last count to the window's bytes."""
        seen: dict[int, int] = {}
        for task_id, run in list(self._scheduler.runs.items()):
            now = run.task.downloaded
            before = self._seen.get(task_id, run.resumed_from)
            if now > before:
                self._used += now - before
            seen[task_id] = now
        self._seen = seen

    def _finished(self, run: TaskRun) -> None:
        """A run ended: its bytes since the last count are the window's too (a short task may start and end
        between two ticks)."""
        before = self._seen.pop(run.task.id, run.resumed_from)
        if run.task.downloaded > before:
            self._used += run.task.downloaded - before

    async def tick(self) -> ScheduleState:
        """Read the clock, count bytes, apply the window in force; the state now."""
        async with self._lock:
            now = self.clock.now()
            found = self.schedule.in_force(now)
            key = None if found is None else (found[0], found[2])
            self._count()
            if key != self._occurrence:
                self._occurrence, self._used = key, 0
            if found is None:
                state = ScheduleState()
            else:
                _index, window, _start, end = found
                capped = window.cap is not None and self._used >= window.cap
                mode = Mode.PAUSED if window.pause or capped else Mode.SPEED if window.speed else Mode.NORMAL
                state = ScheduleState(mode=mode, speed=window.speed if mode is Mode.SPEED else None, until=end,
                                      window=window.text, cap=window.cap, used=self._used,
                                      capped=capped and not window.pause)
            await self._apply(state)
            return state

    async def _apply(self, state: ScheduleState) -> None:
        old, self.state = self.state, state
        self._limits.set_override(state.speed, state.mode is Mode.SPEED)
        if state.paused != old.paused:
            if state.paused:
                await self._pause()
            else:
                self._scheduler.held = False
                self._scheduler.poke()
        if (old.mode, old.until, old.speed, old.capped) != (state.mode, state.until, state.speed, state.capped):
            log.info("schedule: %s", state.describe() or "no window in force")
            if self._on_change is not None:
                self._on_change(state)

    async def _pause(self) -> None:
        from core.scheduler import StopReason

        scheduler = self._scheduler
        async with scheduler.launching:  # no claim lands between holding and pausing what runs
            scheduler.held = True
            runs = list(scheduler.runs.values())
            for run in runs:
                with contextlib.suppress(Exception):
                    await scheduler.cancel(run, StopReason.PAUSE)



# ---- the one-line text form (the TUI settings screen's Schedule field) ---------------------------------
# "mon-fri 08:00-18:00 2M/s; sat,sun 22:00-06:00 paused; daily 00:00-06:00 normal speed, cap 10G": windows
# separated by ";", each its days, its span and what it does ("paused"/"pause", "2M/s"/"speed=2M", "normal speed"
# or nothing, "cap 10G"/"cap=10G"). `format_windows` writes what `parse_windows` reads back.


@dataclass(frozen=True, slots=True)
class WindowEntry:
    """One window read from the text form; `table()` is its `[[schedule]]` table (sizes still as text: the
    config section checks them)."""

    days: str
    from_: str
    to: str
    speed: str = ""
    pause: bool = False
    cap: str = ""

    def table(self) -> dict[str, str | bool]:
        table: dict[str, str | bool] = {"days": self.days, "from": self.from_, "to": self.to}
        if self.pause:
            table["pause"] = True
        if self.speed:
            table["speed"] = self.speed
        if self.cap:
            table["cap"] = self.cap
        return table


def format_windows(windows: Sequence[WindowSettings]) -> str:
    """The windows on one line: 'mon-fri 08:00-18:00 2M/s; sat,sun 22:00-06:00 paused, cap 5G'."""
    parts = []
    for window in windows:
        what = "paused" if window.pause else f"{window.speed}/s" if window.speed else "normal speed"
        parts.append(f"{window.days} {window.from_}-{window.to} {what}" + (f", cap {window.cap}" if window.cap else ""))
    return "; ".join(parts)


def _entry(text: str) -> WindowEntry:
    words = text.replace(",", " , ").split()
    if text.lower().startswith("every day"):
        words = ["daily", *words[2:]]
    if len(words) < 2:
        raise InvalidInput("needs days and a span, e.g. mon-fri 08:00-18:00")
    days = words.pop(0)
    while len(words) > 1 and words[0] == ",":  # "sat, sun"
        days = f"{days},{words[1]}"
        words = words[2:]
    words.insert(0, days)
    try:
        parse_days(days)
    except InvalidInput as exc:
        raise InvalidInput(f"days: {exc}") from None
    start, dash, end = words[1].partition("-")
    if not dash:
        raise InvalidInput(f"{words[1]!r} is not a span like 08:00-18:00")
    for key, clock in (("from", start), ("to", end)):
        try:
            parse_clock(clock)
        except InvalidInput as exc:
            raise InvalidInput(f"{key}: {exc}") from None
    speed, pause, cap = "", False, ""
    rest = [w for w in words[2:] if w != ","]
    index = 0
    while index < len(rest):
        word, lower = rest[index], rest[index].lower()
        index += 1
        if lower in ("paused", "pause"):
            pause = True
        elif lower == "normal" and index < len(rest) and rest[index].lower() == "speed":
            index += 1
        elif lower in ("unlimited", "normal"):
            pass
        elif lower.startswith("speed=") and len(word) > len("speed="):
            speed = word[len("speed="):]
        elif lower.endswith("/s") and len(word) > 2:
            speed = word[:-2]
        elif lower.startswith("cap=") and len(word) > len("cap="):
            cap = word[len("cap="):]
        elif lower == "cap" and index < len(rest):
            cap, index = rest[index], index + 1
        else:
            raise InvalidInput(f"{word!r} is not paused, a speed (2M/s, speed=2M) or a cap (cap 10G)")
    if pause and speed:
        raise InvalidInput("a window has either paused or a speed, not both")
    return WindowEntry(days=days, from_=start, to=end, speed=speed, pause=pause, cap=cap)


def parse_windows(text: str) -> list[WindowEntry]:
    """The one-line form back into windows ('' → none), or InvalidInput naming the window and its bad part:
    "window 2 (sat,sun 22:00-06:00 fast): 'fast' is not paused, a speed ...". Sizes are checked by the config."""
    entries = []
    parts = [part.strip() for part in text.split(";")]
    if len(parts) == 1 and not parts[0]:
        return []
    for number, part in enumerate(parts, 1):
        if not part:
            raise InvalidInput(f"window {number} is empty (windows are separated by ';')")
        try:
            entries.append(_entry(part))
        except InvalidInput as exc:
            raise InvalidInput(f"window {number} ({part}): {exc}") from None
    return entries

def window_tables(value: Any) -> Sequence[Mapping[str, Any]]:
    """The `[[schedule]]` array as the TOML file has it (an array of tables), or InvalidInput."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidInput("must be an array of tables: [[schedule]] days = \"mon-fri\", from = \"08:00\", ...")
    return value

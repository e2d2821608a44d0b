"""The schedule's windows (days, times, midnight, first match), the [[schedule]] / [hosts] speed config and its
errors, and which buckets a task's bytes pass (core/schedule.py, core/config.py, core/ratelimit.py)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from core.config import BadValue, Config, load_config
from core.errors import InvalidInput
from core.ratelimit import SpeedLimits
from core.schedule import Mode, Schedule, ScheduleState, Window, format_rate, parse_clock, parse_days

MON, TUE, SUN = datetime(2026, 11, 30), datetime(2026, 12, 1), datetime(2026, 12, 6)


def at(day: datetime, hhmm: str) -> datetime:
    hours, minutes = hhmm.split(":")
    return day.replace(hour=int(hours), minute=int(minutes))


@pytest.mark.parametrize(("text", "days"), [
    ("mon-fri", {0, 1, 2, 3, 4}), ("sat,sun", {5, 6}), ("fri-mon", {4, 5, 6, 0}), ("daily", set(range(7))),
    ("Monday, wed-thu", {0, 2, 3}), ("sun", {6}),
])
def test_days(text: str, days: set[int]) -> None:
    assert parse_days(text) == days


@pytest.mark.parametrize("text", ["", "mon-fry", "weekdays", "mon,,tue", "mo-fr-sa"])
def test_bad_days(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_days(text)


def test_clock() -> None:
    assert (parse_clock("08:00"), parse_clock("0:05"), parse_clock("24:00")) == (480, 5, 1440)
    for bad in ("8", "08:60", "24:01", "25:00", "8.30", "noon"):
        with pytest.raises(InvalidInput):
            parse_clock(bad)


def test_windows_cross_midnight_and_the_first_one_wins() -> None:
    night = Window(days=parse_days("mon"), start=parse_clock("22:00"), end=parse_clock("06:00"), pause=True)
    work = Window(days=parse_days("mon-fri"), start=parse_clock("08:00"), end=parse_clock("18:00"), speed=1)
    whole = Window(days=parse_days("sun"), start=0, end=0, speed=2)  # from == to: the whole day
    schedule = Schedule((night, work, whole))
    assert schedule.in_force(at(MON, "21:59")) is None
    assert schedule.in_force(at(MON, "22:00")) == (0, night, at(MON, "22:00"), at(TUE, "06:00"))
    assert schedule.in_force(at(TUE, "05:59")) == (0, night, at(MON, "22:00"), at(TUE, "06:00"))  # Monday's
    assert schedule.in_force(at(TUE, "06:00")) is None
    assert schedule.in_force(at(TUE, "22:30")) is None  # the night window is Monday's only
    assert schedule.in_force(at(TUE, "17:59")) == (1, work, at(TUE, "08:00"), at(TUE, "18:00"))
    assert schedule.in_force(at(TUE, "18:00")) is None
    assert schedule.in_force(at(SUN, "23:59"))[1] is whole  # type: ignore[index]
    overlapping = Schedule((work, Window(days=parse_days("daily"), start=0, end=0, pause=True)))
    assert overlapping.in_force(at(MON, "09:00"))[1] is work  # type: ignore[index]


def test_state_words() -> None:
    until = at(MON, "18:00")
    assert ScheduleState().describe() == "" and ScheduleState().waiting_note() is None
    assert ScheduleState(Mode.PAUSED, until=until).describe() == "paused until 18:00"
    assert ScheduleState(Mode.PAUSED, until=until).waiting_note() == "scheduled: starts 18:00"
    assert ScheduleState(Mode.PAUSED, until=until, capped=True).describe() == "cap reached, paused until 18:00"
    assert ScheduleState(Mode.SPEED, speed=2 << 20, until=until).describe() == "2M/s until 18:00"
    assert ScheduleState(Mode.SPEED, speed=None, until=until).describe() == "unlimited until 18:00"
    assert (format_rate(1536), format_rate(500), format_rate(5 << 30)) == ("1.5K/s", "500 B/s", "5G/s")


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ={})


def test_config_sections(tmp_path: Path) -> None:
    config = load(tmp_path, """
[hosts."Example.com"]
speed = "1M"
tasks = 2
[hosts."*"]
speed = "256K"

[[schedule]]
days = "mon-fri"
from = "08:00"
to = "18:00"
speed = "2M"

[[schedule]]
days = "sat,sun"
from = "23:00"
to = "07:00"
pause = true

[[schedule]]
days = "daily"
from = "00:00"
to = "00:00"
cap = "10G"
""")
    assert config.hosts.speeds() == {"example.com": 1 << 20, "*": 256 << 10}
    windows = Schedule.from_config(config.schedule.windows).windows
    assert [(w.speed, w.pause, w.cap, w.text) for w in windows] == [
        (2 << 20, False, None, "mon-fri 08:00-18:00"), (None, True, None, "sat,sun 23:00-07:00"),
        (None, False, 10 << 30, "daily 00:00-00:00")]


@pytest.mark.parametrize(("body", "message"), [
    ('days = "mon-fry"\nfrom = "08:00"\nto = "18:00"', "window 1: days: 'fry' is not a day"),
    ('days = "mon"\nfrom = "25:00"\nto = "18:00"', "window 1: from: '25:00' is not a time of day"),
    ('days = "mon"\nfrom = "08:00"\nto = "18:00"\nspeed = "fast"', "window 1: speed: not a size: 'fast'"),
    ('days = "mon"\nfrom = "08:00"\nto = "18:00"\ncap = -1', "window 1: cap:"),
    ('days = "mon"\nfrom = "08:00"', "window 1: to is required"),
    ('days = "mon"\nfrom = "08:00"\nto = "09:00"\npause = true\nspeed = "1M"', "either pause = true or a speed"),
    ('days = "mon"\nfrom = "08:00"\nto = "09:00"\npaus = true', "window 1: unknown key 'paus'"),
    ('days = "mon"\nfrom = 8\nto = "09:00"', "window 1: from: 8 is not text"),
    ('days = "mon"\nfrom = "08:00"\nto = "09:00"\npause = "maybe"', "window 1: pause:"),
])
def test_schedule_errors_name_the_window_and_key(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(BadValue) as caught:
        load(tmp_path, f'[[schedule]]\ndays = "sun"\nfrom = "01:00"\nto = "02:00"\n\n[[schedule]]\n{body}\n'
             .replace("window 1", "window 2"))
    text = str(caught.value)
    assert caught.value.key == "schedule" and str(tmp_path / "config.toml") in text
    assert message.replace("window 1", "window 2") in text, text


def test_schedule_must_be_an_array_and_host_speed_a_size(tmp_path: Path) -> None:
    with pytest.raises(BadValue, match="must be an array of tables"):
        load(tmp_path, '[schedule]\ndays = "mon"\n')
    with pytest.raises(BadValue, match="not a size: 'quick'"):
        load(tmp_path, '[hosts."a.example"]\nspeed = "quick"\n')


def test_buckets_a_task_passes() -> None:
    limits = SpeedLimits(5 << 20, {"slow.example": 1 << 20, "*": 3 << 20})
    slow = limits.for_task(1, "https://SLOW.example:8443/f", 512 << 10)
    other = limits.for_task(2, "https://fast.example/f", None)
    assert (slow.rate, other.rate) == (512 << 10, 3 << 20)  # the tightest bucket
    assert limits.for_task(3, "https://slow.example/g", None).limiters[1] is slow.limiters[1]  # one per host
    limits.set_host("*", None)
    limits.set_global(None)
    assert other.rate is None
    limits.set_override(64 << 10, active=True)  # a schedule speed window beats every looser bucket
    assert (slow.rate, other.rate) == (64 << 10, 64 << 10)
    limits.set_global(1 << 10)  # the normal rate changes underneath, the window still wins
    assert other.rate == 64 << 10
    limits.set_override(None, active=False)
    assert other.rate == 1 << 10
    assert limits.set_task(1, None) and slow.rate == 1 << 10
    assert not limits.set_task(99, 1)


def test_a_save_keeps_the_schedule_as_written(tmp_path: Path) -> None:
    from core.config import save_config

    text = '# mine\n[[schedule]]\ndays = "mon"  # weekly\nfrom = "08:00"\nto = "09:00"\npause = true\n'
    config = load(tmp_path, text)
    config.download.max_concurrent = 5
    save_config(tmp_path / "config.toml", config)
    saved = (tmp_path / "config.toml").read_text()
    assert text.strip() in saved and "max_concurrent = 5" in saved
    assert load(tmp_path, saved).schedule == config.schedule


async def test_a_new_rate_wakes_a_caller_waiting_under_the_old_one() -> None:
    import asyncio
    import time

    from core.ratelimit import RateLimiter

    limiter = RateLimiter(1024)  # 1 KiB/s: 200 KiB past the 64 KiB bucket is a 136 s wait
    started = time.monotonic()
    waiting = asyncio.ensure_future(limiter.acquire(200 << 10))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    limiter.set_rate(None)
    await asyncio.wait_for(waiting, 2)
    assert time.monotonic() - started < 2
    limiter.set_rate(10 << 20)  # and a rate raised mid-wait applies at once too
    waiting = asyncio.ensure_future(limiter.acquire(20 << 20))
    await asyncio.sleep(0.05)
    limiter.set_rate(1 << 40)
    await asyncio.wait_for(waiting, 2)

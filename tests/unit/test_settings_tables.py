"""The one-line text forms of the [[schedule]] windows (core/schedule.py) and the [hosts."NAME"] tables
(core/config.py): what format writes, parse reads back; bad parts are named; save_config writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ScheduleWindowConfig, check_value, format_hosts, load_config, parse_hosts, save_config
from core.errors import InvalidInput
from core.schedule import format_windows, parse_windows


def windows(text: str) -> list[ScheduleWindowConfig]:
    return list(check_value("schedule", "windows", [w.table() for w in parse_windows(text)]))


@pytest.mark.parametrize("text", [
    "mon-fri 08:00-18:00 2M/s; sat,sun 22:00-06:00 paused",
    "daily 00:00-06:00 normal speed, cap 10G; fri-mon 23:30-01:00 512K/s, cap 1.5G",
    "",
])
def test_schedule_text_round_trips(text: str) -> None:
    assert format_windows(windows(text)) == text


def test_schedule_text_takes_the_key_value_spelling_too() -> None:
    spelled = windows("mon-fri 08:00-18:00 speed=2M; sat, sun 22:00-06:00 pause; daily 00:00-06:00 cap=10G")
    assert spelled == windows("mon-fri 08:00-18:00 2M/s; sat,sun 22:00-06:00 paused; daily 00:00-06:00 cap 10G")


@pytest.mark.parametrize(("text", "message"), [
    ("mon-fri 08:00-18:00 fast", "window 1 (mon-fri 08:00-18:00 fast): 'fast' is not paused, a speed"),
    ("mon 08:00-09:00; mon-fry 08:00-18:00", "window 2 (mon-fry 08:00-18:00): days: 'fry' is not a day"),
    ("mon 25:00-18:00", "window 1 (mon 25:00-18:00): from: '25:00' is not a time of day"),
    ("mon 08:00", "window 1 (mon 08:00): '08:00' is not a span like 08:00-18:00"),
    ("mon 08:00-09:00 paused 2M/s", "window 1 (mon 08:00-09:00 paused 2M/s): a window has either paused or a speed"),
    ("mon 08:00-09:00;;", "window 2 is empty"),
])
def test_schedule_text_errors_name_the_window_and_the_part(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_windows(text)
    assert str(caught.value).startswith(message), caught.value


@pytest.mark.parametrize("text", ["example.com connections=4 tasks=2 speed=1M; * connections=16", "cdn.lan", ""])
def test_hosts_text_round_trips(text: str) -> None:
    assert format_hosts(parse_hosts(text)) == text


@pytest.mark.parametrize(("text", "message"), [
    ("a.com tasks=two", "host a.com: tasks: 'two': "),
    ("a.com speed=fast", "host a.com: speed: 'fast': not a size"),
    ("a.com tasks=-1", "host a.com: tasks: '-1': "),
    ("a.com conections=4", "host a.com: 'conections=4' is not key=value with a key of connections, tasks, speed"),
    ("tasks=2", "host 1 (tasks=2): 'tasks=2' is not a host name"),
    ("a.com tasks=1; A.com", "host A.com: named twice"),
])
def test_hosts_text_errors_name_the_host_and_the_part(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_hosts(text)
    assert str(caught.value).startswith(message), caught.value


def test_save_config_writes_the_tables_and_keeps_what_still_holds(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('# mine\n[hosts."keep.example"]  # as it was\ntasks = 1\n\n[hosts."gone.example"]\ntasks = 3\n\n'
                    '[[schedule]]\ndays = "sun"\nfrom = "01:00"\nto = "02:00"\npause = true\n\n[policy]\n'
                    'quiet_seconds = 5  # quick\n')
    config = load_config(path, environ={})
    config = config.override("hosts", limits=parse_hosts("keep.example tasks=1; new.example connections=2"))
    config = config.override("schedule", windows=windows("mon-fri 08:00-18:00 2M/s, cap 1G"))
    save_config(path, config)
    text = path.read_text()
    assert '# mine\n[hosts."keep.example"]  # as it was\ntasks = 1\n' in text and "quiet_seconds = 5  # quick" in text
    assert "gone.example" not in text and 'days = "sun"' not in text
    again = load_config(path, environ={})
    assert again.hosts == config.hosts and again.schedule == config.schedule and again.policy.quiet_seconds == 5
    save_config(path, again.override("schedule", windows=[]).override("hosts", limits={}))
    text = path.read_text()
    assert "[[schedule]]" not in text and "[hosts" not in text and "quiet_seconds = 5  # quick" in text

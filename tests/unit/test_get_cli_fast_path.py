"""`get`'s fast path (tui/get_cli.py) parses a command line exactly as click does, or leaves it to click.

Each accepted command line is also run through the click tree (tui.commands.main) with the command's
body replaced by a recorder: both must hand the same GetArgs to `tui.get_cli.run`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tui import get_cli
from tui.commands import main
from tui.get_cli import GetArgs, parse_plain_get

U1, U2 = "http://127.0.0.1:9/a.bin", "http://127.0.0.1:9/b.bin"


def through_click(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> GetArgs:
    seen: list[GetArgs] = []
    monkeypatch.setattr(get_cli, "run", seen.append)
    main.main(argv, prog_name="fetchdeck", standalone_mode=False)
    (args,) = seen
    return args


PLAIN = [
    ["get", U1],
    ["get", U1, U2],
    ["get", U1, "-d", "dl", "--data-dir", "data"],
    ["get", "-x", "4", U1, U2],
    ["get", U1, "--connections", "064", "--connect-timeout", "0.5"],
    ["get", U1, "--connect-timeout", "3600", "-o", "", "--type", "m3u8", "--quality", "720p"],
    ["get", U1, "-H", "A: 1", "--header", "B: 2", "-H", "A: 3", "--audio-only", "--insecure", "--insecure"],
    ["get", U1, "--proxy", "socks5://127.0.0.1:1080", "--speed-limit", "5M", "--name", "f.bin"],
    ["get", U1, "--split-playlist", U2],
    ["get", U1, "-H", "bad header", "--type", "nonsense", "-o", "x", U2],  # click takes them; the command refuses
]


@pytest.mark.parametrize("argv", PLAIN, ids=" ".join)
def test_a_plain_get_parses_as_click_parses_it(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    fast = parse_plain_get(argv)
    assert fast is not None
    assert fast == through_click(argv, monkeypatch)


@pytest.mark.parametrize("argv", [
    ["ls"], ["get"], ["get", "--help"], ["get", "-h"], ["get", U1, "--"], ["get", "-", U1],
    ["get", U1, "-x4"], ["get", U1, "--connections=4"], ["get", U1, "-x", "0"], ["get", U1, "-x", "65"],
    ["get", U1, "-x", " 4"], ["get", U1, "-x", "4.0"], ["get", U1, "--connect-timeout", "0.4"],
    ["get", U1, "--connect-timeout", "1e3"], ["get", U1, "--connect-timeout", "3600.5"],
    ["get", U1, "-o", "a", "-o", "b"], ["get", U1, "-o", "-x"], ["get", U1, "-o"], ["get", U1, "--nope"],
    ["get", U1, "--insecure=1"], ["--data-dir", "x", "get", U1], ["get", U1, "--audio"],
])
def test_anything_else_is_left_to_click(argv: list[str]) -> None:
    assert parse_plain_get(argv) is None


def test_a_folder_click_would_refuse_is_left_to_click(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert parse_plain_get(["get", U1, "-d", str(a_file)]) is None
    assert parse_plain_get(["get", U1, "--data-dir", str(a_file)]) is None
    existing = ["get", U1, "-d", str(tmp_path), "--data-dir", str(tmp_path / "missing")]
    assert parse_plain_get(existing) == through_click(existing, monkeypatch)


def test_shell_completion_is_left_to_click(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_FETCHDECK_COMPLETE", "bash_complete")
    assert parse_plain_get(["get", U1]) is None

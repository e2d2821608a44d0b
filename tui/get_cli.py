"""`fetchdeck get`'s command line: the command's body, and the fast path that runs it without click.

click's command tree (tui/commands.py) costs start-up time that a one-shot download feels, so tui/cli.py
first offers the arguments to `parse_plain_get`. It takes only the plainest spellings of `get`'s options
(`--name VALUE` or `-o VALUE` as separate words, the two flags, URLs) with values click would accept as
they are, and returns None for anything else (help, `--opt=value`, `-x4`, `--`, an option twice, a value
that starts with "-", a number or path click might refuse, shell completion...), which click then
handles: so the parsed values, the messages and the exit codes are click's, whichever path ran.
`tests/unit/test_get_cli_fast_path.py` holds the two paths to the same answers.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
from dataclasses import dataclass
from typing import NoReturn, TextIO

from core.errors import FetchdeckError, InvalidInput
from tui.cli_support import CONNECT_TIMEOUT, fail, load_profile, with_flags


@dataclass(frozen=True, slots=True)
class GetArgs:
    """`get`'s parameters as click passes them to the command."""

    urls: tuple[str, ...]
    download_dir: str | None = None
    data_dir: str | None = None
    connections: int | None = None
    name: str | None = None
    kind: str | None = None
    headers: tuple[str, ...] = ()
    quality: str | None = None
    audio_only: bool = False
    proxy: str | None = None
    insecure: bool = False
    speed_limit: str | None = None
    connect_timeout: float = CONNECT_TIMEOUT
    notify_urls: tuple[str, ...] = ()  # --notify URL: this task's own Apprise URLs
    no_notify: bool = False
    checksum: str | None = None  # expected digest "ALGO=HEX" (core/integrity.py)
    split_playlist: bool = False  # a yt-dlp playlist or channel URL: one task per entry (core/playlists.py)
    priority: str | None = None  # queue control (issue 14): high, normal, low
    start_at: str | None = None  # HH:MM or an ISO date and time


# option word → GetArgs field, for the options taking one value (-H, repeatable, is handled apart)
_VALUE_OPTIONS = {
    "-d": "download_dir", "--download-dir": "download_dir", "--data-dir": "data_dir",
    "-x": "connections", "--connections": "connections", "-o": "name", "--name": "name", "--type": "kind",
    "--quality": "quality", "--proxy": "proxy", "--speed-limit": "speed_limit",
    "--connect-timeout": "connect_timeout", "--checksum": "checksum",
}
_FLAGS = {"--audio-only": "audio_only", "--insecure": "insecure", "--split-playlist": "split_playlist"}
_DIGITS = re.compile(r"[0-9]{1,6}")
_DECIMAL = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?")


def parse_plain_get(argv: list[str]) -> GetArgs | None:
    """argv (without the program name) as click would parse it, if it is `get` spelled plainly; else None."""
    if not argv or argv[0] != "get" or any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ):
        return None
    values: dict[str, str] = {}
    flags: set[str] = set()
    headers: list[str] = []
    urls: list[str] = []
    words = iter(argv[1:])
    for word in words:
        if not word.startswith("-"):
            urls.append(word)
        elif word in _FLAGS:
            flags.add(_FLAGS[word])
        elif word in _VALUE_OPTIONS or word in ("-H", "--header"):
            value = next(words, None)
            if value is None or value.startswith("-"):
                return None
            if word in ("-H", "--header"):
                headers.append(value)
            elif _VALUE_OPTIONS[word] in values:
                return None
            else:
                values[_VALUE_OPTIONS[word]] = value
        else:
            return None
    if not urls:
        return None
    connections: int | None = None
    if "connections" in values:
        if not _DIGITS.fullmatch(values["connections"]) or not 1 <= int(values["connections"]) <= 64:
            return None
        connections = int(values["connections"])
    connect_timeout = CONNECT_TIMEOUT
    if "connect_timeout" in values:
        if not _DECIMAL.fullmatch(values["connect_timeout"]):
            return None
        connect_timeout = float(values["connect_timeout"])
        if not 0.5 <= connect_timeout <= 3600:
            return None
    for folder in ("download_dir", "data_dir"):
        if folder in values and not _plain_folder(values[folder]):
            return None
    return GetArgs(
        urls=tuple(urls), download_dir=values.get("download_dir"), data_dir=values.get("data_dir"),
        connections=connections, name=values.get("name"), kind=values.get("kind"), headers=tuple(headers),
        quality=values.get("quality"), audio_only="audio_only" in flags, proxy=values.get("proxy"),
        insecure="insecure" in flags, speed_limit=values.get("speed_limit"), connect_timeout=connect_timeout,
        checksum=values.get("checksum"),
        split_playlist="split_playlist" in flags,
    )


def _plain_folder(path: str) -> bool:
    """Whether click.Path(file_okay=False) takes path without a word: missing, or a readable directory."""
    try:
        st = os.stat(path)
    except OSError:
        return True
    return stat.S_ISDIR(st.st_mode) and os.access(path, os.R_OK)


def run_plain(args: GetArgs) -> NoReturn:
    """Run `get` with what click's standalone mode adds around a command: ^C before the download's own
    handler → a blank line, `Aborted!`, exit 1; a broken stdout/stderr pipe → exit 1, quietly."""
    code = 1
    try:
        try:
            run(args)
        except (EOFError, KeyboardInterrupt):
            import click

            click.echo(file=sys.stderr)  # the blank line closes the terminal's ^C echo
            click.echo("Aborted!", file=sys.stderr)
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            sys.stdout = _QuietFlush(sys.stdout)
            sys.stderr = _QuietFlush(sys.stderr)
        sys.exit(code)
    except (EOFError, KeyboardInterrupt):
        sys.exit(code)


class _QuietFlush:
    """A stream whose flush ignores a broken pipe (what click does so the interpreter's final flush of
    stdout/stderr does not print a second error); everything else goes to the stream."""

    def __init__(self, wrapped: TextIO) -> None:
        self.wrapped = wrapped

    def flush(self) -> None:
        try:
            self.wrapped.flush()
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise

    def __getattr__(self, name: str) -> object:
        return getattr(self.wrapped, name)


def run(args: GetArgs) -> NoReturn:
    """Download args.urls now, in this process; exit with the command's code."""
    import asyncio

    from core.integrity import normalize_checksum
    from core.locations import DataDirBusy, DataDirLock
    from core.models import parse_header_lines, parse_kind
    from tui.get_command import GetRequest, Stderr, run_get

    if args.name and len(args.urls) > 1:
        fail("--name works with a single URL")
    if args.checksum and len(args.urls) > 1:
        fail("--checksum works with a single URL")
    from core.models import Priority
    from core.queue import parse_priority, parse_start_at

    try:
        checksum = normalize_checksum(args.checksum) if args.checksum else None
        parsed_kind = parse_kind(args.kind) if args.kind else None
        parsed_headers = parse_header_lines(list(args.headers))
        priority = parse_priority(args.priority) if args.priority else Priority.NORMAL
        start_at = parse_start_at(args.start_at) if args.start_at else None
    except InvalidInput as exc:
        fail(str(exc))
    locations, config = load_profile(args.data_dir, args.download_dir)
    if args.speed_limit is not None:
        config = with_flags(config, "download", speed_limit=args.speed_limit)
    options: dict[str, object] = {"insecure": args.insecure}
    if args.connections:  # HTTP connections, or HLS segments in flight
        options["connections"] = args.connections
        options["segment_threads"] = args.connections
    if args.proxy:
        options["proxy"] = args.proxy
    if args.quality:
        options["quality"] = args.quality
    if args.audio_only:
        options["postprocess"] = "audio"
        options.setdefault("quality", "audio")
    if args.notify_urls:
        options["notify_urls"] = list(args.notify_urls)
    if args.no_notify:
        options["notify"] = False
    if checksum:
        options["checksum"] = checksum
    if args.split_playlist:
        options["expand_playlist"] = True
    request = GetRequest(urls=args.urls, kind=parsed_kind, name=args.name, specs_options=options,
                         headers=parsed_headers, connect_timeout=args.connect_timeout, priority=priority,
                         start_at=start_at)
    try:
        lock = DataDirLock(locations.data_dir).acquire()
    except DataDirBusy as exc:
        fail(str(exc))
    try:
        code = asyncio.run(run_get(locations.database, config, request, Stderr()))
    except FetchdeckError as exc:
        fail(str(exc))
    finally:
        lock.release()
    sys.exit(code)

"""`fetchdeck get`'s body: download the URLs now, in this process (click parses its options in tui/commands.py).

It imports what a one-shot download needs when it runs, and no more: no Textual, Quart or yt-dlp for
an HTTP or HLS URL, no rich off a terminal (tests/unit/test_startup_imports.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import NoReturn

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


def run(args: GetArgs) -> NoReturn:
    """Download args.urls now, in this process; exit with the command's code."""
    import asyncio

    from core.locations import DataDirBusy, DataDirLock
    from core.models import parse_header_lines, parse_kind
    from tui.get_command import GetRequest, Stderr, run_get

    if args.name and len(args.urls) > 1:
        fail("--name works with a single URL")
    try:
        parsed_kind = parse_kind(args.kind) if args.kind else None
        parsed_headers = parse_header_lines(list(args.headers))
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
    request = GetRequest(urls=args.urls, kind=parsed_kind, name=args.name, specs_options=options,
                         headers=parsed_headers, connect_timeout=args.connect_timeout)
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

"""The command line: the composition root that wires core, server and tui."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from core.config import Config, ensure_config_file, load_config
from core.errors import FetchdeckError, InvalidInput
from core.locations import DataDirBusy, DataDirLock, Locations
from core.models import parse_header_lines, parse_kind


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"fetchdeck: {message}", err=True)
    sys.exit(code)


def load_profile(data_dir: str | None, download_dir: str | None) -> tuple[Locations, Config]:
    locations = Locations.resolve(data_dir)
    locations.ensure()
    ensure_config_file(locations.config_file)
    try:
        config = load_config(locations.config_file)
    except InvalidInput as exc:
        _fail(str(exc))
    if download_dir:
        config = config.override("download", dir=str(Path(download_dir).expanduser().resolve()))
    return locations, config


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fetchdeck")
@click.pass_context
def main(ctx: click.Context) -> None:
    """fetchdeck: a terminal download manager (HTTP, HLS, yt-dlp)."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@main.command()
@click.argument("urls", nargs=-1, required=True)
@click.option("--download-dir", "-d", type=click.Path(file_okay=False), help="Where files land.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where the task database lives.")
@click.option("--connections", "-x", type=click.IntRange(1, 64), help="Connections per HTTP download (1-64).")
@click.option("--name", "-o", help="File name (one URL only).")
@click.option("--type", "kind", help="http, hls/m3u8 or ytdlp (default: detected).")
@click.option("-H", "--header", "headers", multiple=True, help="Extra request header 'Name: value'.")
@click.option("--quality", help="best, 1080p, 720p, 480p, 360p, worst, audio.")
@click.option("--audio-only", is_flag=True, help="Extract the audio track (yt-dlp).")
@click.option("--proxy", help="http://, https:// or socks5:// proxy.")
@click.option("--insecure", is_flag=True, help="Do not verify TLS certificates.")
@click.option("--speed-limit", help="Global speed limit, e.g. 5M.")
def get(
    urls: tuple[str, ...], download_dir: str | None, data_dir: str | None, connections: int | None,
    name: str | None, kind: str | None, headers: tuple[str, ...], quality: str | None, audio_only: bool,
    proxy: str | None, insecure: bool, speed_limit: str | None,
) -> None:
    """Download URLs now, in this process; re-run to resume."""
    from rich.console import Console

    from tui.get_command import GetRequest, run_get

    if name and len(urls) > 1:
        _fail("--name works with a single URL")
    try:
        parsed_kind = parse_kind(kind) if kind else None
        parsed_headers = parse_header_lines(list(headers))
    except InvalidInput as exc:
        _fail(str(exc))
    locations, config = load_profile(data_dir, download_dir)
    if speed_limit is not None:
        config = config.override("download", speed_limit=speed_limit)
    options: dict[str, object] = {"insecure": insecure}
    if connections:
        options["connections"] = connections
    if proxy:
        options["proxy"] = proxy
    if quality:
        options["quality"] = quality
    if audio_only:
        options["postprocess"] = "audio"
        options.setdefault("quality", "audio")
    request = GetRequest(urls=urls, kind=parsed_kind, name=name, specs_options=options, headers=parsed_headers)
    try:
        lock = DataDirLock(locations.data_dir).acquire()
    except DataDirBusy as exc:
        _fail(str(exc))
    try:
        code = asyncio.run(run_get(locations.database, config, request, Console(stderr=True)))
    except FetchdeckError as exc:
        _fail(str(exc))
    finally:
        lock.release()
    sys.exit(code)


if __name__ == "__main__":
    main()

"""The click command tree: the composition root that wires core, server and tui.

tui/cli.py is the entry point in front of it. Each command imports what it needs when it runs
(the engine, the server, the TUI, the remote client...), so `fetchdeck get URL` never loads
Textual, Quart or yt-dlp, and parsing the command line costs only click.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import click

from core.errors import FetchdeckError, InvalidInput
from tui import __version__
from tui.cli_support import CONNECT_TIMEOUT, fail, load_profile, with_flags

CHECKSUM_HELP = ("Expected digest, e.g. sha256=HEX (md5, sha1, sha256, sha512); a mismatch fails the task "
                 "and keeps the file as NAME.corrupt. One URL only.")

if TYPE_CHECKING:
    from core.config import Config
    from core.locations import Locations
    from tui.remote_commands import Remote




def listen_option(func: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--listen", multiple=True, metavar="DIALECT=[HOST:]PORT[,token=false]",
        help="Also serve one dialect (mediago, m3u8, downie, saveany) on its own port, e.g. "
             "downie=127.0.0.1:8000,token=false for Downie's extension. Repeatable; adds to [server.listen].",
    )(func)


def with_listeners(config: Config, flags: tuple[str, ...]) -> Config:
    """config with each --listen flag added to (or replacing the same dialect in) server.listen."""
    if not flags:
        return config
    from core.config import parse_listen_flag

    listen = dict(config.server.listen)
    try:
        for flag in flags:
            listener = parse_listen_flag(flag)
            listen[listener.dialect] = listener
    except InvalidInput as exc:
        fail(str(exc))
    return with_flags(config, "server", listen=listen)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__)
@click.option("--download-dir", "-d", type=click.Path(file_okay=False), help="Where files land.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where the task database (and config) live.")
@click.option("--port", "-p", type=click.IntRange(1, 65535), help="API port (default 39719).")
@click.option("--no-server", is_flag=True, help="Do not serve the HTTP API.")
@listen_option
@click.option("--server", "server_url", metavar="URL", help="Attach the TUI to a running fetchdeck's API.")
@click.option("--token", envvar="FETCHDECK_TOKEN", help="API token for --server (env FETCHDECK_TOKEN).")
@click.pass_context
def main(ctx: click.Context, download_dir: str | None, data_dir: str | None, port: int | None, no_server: bool,
         listen: tuple[str, ...], server_url: str | None, token: str | None) -> None:
    """fetchdeck: a terminal download manager (HTTP, HLS, yt-dlp).

    Without a command: the TUI, with the engine and the HTTP API in this
    process (or attached to another fetchdeck with --server URL).
    """
    if ctx.invoked_subcommand is not None:
        if server_url or token:  # `fetchdeck --server URL ls` means what it says
            ctx.default_map = {name: {k: v for k, v in (("server", server_url), ("token", token)) if v}
                               for name in ("add", "ls", "start", "stop", "rm", "watch", "move", "priority")}
        return
    launch_tui(download_dir, data_dir, port, no_server, server_url, token, listen)


def launch_tui(download_dir: str | None, data_dir: str | None, port: int | None, no_server: bool,
               server_url: str | None, token: str | None, listen: tuple[str, ...] = ()) -> None:
    from core.locations import DataDirBusy, DataDirLock
    from tui.launch import run_local, run_remote

    locations, config = load_profile(data_dir, download_dir)
    if server_url:
        if not server_url.startswith(("http://", "https://")):
            server_url = "http://" + server_url
        asyncio.run(run_remote(locations, config, server_url, token))
        return
    config = with_listeners(with_flags(config, "server", port=port), listen)
    api_factory, note = None, "API off (--no-server)" if no_server else "API off (server.enable = false)"
    notices: tuple[str, ...] = ()
    if not no_server and config.server.enable:
        try:
            from tui.embedded_api import ServerApi

            api_factory, note = ServerApi.for_profile, ""
        except ImportError as exc:  # an installation without the server: the TUI still works
            note = "API unavailable"
            notices = (f"The HTTP API is not available in this installation ({exc}).",)
    try:
        lock = DataDirLock(locations.data_dir).acquire()
    except DataDirBusy as exc:
        fail(str(exc))
    try:
        asyncio.run(run_local(locations, config, api_factory, note, notices))
    except FetchdeckError as exc:
        fail(str(exc), 1)
    finally:
        lock.release()


# Events out (core/notify/): a task's own notifications, on `get` and `add`
NOTIFY_HELP = "Also notify this Apprise URL (ntfy://host/topic, ...) when the task ends; repeatable."
NO_NOTIFY_HELP = "No Apprise notification for these tasks ([webhook] and [hooks] still run)."


def queue_options(func: Callable[..., None]) -> Callable[..., None]:
    """--priority and --start-at (queue control, core/queue.py) of `get` and `add`."""
    func = click.option("--start-at", metavar="HH:MM|ISO", help="Do not start before this time: HH:MM (the next "
                        "time the clock shows it) or an ISO date and time (2026-12-01T22:30).")(func)
    return click.option("--priority", type=click.Choice(["high", "normal", "low"], case_sensitive=False),
                        help="The queue takes high before normal before low (default normal).")(func)


@main.command()
@click.argument("urls", nargs=-1, required=True)
@click.option("--download-dir", "-d", type=click.Path(file_okay=False), help="Where files land.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where the task database lives.")
@click.option(
    "--connections", "-x", type=click.IntRange(1, 64),
    help="Connections per HTTP download, or HLS segments in flight (1-64).",
)
@click.option("--name", "-o", help="File name (one URL only).")
@click.option("--type", "kind", help="http, hls/m3u8, dash or ytdlp (default: detected).")
@click.option("-H", "--header", "headers", multiple=True, help="Extra request header 'Name: value'.")
@click.option("--quality", help="best, 1080p, 720p, 480p, 360p, worst, audio.")
@click.option("--audio-only", is_flag=True, help="Extract the audio track (yt-dlp).")
@click.option("--proxy", help="http://, https:// or socks5:// proxy.")
@click.option("--insecure", is_flag=True, help="Do not verify TLS certificates.")
@click.option("--speed-limit", help="Global speed limit, e.g. 5M.")
@click.option("--split-playlist", is_flag=True, help="A yt-dlp playlist or channel URL: one task per entry.")
@click.option(
    "--connect-timeout", type=click.FloatRange(0.5, 3600), default=CONNECT_TIMEOUT, show_default=True,
    help="Give up on a server that cannot be reached at all (refused, unknown host, no answer to connect) "
    "after this many seconds; also each connection attempt's limit (at most 15).",
)
@click.option("--notify", "notify_urls", multiple=True, metavar="URL", help=NOTIFY_HELP)
@click.option("--no-notify", is_flag=True, help=NO_NOTIFY_HELP)
@click.option("--checksum", help=CHECKSUM_HELP)
@queue_options
def get(
    urls: tuple[str, ...], download_dir: str | None, data_dir: str | None, connections: int | None,
    name: str | None, kind: str | None, headers: tuple[str, ...], quality: str | None, audio_only: bool,
    proxy: str | None, insecure: bool, speed_limit: str | None, connect_timeout: float,
    notify_urls: tuple[str, ...], no_notify: bool, checksum: str | None, split_playlist: bool,
    priority: str | None, start_at: str | None,
) -> None:
    """Download URLs now, in this process; re-run to resume."""
    from tui.get_cli import GetArgs, run

    run(GetArgs(urls=urls, download_dir=download_dir, data_dir=data_dir, connections=connections, name=name,
                kind=kind, headers=headers, quality=quality, audio_only=audio_only, proxy=proxy, insecure=insecure,
                speed_limit=speed_limit, connect_timeout=connect_timeout, notify_urls=notify_urls,
                no_notify=no_notify, checksum=checksum, split_playlist=split_playlist,
                priority=priority, start_at=start_at))


# ---- headless server -------------------------------------------------------


def cluster_options(func: Callable[..., None]) -> Callable[..., None]:
    func = click.option("--node", help="This node's name among the nodes of one store (default: the host "
                        "name; env FETCHDECK_CLUSTER_NODE).")(func)
    return click.option("--store", "store_url", metavar="URL",
                        help="Keep tasks in this PostgreSQL database, shared with other nodes "
                             "(postgresql://user@host:port/db; env FETCHDECK_STORE_URL; default: SQLite in the "
                             "data dir).")(func)


def with_cluster(config: Config, store_url: str | None, node: str | None) -> Config:
    return with_flags(with_flags(config, "store", url=store_url), "cluster", node=node)


@main.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1; others need a token).")
@click.option("--port", "-p", type=click.IntRange(0, 65535), help="Port (default 39719).")
@click.option("--token", help="API token clients must send (env FETCHDECK_SERVER_TOKEN).")
@listen_option
@click.option("--download-dir", "-d", help="Where files land (a folder, or s3://bucket/prefix).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where the task database lives.")
@cluster_options
def serve(host: str | None, port: int | None, token: str | None, listen: tuple[str, ...], download_dir: str | None,
          data_dir: str | None, store_url: str | None, node: str | None) -> None:
    """Run the engine and the HTTP API without the TUI (Ctrl-C stops)."""
    from server.listeners import listener_refusals
    from tui.serve_command import run_serve

    locations, config = load_profile(data_dir, download_dir)
    config = with_listeners(with_flags(config, "server", host=host, port=port, token=token), listen)
    config = with_cluster(config, store_url, node)
    refusals = listener_refusals(config)
    if refusals:
        fail("\n".join(refusals))
    run_headless(locations, lambda: run_serve(locations, config))


@main.command()
@click.option("--download-dir", "-d", help="Where files land (a folder, or s3://bucket/prefix).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where this node keeps its own files.")
@cluster_options
def worker(download_dir: str | None, data_dir: str | None, store_url: str | None, node: str | None) -> None:
    """Download the tasks of a shared store without serving the API (Ctrl-C stops; its tasks go to other nodes)."""
    from tui.serve_command import run_worker

    locations, config = load_profile(data_dir, download_dir)
    config = with_cluster(config, store_url, node)
    if not config.store.url:
        fail("a worker needs a shared store: --store postgresql://user@host:port/db (or FETCHDECK_STORE_URL)")
    run_headless(locations, lambda: run_worker(locations, config))


def run_headless(locations: Locations, body: Callable[[], Coroutine[Any, Any, int]]) -> None:
    """Hold the data dir, log to stderr, run `body` until it returns its exit code."""
    from core.locations import DataDirBusy, DataDirLock
    from tui.serve_command import setup_logging

    try:
        lock = DataDirLock(locations.data_dir).acquire()
    except DataDirBusy as exc:
        fail(str(exc))
    setup_logging()
    try:
        code = asyncio.run(body())
    except FetchdeckError as exc:
        fail(str(exc), 1)
    finally:
        lock.release()
    sys.exit(code)


# ---- remote commands (talk to a running fetchdeck over HTTP) -----------------


def remote_options(func: Callable[..., None]) -> Callable[..., None]:
    func = click.option("--token", envvar="FETCHDECK_TOKEN", help="API token (env FETCHDECK_TOKEN).")(func)
    return click.option(
        "--server", envvar="FETCHDECK_SERVER", default="http://127.0.0.1:39719", show_default=True,
        help="fetchdeck API URL (env FETCHDECK_SERVER).",
    )(func)


def _remote(server: str, token: str | None) -> Remote:
    from tui.remote_commands import Remote

    return Remote(server=server, token=token or None)


@main.command()
@click.argument("urls", nargs=-1, required=True)
@click.option("--type", "kind", help="direct, m3u8, youtube, bilibili, mediago (default: detected).")
@click.option("--name", "-o", help="Task name / file name (one URL only).")
@click.option("--folder", help="Subfolder of the download dir.")
@click.option("-H", "--header", "headers", multiple=True, help="Extra request header 'Name: value'.")
@click.option("--no-start", is_flag=True, help="Add the tasks stopped, without starting them.")
@click.option("--notify", "notify_urls", multiple=True, metavar="URL", help=NOTIFY_HELP)
@click.option("--no-notify", is_flag=True, help=NO_NOTIFY_HELP)
@click.option("--checksum", help=CHECKSUM_HELP)
@click.option("--split-playlist", is_flag=True, help="A yt-dlp playlist or channel URL: one task per entry.")
@queue_options
@remote_options
def add(urls: tuple[str, ...], kind: str | None, name: str | None, folder: str | None, headers: tuple[str, ...],
        no_start: bool, notify_urls: tuple[str, ...], no_notify: bool, checksum: str | None, split_playlist: bool,
        priority: str | None, start_at: str | None, server: str, token: str | None) -> None:
    """Add downloads to a running fetchdeck; prints id, status and name per task."""
    if name and len(urls) > 1:
        fail("--name works with a single URL")
    if checksum:
        if len(urls) > 1:
            fail("--checksum works with a single URL")
        from core.integrity import normalize_checksum

        try:
            checksum = normalize_checksum(checksum)
        except InvalidInput as exc:
            fail(str(exc))
    start_time = None
    if start_at:
        from core.queue import parse_start_at

        try:
            start_time = parse_start_at(start_at)
        except InvalidInput as exc:
            fail(str(exc))
    remote = _remote(server, token)
    from tui import remote_commands

    sys.exit(remote_commands.add(remote, urls, kind=kind, name=name, folder=folder,
                                 headers=headers, start=not no_start, notify_urls=notify_urls,
                                 notify=not no_notify, checksum=checksum, split_playlist=split_playlist,
                                 priority=priority, start_at=start_time))


@main.command()
@click.argument("task_id", type=click.IntRange(1))
@click.argument("where", type=click.Choice(["top", "bottom", "up", "down"], case_sensitive=False))
@remote_options
def move(task_id: int, where: str, server: str, token: str | None) -> None:
    """Reorder the queue: move a task to the top or bottom of the waiting tasks of its priority, or one place up
    or down."""
    remote = _remote(server, token)
    from tui import remote_commands

    sys.exit(remote_commands.move(remote, task_id, where.lower()))


@main.command()
@click.argument("task_id", type=click.IntRange(1))
@click.argument("level", type=click.Choice(["high", "normal", "low"], case_sensitive=False))
@remote_options
def priority(task_id: int, level: str, server: str, token: str | None) -> None:
    """Set a task's priority: the queue takes high before normal before low."""
    remote = _remote(server, token)
    from tui import remote_commands

    sys.exit(remote_commands.priority(remote, task_id, level.lower()))


@main.command(name="ls")
@click.option("--status", help="waiting, downloading, success, failed, stopped, list, done or active.")
@click.option("--json", "as_json", is_flag=True, help="Print the tasks as JSON.")
@remote_options
def ls_command(status: str | None, as_json: bool, server: str, token: str | None) -> None:
    """List the tasks of a running fetchdeck."""
    remote = _remote(server, token)
    from tui import remote_commands

    sys.exit(remote_commands.ls(remote, status=status, as_json=as_json))


def _id_command(action: str, help_text: str) -> None:
    @main.command(name=action, help=help_text)
    @click.argument("ids", nargs=-1, required=True, type=click.IntRange(1))
    @remote_options
    def command(ids: tuple[int, ...], server: str, token: str | None, **extra: bool) -> None:
        remote = _remote(server, token)
        from tui import remote_commands

        sys.exit(remote_commands.each(remote, ids, action, **extra))

    if action == "rm":
        click.option("--delete-file", is_flag=True, help="Also delete the downloaded file.")(command)


_id_command("start", "Start (or resume) tasks by id.")
_id_command("stop", "Stop tasks by id; a later start resumes them.")
_id_command("rm", "Remove tasks by id (stopping them first).")


@main.command()
@click.argument("task_id", metavar="ID", type=click.IntRange(1))
@click.argument("url")
@click.option("--restart", is_flag=True, help="Start over from the new URL when it is not the same file.")
@remote_options
def relink(task_id: int, url: str, restart: bool, server: str, token: str | None) -> None:
    """Give a task a new URL (an expired link); it continues where it stopped when the new URL serves
    the same file (size and ETag/Last-Modified), else it is refused with the reason (or, --restart, starts over)."""
    remote = _remote(server, token)
    from tui import remote_commands

    sys.exit(remote_commands.relink(remote, task_id, url, restart=restart))


@main.command()
@click.argument("target", metavar="ID|HOST")
@click.argument("speed")
@click.option("--host", "is_host", is_flag=True, help="TARGET is a host name (\"*\": every host not named).")
@remote_options
def limit(target: str, speed: str, is_host: bool, server: str, token: str | None) -> None:
    """Set a task's (or with --host a host's) speed limit while it runs: `fetchdeck limit 7 500K`; 0 for none."""
    if not is_host and not (target.isascii() and target.isdigit() and int(target) >= 1):
        fail(f"{target!r} is not a task id (use --host for a host name)")
    remote = _remote(server, token)
    from tui import remote_commands

    sys.exit(remote_commands.limit(remote, target if is_host else int(target), speed))


@main.command(name="schedule")
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
@remote_options
def schedule_command(as_json: bool, server: str, token: str | None) -> None:
    """Show the bandwidth schedule's window in force ([[schedule]] in config.toml)."""
    remote = _remote(server, token)
    from tui import remote_commands

    sys.exit(remote_commands.schedule(remote, as_json=as_json))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
@remote_options
def watch(as_json: bool, server: str, token: str | None) -> None:
    """Print the events of a running fetchdeck as they happen (Ctrl-C stops)."""
    remote = _remote(server, token)
    from tui import remote_commands

    sys.exit(remote_commands.watch(remote, as_json=as_json))


# ---- cookie jars (core/cookies.py; tui/cookies_command.py) ------------------------------


@main.group()
def cookies() -> None:
    """The cookie jar every download sends: import, list, clear (values are never shown)."""


@cookies.command(name="import")
@click.argument("file", required=False)
@click.option("--from-browser", "browser", metavar="BROWSER[+KEYRING][:PROFILE][::CONTAINER]",
              help="Read an installed browser's cookies through yt-dlp, e.g. firefox or chrome:'Profile 1'.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where the task database (and jar) live.")
def cookies_import(file: str | None, browser: str | None, data_dir: str | None) -> None:
    """Add cookies from a Netscape cookies.txt FILE (- for stdin) or from a browser."""
    from tui.cookies_command import run_import

    run_import(data_dir, file, browser)


@cookies.command(name="list")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where the task database (and jar) live.")
def cookies_list(data_dir: str | None) -> None:
    """Domains in the jar and how many cookies each has."""
    from tui.cookies_command import run_list

    run_list(data_dir)


@cookies.command(name="clear")
@click.argument("domain", required=False)
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where the task database (and jar) live.")
def cookies_clear(domain: str | None, data_dir: str | None) -> None:
    """Forget the cookies of DOMAIN and its subdomains (all cookies without DOMAIN)."""
    from tui.cookies_command import run_clear

    run_clear(data_dir, domain)

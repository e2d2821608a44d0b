"""`fetchdeck serve`: the engine and the HTTP API, headless, in one event loop.

Logs go to stderr; Hypercorn's error log also goes to <data dir>/logs/server.log.
SIGINT/SIGTERM stop the server, then the engine (running downloads are left
resumable and continue on the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from core.config import Config
from core.engine import Engine
from core.locations import Locations
from server.listeners import ListenerGroup, start_listeners

log = logging.getLogger("fetchdeck.serve")


def setup_logging() -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_fetchdeck_stderr", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        handler._fetchdeck_stderr = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    # One line per HTTP request (600 for an HLS download) is noise, and request
    # URLs may carry credentials: library chatter only from warnings up.
    for noisy in ("httpx", "httpcore", "hpack", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def run_serve(locations: Locations, config: Config) -> int:
    """Serve until SIGINT/SIGTERM; return the exit code."""
    return await _until_signal(lambda stop: _serve(locations, config, stop))


async def run_worker(locations: Locations, config: Config) -> int:
    """Download from the shared store until SIGINT/SIGTERM (no API); return the exit code."""
    return await _until_signal(lambda stop: _work(locations, config, stop))


async def _until_signal(body: Callable[[asyncio.Event], Awaitable[int]]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Installed for the whole run, shutdown included: a second Ctrl-C must not
    # interrupt engine.close() half-way.
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        return await body(stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def _work(locations: Locations, config: Config, stop: asyncio.Event) -> int:
    engine = Engine(locations.database, config)
    await engine.open()
    try:
        log.info("node %s: downloading from %s into %s", engine.node_name, _redacted(config.store.url),
                 engine.download_root)
        await stop.wait()
        log.info("stopping: downloads in progress go back to the queue")
        return 0
    finally:
        await engine.close()
        log.info("stopped")


def _redacted(url: str) -> str:
    """A store URL without its password, for the log."""
    scheme, sep, rest = url.partition("://")
    creds, at, place = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{place}"


async def _serve(locations: Locations, config: Config, stop: asyncio.Event) -> int:
    server = config.server
    engine = Engine(locations.database, config)
    await engine.open()
    group: ListenerGroup | None = None
    try:
        group = await start_listeners(engine, config, error_log=locations.log_dir / "server.log",
                                      propagate_errors=True, themes_dir=locations.themes_dir)
        for problem in group.problems:
            sys.stderr.write(f"fetchdeck: {problem}\n")
        group.services.on_shutdown = stop.set  # aria2.shutdown, when [aria2_rpc] allow_shutdown (aria2rpc.py)
        main = group.main
        if main is None:
            return 1
        auth = "token required" if server.token else "no token"
        log.info("serving the API on %s (%s); downloads go to %s", main.url, auth, engine.download_root)
        for line in group.lines():
            log.info("listening: %s", line)
        log.info("data dir %s; server errors also logged to %s", locations.data_dir,
                 locations.log_dir / "server.log")
        stopper = asyncio.create_task(stop.wait())
        tasks = {handle.task for handle in group.handles.values()}
        done, _ = await asyncio.wait({stopper, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        code = 0
        for task in done & tasks:
            if not stop.is_set():
                exc = task.exception() if not task.cancelled() else None
                sys.stderr.write(f"fetchdeck: the API server stopped unexpectedly: {exc}\n")
                code = 1
        log.info("stopping: downloads in progress are left resumable")
        return code
    finally:
        if group is not None:
            await group.stop()
        await engine.close()
        log.info("stopped")

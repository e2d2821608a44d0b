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

from core.config import Config
from core.engine import Engine
from core.locations import Locations
from server.app import create_app
from server.auth import is_loopback
from server.runner import start_server

log = logging.getLogger("fetchdeck.serve")


def refusal(host: str, token: str) -> str | None:
    """Why serving on host without a token is refused, or None if it is fine."""
    if token or is_loopback(host):
        return None
    return (
        f"refusing to listen on {host} without a token: anyone who can reach it could download "
        "files onto this machine. Pass --token T, set FETCHDECK_SERVER_TOKEN, or set token in the "
        "[server] section of config.toml (or use --host 127.0.0.1)"
    )


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
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Installed for the whole run, shutdown included: a second Ctrl-C must not
    # interrupt engine.close() half-way.
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        return await _serve(locations, config, stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def _serve(locations: Locations, config: Config, stop: asyncio.Event) -> int:
    server = config.server
    engine = Engine(locations.database, config)
    await engine.open()
    try:
        app = create_app(engine, config)
        try:
            handle = await start_server(
                app, server.host, server.port, error_log=locations.log_dir / "server.log", propagate_errors=True
            )
        except OSError as exc:
            sys.stderr.write(f"fetchdeck: cannot listen on {server.host}:{server.port}: {exc.strerror or exc}\n")
            return 1
        auth = "token required" if server.token else "no token"
        log.info("serving the API on %s (%s); downloads go to %s", handle.url, auth, engine.download_root)
        log.info("data dir %s; server errors also logged to %s", locations.data_dir,
                 locations.log_dir / "server.log")
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({stopper, handle.task}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        code = 0
        if handle.task in done and not stop.is_set():
            exc = handle.task.exception() if not handle.task.cancelled() else None
            sys.stderr.write(f"fetchdeck: the API server stopped unexpectedly: {exc}\n")
            code = 1
        log.info("stopping: downloads in progress are left resumable")
        await handle.stop()
        return code
    finally:
        await engine.close()
        log.info("stopped")

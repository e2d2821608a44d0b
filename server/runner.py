"""Serve the app with Hypercorn inside the running event loop.

No signal handlers of Hypercorn's own (the caller owns signals and passes a
shutdown trigger), no access log, and Hypercorn's error log goes to a file
under the data dir, never to the terminal the TUI is drawing on.

    handle = await start_server(app, "127.0.0.1", 0, error_log=locations.log_dir / "server.log")
    print(handle.url)
    ...
    await handle.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path

from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig
from quart import Quart

from server.state import state_of

SERVER_LOGGERS = ("hypercorn.error", "fetchdeck.server")
GRACEFUL_TIMEOUT = 2.0


def configure_error_log(error_log: Path | None, *, propagate: bool = False) -> logging.Logger:
    """Route Hypercorn's and the API's error loggers to a file (and to the root logger if propagate)."""
    handler: logging.Handler
    if error_log is not None:
        error_log.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(error_log, encoding="utf-8", delay=True)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    else:
        handler = logging.NullHandler()
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            if getattr(old, "_fetchdeck", False):
                logger.removeHandler(old)
                old.close()
        handler._fetchdeck = True  # type: ignore[union-attr]  # our marker on a stdlib handler
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = propagate
    return logging.getLogger("hypercorn.error")


LISTEN_BACKLOG = 1024


def bind_socket(host: str, port: int, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """A listening TCP socket (port 0 picks a free one); raises OSError if the address is taken."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass(slots=True)
class ServerHandle:
    app: Quart
    host: str
    port: int
    task: asyncio.Task[None]
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def wait(self) -> None:
        """Until the server stops (or fails)."""
        await asyncio.shield(self.task)

    async def stop(self) -> None:
        """End SSE streams, let in-flight requests finish (≤ GRACEFUL_TIMEOUT), close the socket."""
        state_of(self.app).streams.close()
        self.shutdown.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), GRACEFUL_TIMEOUT + 3)
        except TimeoutError:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        except asyncio.CancelledError:
            if not self.task.cancelled():
                raise  # we are being cancelled ourselves
        except Exception:
            logging.getLogger("fetchdeck.server").exception("the API server failed")


async def start_server(
    app: Quart, host: str, port: int, *, error_log: Path | None = None, propagate_errors: bool = False
) -> ServerHandle:
    """Bind now (so errors like a taken port surface here) and serve in a background task."""
    sock = bind_socket(host, port)
    actual_port = sock.getsockname()[1]
    config = HypercornConfig()
    config.bind = [f"fd://{sock.detach()}"]
    # Hypercorn listen()s again with its own backlog (default 100): with hundreds of
    # clients the accept queue overflowed and they waited out SYN retransmits (1, 3, 7, 15 s).
    config.backlog = LISTEN_BACKLOG
    config.accesslog = None
    config.errorlog = configure_error_log(error_log, propagate=propagate_errors)
    config.graceful_timeout = GRACEFUL_TIMEOUT
    shutdown = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=shutdown.wait), name="fetchdeck-api")
    await asyncio.sleep(0)
    return ServerHandle(app=app, host=host, port=actual_port, task=task, shutdown=shutdown)

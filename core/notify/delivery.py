"""One delivery's attempts: send, and on a failed attempt wait and send again, each attempt a task log line.

Shared by the notifier's channels (core/notify/notifier.py) and SaveAny-Bot's own per-task webhook
(server/webhooks.py), so both retry and log the same way:
    "<where>: delivered, HTTP 200"
    "<where>: HTTP 500; retrying in 1 s"
    "<where>: HTTP 500; giving up"
    "<where>: not delivered: fetchdeck stopped"
where `where(attempt)` names the channel and the attempt ("webhook https://… (success, attempt 2/4)").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from core.notify.channel import DeliveryFailed

log = logging.getLogger("fetchdeck.notify")


async def deliver(send: Callable[[], Awaitable[str]], *, attempts: int, delay: Callable[[int], float],
                  where: Callable[[int], str], task_log: Callable[[str], None]) -> bool:
    """Run `send` until it returns (what happened, e.g. "HTTP 200"), at most `attempts` times; `delay(n)` is
    the wait after failure number n. `send` fails an attempt with DeliveryFailed (retry=False: no more
    attempts). True if delivered. A cancellation (shutdown) is logged, then raised."""
    attempt = 0
    try:
        while True:
            attempt += 1
            try:
                result = await send()
            except DeliveryFailed as exc:
                if not exc.retry or attempt >= attempts:
                    task_log(f"{where(attempt)}: {exc}; giving up")
                    return False
                wait = delay(attempt)
                task_log(f"{where(attempt)}: {exc}; retrying in {wait:g} s")
                await asyncio.sleep(wait)
                continue
            except Exception as exc:  # a channel's own bug: logged, never silent
                log.exception("delivery crashed: %s", where(attempt))
                task_log(f"{where(attempt)}: {type(exc).__name__}: {exc}; giving up")
                return False
            task_log(f"{where(attempt)}: delivered, {result}")
            return True
    except asyncio.CancelledError:
        task_log(f"{where(attempt)}: not delivered: fetchdeck stopped")
        raise

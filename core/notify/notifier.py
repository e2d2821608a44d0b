"""The dispatcher: which channels hear of a finished task, and how each delivery is queued, retried and logged.

`Notifier` subscribes to the engine's bus. For each TaskSucceeded / TaskFailed of this node's engine
(an event relayed from another node is that node's to deliver) it reads the task once, builds its
`TaskReport` and starts one delivery per channel:
- an Apprise notification per `[notify] urls` entry and per `notify_urls` of the task, for the
  outcomes in `[notify] on`, unless the task has `notify = false`;
- the signed `[webhook]` for the outcomes in `[webhook] on`;
- the `[hooks] on_success` / `on_failure` command.
Each delivery runs in its own asyncio task (at most MAX_SENDING attempts in flight, at most
MAX_PENDING deliveries waiting), so neither a download nor the engine ever waits on a receiver.
A failed attempt is retried after `[notify] retry_delay` seconds, doubled each time (1, 2, 4 … s,
capped at MAX_DELAY), up to the channel's retries. Every attempt, delivered or not, and a final
give-up are lines in the task's log. On close the subscription's remaining events are handled and
pending deliveries get `[notify] grace` seconds; what is still pending then is cancelled and logged.

The settings are read at each event, so a changed `[notify]`, `[webhook]` or `[hooks]` applies to
the next finished task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import httpx

from core.config import Config
from core.events import Event, EventBus, Subscription, TaskFailed, TaskSucceeded
from core.models import Task
from core.notify.apprise_channel import AppriseChannel
from core.notify.channel import Channel
from core.notify.delivery import deliver
from core.notify.hooks import HookChannel
from core.notify.report import Outcome, TaskReport
from core.notify.webhook import WebhookChannel

log = logging.getLogger("fetchdeck.notify")

MAX_SENDING = 8  # attempts in flight at once, over all channels
MAX_PENDING = 10_000  # deliveries queued or waiting for a retry; beyond it a new one is dropped (and logged)
MAX_DELAY = 300.0  # seconds: the longest wait between two attempts

TaskLog = Callable[[int, str], None]


class Notifier:
    def __init__(self, config: Config, bus: EventBus, get: Callable[[int], Awaitable[Task]], task_log: TaskLog,
                 node: str) -> None:
        """get: the task as the engine has it now; task_log: a line in a task's log; node: this node's name."""
        self.config = config
        self.bus = bus
        self.get = get
        self.task_log = task_log
        self.node = node
        self._sub: Subscription | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._sending = asyncio.Semaphore(MAX_SENDING)
        self._client: httpx.AsyncClient | None = None
        self._closing = False

    # ---- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._sub = self.bus.subscribe()
        self._consumer = asyncio.create_task(self._consume(), name="fetchdeck-notify")

    async def close(self) -> None:
        """Handle the events already published, give pending deliveries the grace period, cancel the rest."""
        if self._closing:
            return
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.notify.grace
        if self._sub is not None:
            self._sub.close()  # the consumer handles what is queued, then ends
        if self._consumer is not None:
            await asyncio.wait({self._consumer}, timeout=max(0.0, deadline - loop.time()))
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
        pending = set(self._deliveries)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
        for delivery in pending:
            delivery.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def pending(self) -> int:
        """Deliveries not finished yet (sending or waiting for a retry)."""
        return len(self._deliveries)

    # ---- events → deliveries -------------------------------------------------------------------------
    async def _consume(self) -> None:
        while self._sub is not None:
            sub = self._sub
            async for event in sub:
                try:
                    await self._handle(event)
                except Exception:  # one bad event must not end every later delivery
                    log.exception("notify: handling %s failed", event.type)
            if self._closing or not sub.overflowed:
                return
            log.error("notify: fell behind the engine's events; some finished tasks were not reported")
            self._sub = self.bus.subscribe()

    async def _handle(self, event: Event) -> None:
        if event.origin:
            return  # another node ran it: that node delivers
        payload = event.payload
        if isinstance(payload, TaskSucceeded):
            outcome, error = Outcome.SUCCESS, None
        elif isinstance(payload, TaskFailed):
            outcome, error = Outcome.FAILED, payload.error
        else:
            return
        try:
            task = await self.get(payload.task_id)
        except LookupError:
            return  # deleted since
        channels = self.channels(task, outcome)
        if not channels:
            return
        report = TaskReport.of(task, outcome, error or task.error, self.node)
        for channel in channels:
            self._enqueue(task.id, channel, report)

    def channels(self, task: Task, outcome: Outcome) -> list[Channel]:
        """Who hears of `task` ending with `outcome`, under the settings in force now."""
        notify, webhook, hooks = self.config.notify, self.config.webhook, self.config.hooks
        out: list[Channel] = []
        if task.options.notify and outcome.value in notify.on:
            for url in dict.fromkeys([*notify.urls, *task.options.notify_urls]):
                out.append(AppriseChannel(url, retries=notify.retries, timeout=notify.timeout))
        if webhook.url and outcome.value in webhook.on:
            out.append(WebhookChannel(webhook.url, webhook.secret, retries=notify.retries, timeout=notify.timeout,
                                      client=self._http()))
        argv = hooks.on_success if outcome is Outcome.SUCCESS else hooks.on_failure
        if argv:
            when = "on_success" if outcome is Outcome.SUCCESS else "on_failure"
            out.append(HookChannel(argv, timeout=hooks.timeout, retries=hooks.retries, when=when))
        return out

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        return self._client

    def _enqueue(self, task_id: int, channel: Channel, report: TaskReport) -> None:
        if len(self._deliveries) >= MAX_PENDING:
            self.task_log(task_id, f"{channel.label}: not sent: {MAX_PENDING} deliveries are already pending")
            return
        delivery = asyncio.create_task(self._deliver(task_id, channel, report),
                                       name=f"fetchdeck-notify-{task_id}")
        self._deliveries.add(delivery)
        delivery.add_done_callback(self._deliveries.discard)

    def delay(self, failures: int) -> float:
        """Seconds before the attempt after failure number `failures` (1, 2, 4 … × retry_delay)."""
        return float(min(MAX_DELAY, self.config.notify.retry_delay * 2 ** (failures - 1)))

    async def _deliver(self, task_id: int, channel: Channel, report: TaskReport) -> None:
        def task_log(text: str) -> None:
            self.task_log(task_id, text)

        async def send() -> str:
            async with self._sending:
                return await channel.send(report, task_log)

        attempts = channel.retries + 1
        await deliver(send, attempts=attempts, delay=self.delay, task_log=task_log,
                      where=lambda n: f"{channel.label} ({report.status.value}, attempt {n}/{attempts})")

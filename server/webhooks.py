"""SaveAny-Bot webhooks: one POST per terminal state of a task that asked for one.

`poke(task_id)` is called for every start/success/failure/stop event (and by
the cancel route): it works out the state of the task's group, and when that
is terminal and not yet reported, delivers in a background task, so the
engine and the event consumer never wait on a slow receiver. A group that
becomes active again (restart) is reported again when it ends.

Delivery: `Content-Type: application/json`, `User-Agent: SaveAny-Bot/1.0`,
the body as SaveAny-Bot's json.Marshal writes its WebhookPayload (compact, Go's
timestamps; server/saveany_shapes.py), `api.webhook_timeout` (30 s) per
attempt, a retry after each of `api.webhook_retry_delays` on a network error or
a non-2xx answer. Every attempt's outcome goes to the task's log (core/notify/delivery.py's attempts,
the same as the generic [webhook]'s).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx

from core.config import ApiConfig
from core.engine import Engine
from core.models import Task
from core.notify import DeliveryFailed, deliver
from core.notify.webhook import describe_http_error
from server.compat import TERMINAL, group_status, group_tasks
from server.saveany_shapes import go_json, go_time, storage_and_path, type_of

USER_AGENT = "SaveAny-Bot/1.0"


def webhook_payload(leader: Task, tasks: list[Task], status: str) -> dict[str, Any]:
    storage, path = storage_and_path(leader)
    body: dict[str, Any] = {"task_id": str(leader.id), "type": type_of(leader), "status": status,
                            "storage": storage, "path": path}
    if status in ("completed", "failed"):
        body["completed_at"] = go_time(max(t.updated_at for t in tasks))
    error = next((t.error for t in tasks if t.error), None)
    if error:
        body["error"] = error
    return body


def parse_delays(text: str) -> list[float]:
    out = []
    for part in text.split(","):
        with contextlib.suppress(ValueError):
            out.append(max(0.0, float(part)))
    return out


class WebhookNotifier:
    def __init__(self, engine: Engine, config: ApiConfig) -> None:
        self.engine = engine
        self.timeout = config.webhook_timeout
        self.delays = parse_delays(config.webhook_retry_delays)
        self._reported: dict[int, str] = {}  # leader id → terminal status already delivered
        self._deliveries: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    async def poke(self, task_id: int) -> None:
        try:
            task = await self.engine.get(task_id)
        except LookupError:
            return
        leader = task
        if task.options.group is not None:
            try:
                leader = await self.engine.get(task.options.group)
            except LookupError:
                return
        if not leader.options.webhook:
            return
        tasks = await group_tasks(self.engine, leader)
        status = group_status(tasks)
        if status not in TERMINAL:
            self._reported.pop(leader.id, None)
            return
        if self._reported.get(leader.id) == status:
            return
        self._reported[leader.id] = status
        payload = webhook_payload(leader, tasks, status)
        delivery = asyncio.create_task(self._deliver(leader.id, leader.options.webhook, payload),
                                       name=f"fetchdeck-webhook-{leader.id}")
        self._deliveries.add(delivery)
        delivery.add_done_callback(self._deliveries.discard)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, trust_env=False, follow_redirects=False)
        return self._client

    async def _deliver(self, task_id: int, url: str, payload: dict[str, Any]) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        content = go_json(payload).encode("utf-8")
        attempts = len(self.delays) + 1

        async def post() -> str:
            try:
                response = await self._http().post(url, content=content, headers=headers)
            except httpx.HTTPError as exc:
                raise DeliveryFailed(describe_http_error(exc)) from None
            if not 200 <= response.status_code < 300:
                raise DeliveryFailed(f"HTTP {response.status_code}")
            return f"HTTP {response.status_code}"

        def delay(failures: int) -> float:
            return self.delays[min(failures, len(self.delays)) - 1]

        await deliver(post, attempts=attempts, delay=delay, task_log=lambda text: self.engine.task_log(task_id, text),
                      where=lambda n: f"webhook {payload['status']} to {url} (attempt {n}/{attempts})")

    async def close(self) -> None:
        for delivery in list(self._deliveries):
            delivery.cancel()
        for delivery in list(self._deliveries):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await delivery
        if self._client is not None:
            await self._client.aclose()
            self._client = None

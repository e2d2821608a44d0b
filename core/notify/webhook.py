"""The generic signed webhook: the `TaskReport` as JSON, POSTed for every finished task from any API dialect.

Headers: `Content-Type: application/json`, `User-Agent: fetchdeck`, `X-Fetchdeck-Event`
("task.success" / "task.failed") and, with a secret, `X-Fetchdeck-Signature: sha256=HEX`, the
HMAC-SHA256 of the raw body keyed with `[webhook] secret` (a receiver recomputes it over the bytes
it read and compares with hmac.compare_digest). A 2xx answer delivers; any other status or a
network error is a failed attempt (retried); redirects are not followed.

SaveAny-Bot's own per-task webhook (server/webhooks.py) is separate: its body is SaveAny's shape.
"""

from __future__ import annotations

import hashlib
import hmac

import httpx

from core.notify.channel import DeliveryFailed, TaskLog
from core.notify.report import TaskReport

SIGNATURE_HEADER = "X-Fetchdeck-Signature"
EVENT_HEADER = "X-Fetchdeck-Event"
USER_AGENT = "fetchdeck"


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for `body`: "sha256=" and the hex HMAC-SHA256 keyed with `secret`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str) -> bool:
    """True if `header` is the signature of `body` (constant-time comparison)."""
    return hmac.compare_digest(sign(body, secret), header)


def describe_http_error(exc: httpx.HTTPError) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class WebhookChannel:
    """POSTs to `[webhook] url`; the client is shared by every delivery and closed with the notifier."""

    def __init__(self, url: str, secret: str, *, retries: int, timeout: float, client: httpx.AsyncClient) -> None:
        self.url = url
        self.secret = secret
        self.retries = retries
        self.timeout = timeout
        self.client = client
        parsed = httpx.URL(url)  # the task log (served by the API) names the receiver, not its path or query:
        self.label = f"webhook {parsed.scheme}://{parsed.netloc.decode('ascii').rpartition('@')[2]}/…"  # tokens

    def headers(self, report: TaskReport, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, EVENT_HEADER: report.event}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(body, self.secret)
        return headers

    async def send(self, report: TaskReport, log: TaskLog) -> str:
        body = report.body()
        try:
            response = await self.client.post(self.url, content=body, headers=self.headers(report, body),
                                            timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(describe_http_error(exc)) from None
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"HTTP {response.status_code}")
        return f"HTTP {response.status_code}"

"""The retry rule and the deferred CA bundle of core/downloaders/net.py."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core.downloaders.base import NoteClearingSink
from core.downloaders.net import Contact, Retry, RetryPolicy, classify, retrying
from core.errors import ConnectionRefused, ConnectionReset, HttpStatusError, TimedOut, TlsFailure

ROOT = Path(__file__).resolve().parents[2]
FAST = {"backoff_base": 0.02, "backoff_max": 0.02}


class Sink:
    def __init__(self) -> None:
        self.notes: list[str | None] = []
        self.added = 0

    def set_total(self, total: int | None) -> None: ...
    def set_downloaded(self, nbytes: int) -> None: ...
    def set_segments(self, done: int, total: int) -> None: ...

    def add(self, nbytes: int) -> None:
        self.added += nbytes

    def set_note(self, note: str | None) -> None:
        self.notes.append(note)


def failing(exc: Exception, succeed_after: int | None = None):  # type: ignore[no-untyped-def]
    calls = []

    async def op() -> str:
        calls.append(1)
        if succeed_after is not None and len(calls) > succeed_after:
            return "ok"
        raise exc

    return op, calls


@pytest.mark.serial  # alone: times a 0.3 s budget
async def test_unreachable_server_gives_up_after_the_budget() -> None:
    op, calls = failing(ConnectionRefused("connection refused by 127.0.0.1:9"))
    lines: list[str] = []
    retry = Retry(RetryPolicy(retries=1000, **FAST, unreachable_budget=0.3), "probe", log=lines.append)
    started = time.monotonic()
    with pytest.raises(ConnectionRefused):
        await retrying(op, retry)
    took = time.monotonic() - started
    assert 0.2 < took < 1.5, took
    assert 3 < len(calls) < 1000
    assert lines[-1].startswith("probe: connection refused by 127.0.0.1:9; giving up after")


async def test_without_a_budget_every_retry_is_made_and_shown() -> None:
    op, calls = failing(ConnectionRefused("connection refused by 127.0.0.1:9"))
    sink = Sink()
    lines: list[str] = []
    retry = Retry(RetryPolicy(retries=3, **FAST), "probe", log=lines.append, note=sink.set_note)
    with pytest.raises(ConnectionRefused):
        await retrying(op, retry)
    assert len(calls) == 4
    assert [line.split(";")[1].split(" in ")[0] for line in lines] == [" retry 1/3", " retry 2/3", " retry 3/3"]
    assert sink.notes[:3] == [f"retrying in 0.0 s: connection refused by 127.0.0.1:9 ({n}/3)" for n in (1, 2, 3)]
    assert sink.notes[-1] is None  # given up: the note goes


async def test_a_server_that_answered_once_gets_the_patient_policy() -> None:
    op, calls = failing(ConnectionRefused("connection refused by h:1"))
    contact = Contact(since=time.monotonic() - 60, answered=True)
    retry = Retry(RetryPolicy(retries=5, **FAST, unreachable_budget=0.01), "range", log=lambda _: None,
                  contact=contact)
    with pytest.raises(ConnectionRefused):
        await retrying(op, retry)
    assert len(calls) == 6


async def test_an_error_answer_counts_as_contact() -> None:
    contact = Contact()
    retry = Retry(RetryPolicy(retries=1, **FAST, unreachable_budget=0.0), "probe", log=lambda _: None,
                  contact=contact)
    op, calls = failing(HttpStatusError(503, "Service Unavailable"), succeed_after=1)
    assert await retrying(op, retry) == "ok" and contact.answered and len(calls) == 2


async def test_not_retryable_raises_at_once_and_success_clears_the_note() -> None:
    tls = TlsFailure("TLS handshake with h:1 failed: wrong version number")
    op, calls = failing(tls)
    with pytest.raises(TlsFailure):
        await retrying(op, Retry(RetryPolicy(retries=5, **FAST), "probe", log=lambda _: None))
    assert len(calls) == 1
    sink = Sink()
    op, calls = failing(TimedOut("timed out waiting for the server"), succeed_after=2)
    retry = Retry(RetryPolicy(retries=5, **FAST), "probe", log=lambda _: None, note=sink.set_note)
    assert await retrying(op, retry) == "ok"
    assert sink.notes[-1] is None and len(sink.notes) == 3


async def test_final_error_is_classified_so_it_never_looks_like_a_crash() -> None:
    raw = httpx.ReadError("")
    raw.__cause__ = ConnectionResetError(104, "Connection reset by peer")
    op, _ = failing(raw)
    with pytest.raises(ConnectionReset, match="the connection was reset by the server") as caught:
        await retrying(op, Retry(RetryPolicy(retries=0), "probe", log=lambda _: None))
    assert caught.value.__cause__ is raw


async def test_fixed_schedule() -> None:
    op, calls = failing(ValueError("nope"))
    waits: list[float] = []
    retry = Retry(RetryPolicy(delays=(0.01, 0.02)), "webhook", log=lambda _: None, retryable=lambda _: True,
                  final=lambda exc: exc, on_wait=lambda w: waits.append(w.delay))
    with pytest.raises(ValueError):
        await retrying(op, retry)
    assert waits == [0.01, 0.02] and len(calls) == 3


def test_classify_errnos_and_timeouts() -> None:
    assert isinstance(classify(ConnectionRefusedError(111, "Connection refused")), ConnectionRefused)
    assert isinstance(classify(ConnectionResetError(104, "reset")), ConnectionReset)
    assert isinstance(classify(TimeoutError()), TimedOut)
    assert classify(ValueError("bug")) is None  # not a network problem: the engine may call it a crash
    assert classify(PermissionError(13, "Permission denied")) is None


def test_note_clears_when_bytes_flow_again() -> None:
    sink = Sink()
    noted = NoteClearingSink(sink)
    noted.add(10)
    noted.set_note("retrying in 4 s: connection refused by h:1 (3/8)")
    noted.add(-5)  # un-counting dropped bytes is no sign of life
    noted.add(7)
    noted.add(7)
    assert sink.notes == ["retrying in 4 s: connection refused by h:1 (3/8)", None]
    assert sink.added == 19


def test_ca_bundle_is_loaded_before_the_first_https_request(tmp_path: Path) -> None:
    """Importing the network module loads no CAs; an https request loads them into aiohttp's verified context.

    In a fresh interpreter: in this one aiohttp is already imported (by the test file server).
    """
    script = """
import asyncio, ssl, sys
import core.downloaders.net as net
import aiohttp.connector as connector
verified = connector._SSL_CONTEXT_VERIFIED
assert verified.cert_store_stats()["x509_ca"] == 0 and net._PENDING_CAS == [verified], net._PENDING_CAS
assert "set_default_verify_paths" not in ssl.SSLContext.__dict__
async def main():
    clients = net.HttpClients(connect_timeout=2)
    try:
        await clients.get().get("http://127.0.0.1:9/")  # plain http: still nothing loaded
    except Exception:
        pass
    assert net._PENDING_CAS
    try:
        await clients.get().get("https://127.0.0.1:9/")
    except Exception:
        pass
    await clients.aclose()
asyncio.run(main())
expected = ssl.create_default_context().cert_store_stats()["x509_ca"]
assert not net._PENDING_CAS and verified.cert_store_stats()["x509_ca"] == expected, verified.cert_store_stats()
print("ok", expected)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")

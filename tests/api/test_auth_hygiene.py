"""Token hygiene: constant-time compare, never echoed, never logged, and failed attempts cost others nothing."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from pathlib import Path

import httpx
import pytest

import server.auth
from server.auth import token_matches
from server.guards import REDACTED, redact
from tests.api.conftest import ApiFactory
from tests.api.test_cli import start_serve, stop_serve

TOKEN = "tok-7f3a9c1e-very-secret"


def test_token_compare_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = server.auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(server.auth.hmac, "compare_digest", spy)
    assert token_matches(TOKEN, TOKEN)
    assert not token_matches(TOKEN, TOKEN[:-1] + "x")
    assert not token_matches(TOKEN, "\udcff\ud800 odd")  # lone surrogates from a query string: no crash
    assert not token_matches(TOKEN, None)
    assert len(calls) == 3 and all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)


def test_redaction_patterns() -> None:
    from server.guards import install_log_redaction

    install_log_redaction(TOKEN)
    for text in (f"GET /api/events?token={TOKEN}&x=1", f"Authorization: Bearer {TOKEN}", f"X-API-Key: {TOKEN}",
                 f"config token is {TOKEN}", "GET /api/events?lastEventId=3&token=other-secret"):
        clean = redact(text)
        assert TOKEN not in clean and "other-secret" not in clean and REDACTED in clean, clean
    assert redact("GET /api/downloads?page=2") == "GET /api/downloads?page=2"


async def test_token_is_never_echoed_nor_logged(make_api: ApiFactory, caplog: pytest.LogCaptureFixture) -> None:
    api = await make_api(token=TOKEN)
    caplog.set_level(logging.DEBUG)
    wrong = TOKEN[:-4] + "XXXX"
    responses = [
        await api.client.get(f"/api/downloads?token={wrong}"),
        await api.client.get("/api/downloads", headers={"Authorization": f"Bearer {wrong}"}),
        await api.client.get(f"/api/downloads?token={TOKEN}"),
        await api.client.get(f"/api/nope?token={TOKEN}"),
        await api.client.post(f"/api/downloads?token={TOKEN}", json={"tasks": "bad"}),
        await api.client.get("/api/openapi.json"),
        await api.client.get("/api/docs"),
    ]
    for response in responses:
        assert TOKEN not in response.text and wrong not in response.text
        assert TOKEN not in str(response.headers) and wrong not in str(response.headers)
    assert [r.status_code for r in responses[:5]] == [401, 401, 200, 404, 400]
    # Whatever gets logged with a URL or header in it comes out redacted.
    logging.getLogger("fetchdeck.server").warning("request GET /api/events?token=%s failed", TOKEN)
    logging.getLogger("hypercorn.error").warning("Authorization: Bearer %s", TOKEN)
    logging.getLogger("fetchdeck.engine").info("token=%s", wrong)
    assert TOKEN not in caplog.text and wrong not in caplog.text and REDACTED in caplog.text
    await api.handle.stop()
    log_file = api.tmp / "logs" / "server.log"
    assert not log_file.exists() or TOKEN not in log_file.read_text()


async def test_serve_never_logs_the_token(tmp_path: Path) -> None:
    data, downloads = tmp_path / "data", tmp_path / "dl"
    proc, base = await start_serve(data, downloads, "--token", TOKEN)
    try:
        async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=10) as client:
            assert (await client.get(f"/api/downloads?token={TOKEN}")).status_code == 200
            assert (await client.get("/api/downloads?token=nope")).status_code == 401
            assert (await client.get(f"/api/events?token={TOKEN}", timeout=0.5)).status_code == 200
    except httpx.ReadTimeout:
        pass  # the event stream never ends; its headers were enough
    finally:
        code, err = await stop_serve(proc)
    assert code == 0, err
    assert TOKEN not in err
    for log in (data / "logs").glob("*.log"):
        assert TOKEN not in log.read_text()


@pytest.mark.serial  # alone: compares request times
async def test_failed_auth_burst_does_not_slow_others(tmp_path: Path) -> None:
    """No lock-out and no penalty delay: during a burst of wrong tokens, good clients fare no worse than
    during a burst of the same size of valid requests (the server is a subprocess, as in real use)."""
    proc, base = await start_serve(tmp_path / "data", tmp_path / "dl", "--token", TOKEN)
    limits = httpx.Limits(max_connections=150)
    try:
        async with (
            httpx.AsyncClient(base_url=base, trust_env=False, timeout=30, headers={"X-API-Key": TOKEN},
                              limits=httpx.Limits(max_keepalive_connections=0)) as good,  # no idle-close race
            httpx.AsyncClient(base_url=base, trust_env=False, timeout=30, limits=limits,
                              headers={"X-API-Key": TOKEN}) as crowd,
            httpx.AsyncClient(base_url=base, trust_env=False, timeout=30, limits=limits,
                              headers={"X-API-Key": "wrong"}) as attacker,
        ):
            async def timed(client: httpx.AsyncClient, status: int) -> float:
                started = time.perf_counter()
                assert (await client.get("/api/downloads")).status_code == status
                return time.perf_counter() - started

            refused, accepted, before = [], [], []
            for _ in range(30):  # interleaved, so the machine's load weighs on all alike
                refused.append(await timed(attacker, 401))
                accepted.append(await timed(crowd, 200))
                before.append(await timed(good, 200))
            # a wrong token is answered at once: no slower than a right one (a penalty delay is not)
            assert statistics.median(refused) <= 2 * statistics.median(accepted) + 0.02, (refused, accepted)

            async def during(burst_client: httpx.AsyncClient, status: int) -> tuple[list[float], float]:
                started = time.perf_counter()
                burst = asyncio.gather(*(timed(burst_client, status) for _ in range(150)))
                seen = [await timed(good, 200) for _ in range(5)]
                await burst
                return seen, time.perf_counter() - started

            # Three rounds of each, alternating: a penalty or a lock-out shows in every round, a stall of the
            # machine (it happened once in CI: one burst took 2.3x the other) in one only, so the best round counts.
            good_rounds, bad_rounds = [], []
            for _ in range(3):
                good_rounds.append(await during(crowd, 200))
                bad_rounds.append(await during(attacker, 401))
            after = [await timed(good, 200) for _ in range(20)]
    finally:
        code, err = await stop_serve(proc)
    assert code == 0, err
    # A wrong token costs the server no more than a right one, and nobody is locked out or delayed.
    good_burst, bad_burst = min(r[1] for r in good_rounds), min(r[1] for r in bad_rounds)
    assert bad_burst <= 1.5 * good_burst + 0.3, (bad_rounds, good_rounds)
    with_good_crowd = [t for seen, _ in good_rounds for t in seen]
    with_attack = min((seen for seen, _ in bad_rounds), key=max)
    assert max(with_attack) <= max(1.0, 3 * max(with_good_crowd)), (bad_rounds, good_rounds)
    assert statistics.median(after) <= 2 * statistics.median(before) + 0.02, (after, before)

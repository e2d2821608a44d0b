"""API load: N concurrent clients on loopback against `fetchdeck serve` while M downloads run.

    python tests/bench/load_api.py                 # 500 clients, 50 downloads, 30 s
    python tests/bench/load_api.py --minutes 10    # the long run: RSS must stay flat

Each client loops over a realistic mix (list a page, get one task, stats via
the active list, and now and then create + delete a task) and records every
request's latency. Reports requests, errors, p50/p95/p99/max latency, and
the server's RSS at the start, middle and end. The downloads are throttled
so they run for the whole test; the file server they read runs in its own
process, so it does not share the load generator's CPU. At the end it checks
that the downloads advanced as the throttle allows. Exit code 1 on any error,
on a failed download, or on downloads far behind their throttle.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.crashloop import SoakPlan, serve_process
from tests.support.fileserver import FileServer, random_bytes

JSON = {"Content-Type": "application/json"}
Latencies = collections.defaultdict[str, list[float]]
FILE_SIZE = 64 << 20
CONNECTIONS = 2


def serve_files(pipe: multiprocessing.connection.Connection, downloads: int, per_connection: float) -> None:
    """The downloads' source, in a child process: sends the URLs, serves until the pipe closes."""
    with FileServer() as files:
        urls = []
        for i in range(downloads):
            path = f"/load/{i}.bin"
            urls.append(files.add(path, random_bytes(FILE_SIZE, seed=i)))
            files.faults.throttle(path, per_connection)
        pipe.send(urls)
        with contextlib.suppress(EOFError):
            pipe.recv()


async def timed(session: aiohttp.ClientSession, kind: str, method: str, url: str, latencies: Latencies,
                errors: list[str], body: object = None) -> bytes | None:
    """One request; its latency goes under `kind`. Returns the body of a 200, else None."""
    started = time.perf_counter()
    try:
        async with session.request(method, url, json=body, headers=JSON if body else None) as response:
            payload = await response.read()
            if response.status != 200:
                errors.append(f"{method} {url}: {response.status} {payload[:200]!r}")
                return None
            return payload
    except (aiohttp.ClientError, TimeoutError) as exc:
        errors.append(f"{kind}: {type(exc).__name__}: {exc}")
        return None
    finally:
        latencies[kind].append(time.perf_counter() - started)


async def client_loop(session: aiohttp.ClientSession, base: str, ids: list[int], until: float, rng: random.Random,
                      latencies: Latencies, errors: list[str]) -> None:
    while time.monotonic() < until:
        roll = rng.random()
        if roll < 0.45:
            url = f"{base}/api/downloads?current={rng.randint(1, 3)}&pageSize=20"
            await timed(session, "list", "GET", url, latencies, errors)
        elif roll < 0.85:
            await timed(session, "get", "GET", f"{base}/api/downloads/{rng.choice(ids)}", latencies, errors)
        elif roll < 0.97:
            await timed(session, "active", "GET", f"{base}/api/downloads/active", latencies, errors)
        else:
            body = {"tasks": [{"type": "direct", "url": "http://example.invalid/x.bin"}], "startDownload": False}
            created = await timed(session, "create", "POST", f"{base}/api/downloads", latencies, errors, body)
            if created is not None:
                new_id = json.loads(created)["data"][0]["id"]
                await timed(session, "delete", "DELETE", f"{base}/api/downloads/{new_id}", latencies, errors)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000 if ordered else 0.0


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(pct(values, 50), 1), "p95_ms": round(pct(values, 95), 1),
            "p99_ms": round(pct(values, 99), 1), "max_ms": round(max(values, default=0) * 1000, 1),
            "mean_ms": round(statistics.fmean(values) * 1000, 1) if values else 0.0}


async def run(clients: int, downloads: int, seconds: float, workdir: Path) -> dict[str, object]:
    plan = SoakPlan(max_concurrent=downloads, connections=CONNECTIONS, read_timeout=30)
    # Slow enough that every download lasts the whole run (and a minute more).
    per_connection = FILE_SIZE / CONNECTIONS / (seconds + 60)
    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    source = multiprocessing.get_context("spawn").Process(target=serve_files, args=(theirs, downloads, per_connection))
    source.start()
    try:
        urls: list[str] = ours.recv()
        serve = serve_process(workdir / "data", workdir / "downloads", plan)
        base = serve.start().url
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(limit=clients + 10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            async with session.post(f"{base}/api/downloads", headers=JSON, json={
                "tasks": [{"type": "direct", "url": u} for u in urls], "startDownload": True}) as created:
                ids = [t["id"] for t in (await created.json())["data"]]
            await asyncio.sleep(2)  # downloads under way
            rss = {"start_kib": serve.rss_kib()}
            latencies: Latencies = collections.defaultdict(list)
            errors: list[str] = []
            started = time.monotonic()
            until = started + seconds
            rng = random.Random(1)

            async def sample_rss() -> None:
                await asyncio.sleep(seconds / 2)
                rss["middle_kib"] = serve.rss_kib()

            sampler = asyncio.create_task(sample_rss())
            await asyncio.gather(*(client_loop(session, base, ids, until, random.Random(rng.random()), latencies,
                                               errors) for _ in range(clients)))
            await sampler
            elapsed = time.monotonic() - started
            rss["end_kib"] = serve.rss_kib()
            async with session.get(f"{base}/api/downloads", params={"pageSize": "1000"}) as listed:
                tasks = (await listed.json())["data"]["list"]
        code = serve.stop()
    finally:
        ours.close()
        source.join(10)
        source.kill()
    statuses = collections.Counter(t["status"] for t in tasks)
    failures = [f"{t['id']}: {t.get('error')}" for t in tasks if t["status"] == "failed"]
    downloaded = sum(t["downloaded"] for t in tasks)
    expected = downloads * CONNECTIONS * per_connection * (seconds + 2)  # the throttle's allowance
    every = [value for values in latencies.values() for value in values]
    return {
        "clients": clients, "downloads": downloads, "seconds": round(elapsed, 1), "requests": len(every),
        "requests_per_s": round(len(every) / elapsed), "errors": len(errors), "error_samples": errors[:5],
        **summary(every),
        "by_request": {kind: {"n": len(values), **summary(values)} for kind, values in sorted(latencies.items())},
        "rss": rss,
        "download_statuses": dict(statuses), "download_failures": failures[:5],
        "downloaded_mb": round(downloaded / 1e6, 1), "throttle_allows_mb": round(expected / 1e6, 1),
        "serve_exit": code,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--downloads", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--minutes", type=float, help="run this long instead (e.g. 10)")
    args = parser.parse_args()
    seconds = args.minutes * 60 if args.minutes else args.seconds
    with tempfile.TemporaryDirectory(prefix="fetchdeck-load-") as tmp:
        result = asyncio.run(run(args.clients, args.downloads, seconds, Path(tmp)))
    print(json.dumps(result, indent=2))
    behind = result["downloaded_mb"] < 0.8 * result["throttle_allows_mb"]  # type: ignore[operator]
    return 1 if result["errors"] or result["serve_exit"] or result["download_failures"] or behind else 0


if __name__ == "__main__":
    sys.exit(main())

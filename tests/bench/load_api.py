"""API load: N concurrent clients on loopback against `fetchdeck serve` while M downloads run.

    python tests/bench/load_api.py                 # 500 clients, 50 downloads, 30 s
    python tests/bench/load_api.py --minutes 10    # the long run: RSS must stay flat

Each client loops over a realistic mix (list a page, get one task, stats via
the active list, and now and then create + delete a task) and records every
request's latency. Reports requests, errors, p50/p95/p99/max latency, and
the server's RSS at the start, middle and end. The downloads are throttled
so they run for the whole test. Exit code 1 on any error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.crashloop import ServeProcess, SoakPlan
from tests.support.fileserver import FileServer, random_bytes

JSON = {"Content-Type": "application/json"}


async def client_loop(session: aiohttp.ClientSession, base: str, ids: list[int], until: float, rng: random.Random,
                      latencies: list[float], errors: list[str]) -> None:
    while time.monotonic() < until:
        roll = rng.random()
        started = time.perf_counter()
        try:
            if roll < 0.45:
                url, method, body = f"{base}/api/downloads?current={rng.randint(1, 3)}&pageSize=20", "GET", None
            elif roll < 0.85:
                url, method, body = f"{base}/api/downloads/{rng.choice(ids)}", "GET", None
            elif roll < 0.97:
                url, method, body = f"{base}/api/downloads/active", "GET", None
            else:
                url, method = f"{base}/api/downloads", "POST"
                body = {"tasks": [{"type": "direct", "url": "http://example.invalid/x.bin"}], "startDownload": False}
            async with session.request(method, url, json=body, headers=JSON if body else None) as response:
                payload = await response.read()
                if response.status != 200:
                    errors.append(f"{method} {url}: {response.status} {payload[:200]!r}")
                elif method == "POST":
                    new_id = json.loads(payload)["data"][0]["id"]
                    async with session.delete(f"{base}/api/downloads/{new_id}") as deleted:
                        await deleted.read()
                        if deleted.status != 200:
                            errors.append(f"DELETE {new_id}: {deleted.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        latencies.append(time.perf_counter() - started)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000 if ordered else 0.0


async def run(clients: int, downloads: int, seconds: float, workdir: Path) -> dict[str, object]:
    plan = SoakPlan(max_concurrent=downloads, connections=2, read_timeout=30)
    with FileServer() as files:
        urls = []
        for i in range(downloads):
            path = f"/load/{i}.bin"
            urls.append(files.add(path, random_bytes(64 << 20, seed=i)))
            files.faults.throttle(path, 200_000)  # 50 x 2 x 200 kB/s: downloads last the whole run
        serve = ServeProcess(workdir / "data", workdir / "downloads", plan)
        base = serve.start()
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(limit=clients + 10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            async with session.post(f"{base}/api/downloads", headers=JSON, json={
                "tasks": [{"type": "direct", "url": u} for u in urls], "startDownload": True}) as created:
                ids = [t["id"] for t in (await created.json())["data"]]
            await asyncio.sleep(2)  # downloads under way
            rss = {"start_kib": serve.rss_kib()}
            latencies: list[float] = []
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
    downloading = sum(1 for t in tasks if t["status"] == "downloading")
    return {
        "clients": clients, "downloads": downloads, "seconds": round(elapsed, 1), "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed), "errors": len(errors), "error_samples": errors[:5],
        "p50_ms": round(pct(latencies, 50), 1), "p95_ms": round(pct(latencies, 95), 1),
        "p99_ms": round(pct(latencies, 99), 1), "max_ms": round(max(latencies) * 1000, 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1), "rss": rss,
        "downloads_running_at_end": downloading,
        "downloaded_mb": round(sum(t["downloaded"] for t in tasks) / 1e6, 1), "serve_exit": code,
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
    return 1 if result["errors"] or result["serve_exit"] else 0


if __name__ == "__main__":
    sys.exit(main())

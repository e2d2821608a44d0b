"""API benchmark (issue 5): batch create, list latency at 100,000 tasks, SSE fan-out delay.

    /tmp/fdvenv/bin/python tests/bench/bench_api.py            # prints a JSON report
    pytest -p no:cacheprovider tests/bench/bench_api.py -s     # same, and asserts the targets

Targets: 10,000-task batch < 2 s; GET /api/downloads p99 < 25 ms with 100,000
tasks stored; SSE delay p99 < 100 ms to 200 subscribers. The server runs
in this process exactly as `fetchdeck serve` runs it (Hypercorn in the
loop); list latency is measured with a minimal keep-alive HTTP/1.1 client in
this loop (the server's time, not a client library's); the 200 SSE
subscribers run in a separate process so their parsing does not load the
server's loop.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.config import Config  # noqa: E402
from core.engine import Engine  # noqa: E402
from core.events import TaskChanged  # noqa: E402
from server.app import create_app  # noqa: E402
from server.runner import start_server  # noqa: E402

BATCH = 10_000
STORED = 100_000
LIST_REQUESTS = 1000
SUBSCRIBERS = 200
EVENTS = 200
EVENT_INTERVAL = 0.02
TARGETS = {"batch_10k_s": 2.0, "list_p99_ms": 25.0, "sse_p99_ms": 100.0}

# Runs in a child process: SUBSCRIBERS raw SSE connections; prints each delay (s) it measured.
SUBSCRIBER_SCRIPT = textwrap.dedent('''
    import asyncio, json, sys, time
    port, subs, expected = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    delays = []
    connected = 0

    async def one():
        global connected
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/events HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n")
        await reader.readuntil(b"\\r\\n\\r\\n")
        buffer, seen, ready = b"", 0, False
        while seen < expected:
            size = int((await reader.readline()).strip() or b"0", 16)
            if size == 0:
                break
            buffer += (await reader.readexactly(size + 2))[:-2]
            now = time.monotonic()
            *blocks, buffer = buffer.split(b"\\n\\n")
            for block in blocks:
                if not ready and b"event: ready" in block:
                    ready = True
                    connected += 1
                    if connected == subs:
                        print("READY", flush=True)
                if b"event: download-update" in block:
                    seq = int(block.split(b"id: ", 1)[1].split(b"\\n", 1)[0])
                    delays.append((seq, now))  # the parent knows when it published seq
                    seen += 1
        writer.close()

    async def main():
        await asyncio.gather(*[one() for _ in range(subs)])
        print(json.dumps(delays), flush=True)

    asyncio.run(main())
''')


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def bench_batch(client: httpx.AsyncClient) -> dict[str, float]:
    tasks = [{"type": "direct", "url": f"http://example.invalid/files/{i}.bin", "name": f"file {i}"}
             for i in range(BATCH)]
    started = time.perf_counter()
    response = await client.post("/api/downloads", json={"tasks": tasks, "startDownload": False})
    elapsed = time.perf_counter() - started
    body = response.json()
    assert response.status_code == 200 and len(body["data"]) == BATCH, response.text[:300]
    return {"batch_10k_s": round(elapsed, 3), "batch_10k_response_mb": round(len(response.content) / 1e6, 2)}


class RawHttp:
    """A minimal keep-alive HTTP/1.1 client: measures the server, not a client library's overhead."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.sent = 0

    async def reconnect_if_due(self) -> None:
        """Hypercorn closes a keep-alive connection after 1000 requests: open a fresh one before that."""
        if self.writer is None or self.sent >= 900:
            self.close()
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.sent = 0

    async def get(self, target: str) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.sent += 1
        self.writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def bench_list(client: httpx.AsyncClient, port: int) -> dict[str, float]:
    while (await client.get("/api/downloads", params={"pageSize": 1})).json()["data"]["total"] < STORED:
        await bench_batch(client)
    raw = RawHttp(port)
    results: dict[str, float] = {}
    targets = (("list", "/api/downloads"), ("list_page500", "/api/downloads?current=500"),
               ("list_filter", "/api/downloads?filter=list"))
    for label, target in targets:
        latencies = []
        for _ in range(20):  # warm-up
            await raw.reconnect_if_due()
            await raw.get(target)
        for _ in range(LIST_REQUESTS):
            await raw.reconnect_if_due()
            started = time.perf_counter()
            status, body = await raw.get(target)
            latencies.append((time.perf_counter() - started) * 1000)
            assert status == 200, body[:200]
        assert json.loads(body)["data"]["total"] >= STORED or label == "list_filter"
        results[f"{label}_p50_ms"] = round(statistics.median(latencies), 2)
        results[f"{label}_p99_ms"] = round(percentile(latencies, 99), 2)
    raw.close()
    return results


async def bench_sse(engine: Engine, port: int) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SUBSCRIBER_SCRIPT, str(port), str(SUBSCRIBERS), str(EVENTS),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert line.strip() == b"READY", line
    sent: dict[int, float] = {}
    for _ in range(EVENTS):
        at = time.monotonic()  # CLOCK_MONOTONIC: the subscriber process reads the same clock
        sent[engine.bus.publish(TaskChanged(1)).seq] = at
        await asyncio.sleep(EVENT_INTERVAL)
    received = json.loads(await asyncio.wait_for(proc.stdout.read(), 120))
    delays = [(at - sent[seq]) * 1000 for seq, at in received]
    await proc.wait()
    assert len(delays) == SUBSCRIBERS * EVENTS, len(delays)
    return {
        "sse_subscribers": SUBSCRIBERS,
        "sse_events": EVENTS,
        "sse_p50_ms": round(statistics.median(delays), 2),
        "sse_p99_ms": round(percentile(delays, 99), 2),
        "sse_max_ms": round(max(delays), 2),
    }


async def run_benchmark() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fetchdeck-bench-") as tmp:
        root = Path(tmp)
        config = Config()
        config.download.dir = str(root / "downloads")
        engine = Engine(root / "fetchdeck.db", config)
        await engine.open()
        engine.scheduler.max_concurrent = 0  # example.invalid tasks must never start
        handle = await start_server(create_app(engine, config), "127.0.0.1", 0, error_log=root / "server.log")
        report: dict[str, Any] = {}
        try:
            async with httpx.AsyncClient(base_url=handle.url, timeout=120, trust_env=False) as client:
                report.update(await bench_batch(client))
                print(report, file=sys.stderr)
                report.update(await bench_list(client, handle.port))
                print(report, file=sys.stderr)
            report.update(await bench_sse(engine, handle.port))
        finally:
            await handle.stop()
            await engine.close()
    report["targets"] = TARGETS
    report["python"] = sys.version.split()[0]
    return report


def test_api_benchmark() -> None:
    report = asyncio.run(run_benchmark())
    print(json.dumps(report, indent=2))
    for key, limit in TARGETS.items():
        assert report[key] < limit, (key, report[key], limit)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run_benchmark()), indent=2))

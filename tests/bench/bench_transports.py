"""httpx's own transport vs httpx-aiohttp for the same ranged download.

Downloads a file over N Range requests in parallel with each transport (bodies
counted and discarded, so only the HTTP stack is measured), and prints wall
time and CPU seconds per GB. Run against the bench nginx (../shared/bench):

    python tests/bench/bench_transports.py http://127.0.0.1:8080/big.bin --connections 8 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import time

import httpx
from httpx_aiohttp import AiohttpTransport


async def ranged_download(client: httpx.AsyncClient, url: str, connections: int) -> int:
    head = await client.get(url, headers={"Range": "bytes=0-0"})
    size = int(head.headers["content-range"].rsplit("/", 1)[1])
    step = size // connections

    async def one(start: int, end: int) -> int:
        got = 0
        async with client.stream("GET", url, headers={"Range": f"bytes={start}-{end}"}) as resp:
            async for chunk in resp.aiter_raw():
                got += len(chunk)
        return got

    parts = [(i * step, size - 1 if i == connections - 1 else (i + 1) * step - 1) for i in range(connections)]
    return sum(await asyncio.gather(*(one(a, b) for a, b in parts)))


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def measure(name: str, url: str, connections: int, runs: int) -> None:
    walls, cpus = [], []
    for _ in range(runs):
        transport = AiohttpTransport() if name == "httpx-aiohttp" else httpx.AsyncHTTPTransport()
        async with httpx.AsyncClient(transport=transport, timeout=60) as client:
            c0, t0 = cpu(), time.perf_counter()
            got = await ranged_download(client, url, connections)
            walls.append(time.perf_counter() - t0)
            cpus.append((cpu() - c0) / (got / 1e9))
    print(f"{name:14s} wall med {statistics.median(walls):.2f}s  CPU-s/GB med {statistics.median(cpus):.2f}  "
          f"({got / 1e6:.0f} MB, {connections} connections, {runs} runs)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for name in ("httpx", "httpx-aiohttp"):
        asyncio.run(measure(name, args.url, args.connections, args.runs))


if __name__ == "__main__":
    main()

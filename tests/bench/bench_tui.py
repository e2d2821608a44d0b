#!/usr/bin/env python3
"""TUI benchmark: 10,000 tasks, 500 of them downloading and updating, for 30 s.

    python tests/bench/bench_tui.py [--duration 30] [--size 160x45] [--tasks 10000] [--active 500]

The app runs for real in a pseudo-terminal (a child process whose Textual
driver writes to the pty; this process drains it), with a real engine and
its SQLite store holding the 10,000 tasks. Downloads are simulated: the
engine's event bus gets a progress event for each of the 500 active tasks
4 times a second (what the engine's coalescing ticker emits at most), plus a
task finishing and another starting every second, so the measurement is the
TUI's cost, not the network's. Reported:

- CPU: the child process's user+system time over the window / wall time
  (everything in the process: engine bus, TUI, rendering to the pty).
- apply: time to apply one frame of changes to the table (p50/p99/max).
- RSS: resident memory at the end and peak (VmHWM).

Targets (issue 7): CPU < 35 % of one core, p99 apply < 30 ms, RSS < 250 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pty
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------- child
async def populate(database: Path, config: object, tasks: int, active: int) -> list[int]:
    from core.engine import Engine
    from core.models import TaskSpec, TaskStatus
    from core.store import TaskPatch

    engine = Engine(database, config, run_queued=False)  # type: ignore[arg-type]
    await engine.open()
    try:
        ids: list[int] = []
        for start in range(0, tasks, 2000):
            specs = [TaskSpec(url=f"https://files.example.org/pub/archive-{i:05d}.tar.gz", name=None)
                     for i in range(start, min(tasks, start + 2000))]
            ids += [t.id for t in await engine.create(specs, start=False)]
        size = 4 * 1024**3
        changes = []
        for n, task_id in enumerate(ids):
            if n < active:
                changes.append((task_id, TaskPatch(status=TaskStatus.DOWNLOADING, total=size, downloaded=n * 1000)))
            elif n % 3 == 0:
                changes.append((task_id, TaskPatch(status=TaskStatus.SUCCESS, total=size // 7, downloaded=size // 7)))
        await engine.repo.update_many(changes)
        return ids[:active]
    finally:
        await engine.close()


async def child(args: argparse.Namespace) -> None:
    from core.config import Config, DownloadConfig
    from core.engine import Engine
    from core.events import TaskProgress, TaskStarted, TaskSucceeded
    from core.models import TaskStatus
    from core.store import TaskPatch
    from tui.app import FetchdeckApp
    from tui.client import LocalClient

    work = Path(args.workdir)
    config = Config(download=DownloadConfig(dir=str(work / "downloads")))
    database = work / "bench.db"
    active_ids = await populate(database, config, args.tasks, args.active)
    engine = Engine(database, config, run_queued=False)
    await engine.open()
    app = FetchdeckApp(LocalClient(engine), config)
    result: dict[str, object] = {}

    launched = time.perf_counter()

    async def drive() -> None:
        while not (app.sync.loaded.is_set() and app.main_screen and app.main_screen.table.row_count >= args.tasks):
            await asyncio.sleep(0.05)
        result["startup_to_10k_rows_s"] = round(time.perf_counter() - launched, 2)
        await asyncio.sleep(1.0)  # let the first full build settle; it is not part of the window
        screen = app.main_screen
        assert screen is not None
        screen.frame_stats.durations.clear()
        live = {task_id: (await engine.get(task_id)) for task_id in active_ids}
        queue = [t for t in live]
        started_wall, started_cpu = time.perf_counter(), time.process_time()
        tick, rss_peak = 0, 0
        while time.perf_counter() - started_wall < args.duration:
            await asyncio.sleep(0.25)
            tick += 1
            for task in live.values():
                task.downloaded = min((task.total or 0), task.downloaded + 300_000 + (task.id % 97) * 1000)
                task.speed = 1_200_000.0 + (task.id % 89) * 1000 + (tick % 4) * 5000
                task.eta = ((task.total or 0) - task.downloaded) / task.speed
                engine.bus.publish(TaskProgress.of(task))
            if tick % 4 == 0:  # once a second: one task finishes, the next one starts
                done_id = queue.pop(0)
                await engine.repo.update(done_id, TaskPatch(status=TaskStatus.SUCCESS))
                engine.bus.publish(TaskSucceeded(done_id))
                queue.append(done_id)
                await engine.repo.update(done_id, TaskPatch(status=TaskStatus.DOWNLOADING))
                engine.bus.publish(TaskStarted(done_id))
                rss_peak = max(rss_peak, _rss_kb())
        wall = time.perf_counter() - started_wall
        cpu = time.process_time() - started_cpu
        durations = sorted(screen.frame_stats.durations)
        result.update(
            wall_s=round(wall, 2), cpu_s=round(cpu, 2), cpu_percent=round(100 * cpu / wall, 1),
            frames=len(durations), apply_p50_ms=_pct(durations, 0.50), apply_p99_ms=_pct(durations, 0.99),
            apply_max_ms=round(1000 * durations[-1], 2) if durations else None,
            rss_mb=round(_rss_kb() / 1024, 1), rss_peak_mb=round(max(rss_peak, _rss_kb("VmHWM")) / 1024, 1),
            rows=screen.table.row_count, size=args.size, tasks=args.tasks, active=args.active,
        )
        app.exit()

    driver = asyncio.create_task(drive())
    try:
        await app.run_async()
    finally:
        driver.cancel()
        await engine.close()
    Path(args.result).write_text(json.dumps(result))


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(1000 * values[min(len(values) - 1, int(q * len(values)))], 2)


def _rss_kb(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- parent
def run_in_pty(args: argparse.Namespace) -> dict[str, object]:
    import fcntl
    import termios

    cols, rows = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="fetchdeck-bench-tui-") as work:
        result_file = Path(work) / "result.json"
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor", "PYTHONPATH": str(ROOT),
               "TEXTUAL_FPS": os.environ.get("TEXTUAL_FPS", "60")}
        command = [sys.executable, __file__, "--child", "--workdir", work, "--result", str(result_file),
                   "--duration", str(args.duration), "--tasks", str(args.tasks), "--active", str(args.active),
                   "--size", args.size]
        proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT,
                                start_new_session=True)
        os.close(slave)
        received = [0]

        def drain() -> None:
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                received[0] += len(chunk)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            proc.wait(timeout=args.duration + 180)
        finally:
            if proc.poll() is None:
                proc.kill()
            os.close(master)
        if not result_file.exists():
            raise SystemExit(f"the benchmark child failed (exit {proc.returncode})")
        result: dict[str, object] = json.loads(result_file.read_text())
        result["terminal_bytes_per_s"] = round(received[0] / max(1.0, float(str(result.get("wall_s", 1)))))
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--active", type=int, default=500)
    parser.add_argument("--size", default="160x45", help="terminal COLSxROWS")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        profile = os.environ.get("BENCH_TUI_PROFILE")
        if profile:  # BENCH_TUI_PROFILE=/tmp/tui.prof: where the child's time goes
            import cProfile

            cProfile.runctx("asyncio.run(child(args))", globals(), {"args": args, "child": child}, profile)
        else:
            asyncio.run(child(args))
        return
    result = run_in_pty(args)
    print(json.dumps(result, indent=2))
    ok = (float(str(result["cpu_percent"])) < 35 and float(str(result["apply_p99_ms"])) < 30
          and float(str(result["rss_peak_mb"])) < 250)
    print(f"targets (CPU < 35 %, p99 apply < 30 ms, RSS < 250 MB): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()

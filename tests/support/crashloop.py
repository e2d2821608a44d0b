"""Crash-loop soak: `fetchdeck serve` under fault injection, SIGKILLed at random moments and restarted.

Used by tests/e2e/test_crash_loop.py (reduced: ~40 tasks, 3 kills) and
tests/bench/soak.py (full: 300 tasks, 10 kills). Everything is on 127.0.0.1.

    with FileServer() as files:
        report = run_soak(SoakPlan(tasks=40, kills=3), files, tmp_path)
    assert not report.problems, report.problems

The plan mixes direct files of several sizes and HLS streams (synthetic: the
segments are random bytes and the task asks for a `.ts` output, so the
result is their plain concatenation and can be compared byte for byte).
Faults, chosen per file from a seed: 5xx bursts, 429 with Retry-After,
connection resets mid-body, truncated bodies, stalls longer than the read
timeout, one file that changes (new ETag) while it downloads, and one URL
that is simply missing (its task must fail, saying 404).

At the end every task must be `success` with a byte-identical file and no
`.part`, `.part.json` or `.parts` beside it (or `failed` for the 404, and
only it), no task lost or duplicated, no stray file in the download folder,
and `PRAGMA integrity_check` must say ok.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.fileserver import FileServer, random_bytes
from tests.support.fleet import NodeProcess

FOLDER = "soak"
TEMP_SUFFIXES = (".part", ".part.json", ".parts", ".part.json.tmp")


@dataclass(frozen=True)
class SoakPlan:
    tasks: int = 40
    kills: int = 3
    seed: int = 8
    direct_sizes: tuple[int, ...] = (20_000, 400_000, 2_000_000, 6_000_000)
    hls_share: float = 0.3  # fraction of tasks that are HLS
    hls_segments: tuple[int, int] = (6, 16)
    hls_segment_bytes: tuple[int, int] = (10_000, 80_000)
    throttle: float = 1_500_000  # bytes/s per connection on direct files, so kills land mid-download
    read_timeout: float = 1.5
    stall_seconds: float = 4.0  # > read_timeout: the connection must be given up on
    kill_after: tuple[float, float] = (1.0, 3.5)  # seconds of uptime before each SIGKILL
    max_concurrent: int = 8
    connections: int = 4
    finish_timeout: float = 60.0  # after the last restart, for every task to end


@dataclass
class Source:
    name: str
    kind: str  # "direct" | "m3u8"
    url: str
    expected: bytes
    paths: list[str]
    faults: list[str] = field(default_factory=list)
    expect_error: str | None = None  # this task must fail, with this in its error


@dataclass
class SoakReport:
    tasks: int = 0
    kills: int = 0
    restarts: int = 0
    seconds: float = 0.0
    success: int = 0
    failed: int = 0
    bytes_checked: int = 0
    faults_set: int = 0
    recovered: int = 0  # tasks found `downloading` at a restart (interrupted by a kill)
    fault_kinds: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    integrity: str = ""

    def summary(self) -> str:
        return (f"{self.tasks} tasks, {self.kills} SIGKILLs, {self.restarts} restarts in {self.seconds:.1f}s: "
                f"{self.success} success, {self.failed} failed (expected), {self.bytes_checked / 1e6:.1f} MB "
                f"compared byte for byte; {self.recovered} interrupted downloads resumed; "
                f"{self.faults_set} faults {self.fault_kinds}; integrity_check "
                f"{self.integrity!r}; {len(self.problems)} problem(s)")


# ---- the sources and their faults ------------------------------------------------


def _add_faults(files: FileServer, path: str, size: int, rng: random.Random, plan: SoakPlan) -> list[str]:
    kinds: list[str] = []
    for _ in range(rng.choice((0, 1, 1, 2))):
        kind = rng.choice(("5xx", "429", "reset", "truncate", "stall"))
        cut = rng.randrange(1, max(2, size))
        if kind == "5xx":
            files.faults.fail_status(path, status=rng.choice((500, 502, 503)), times=rng.randint(1, 3))
        elif kind == "429":
            files.faults.fail_status(path, status=429, times=1, retry_after=1)
        elif kind == "reset":
            files.faults.reset_after(path, nbytes=cut, times=1)
        elif kind == "truncate":
            files.faults.truncate(path, nbytes=cut, times=1)
        else:
            files.faults.stall(path, after_bytes=cut, seconds=plan.stall_seconds, times=1)
        kinds.append(kind)
    return kinds


def make_sources(files: FileServer, plan: SoakPlan) -> list[Source]:
    rng = random.Random(plan.seed)
    sources: list[Source] = []
    n_hls = round(plan.tasks * plan.hls_share)
    for i in range(plan.tasks):
        if i == 0:  # a URL that does not exist: the one task that must fail, for a true reason
            path = "/soak/missing.bin"
            sources.append(Source("missing.bin", "direct", files.url(path), b"", [path], expect_error="404"))
            continue
        if i == 1:  # a file that changes (new content, same size, new ETag) while it downloads
            path = "/soak/changing.bin"
            data = random_bytes(3_000_000, seed=plan.seed * 1000 + i)
            url = files.add(path, data)
            files.faults.throttle(path, 150_000)
            sources.append(Source("changing.bin", "direct", url, data, [path], ["changes"]))
            continue
        if i < 2 + n_hls:
            count = rng.randint(*plan.hls_segments)
            lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0",
                     "#EXT-X-PLAYLIST-TYPE:VOD"]
            chunks: list[bytes] = []
            paths: list[str] = []
            kinds: list[str] = []
            for s in range(count):
                seg = random_bytes(rng.randint(*plan.hls_segment_bytes), seed=plan.seed * 100_000 + i * 100 + s)
                seg_path = f"/soak/h{i:03d}/seg{s:03d}.ts"
                files.add(seg_path, seg, content_type="video/mp2t")
                if rng.random() < 0.25:
                    kinds += _add_faults(files, seg_path, len(seg), rng, plan)
                chunks.append(seg)
                paths.append(seg_path)
                lines += ["#EXTINF:2.0,", f"seg{s:03d}.ts"]
            lines.append("#EXT-X-ENDLIST")
            playlist = f"/soak/h{i:03d}/index.m3u8"
            url = files.add(playlist, ("\n".join(lines) + "\n").encode(),
                            content_type="application/vnd.apple.mpegurl")
            sources.append(Source(f"h{i:03d}.ts", "m3u8", url, b"".join(chunks), [playlist, *paths], kinds))
            continue
        size = plan.direct_sizes[i % len(plan.direct_sizes)] + rng.randrange(0, 4096)
        data = random_bytes(size, seed=plan.seed * 1000 + i)
        path = f"/soak/d{i:03d}.bin"
        url = files.add(path, data)
        if size > 100_000:
            files.faults.throttle(path, plan.throttle)
        sources.append(Source(f"d{i:03d}.bin", "direct", url, data, [path],
                              _add_faults(files, path, size, rng, plan)))
    return sources


# ---- the server process ----------------------------------------------------------------


def serve_process(data_dir: Path, download_dir: Path, plan: SoakPlan) -> NodeProcess:
    """`fetchdeck serve --port 0` on its own SQLite store in `data_dir`, with the plan's download settings."""
    return NodeProcess(data_dir.name, data_dir.parent, store_url=None, download_dir=str(download_dir), env={
        "FETCHDECK_DOWNLOAD_READ_TIMEOUT": str(plan.read_timeout),
        "FETCHDECK_DOWNLOAD_MAX_CONCURRENT": str(plan.max_concurrent),
        "FETCHDECK_DOWNLOAD_CONNECTIONS": str(plan.connections),
        "FETCHDECK_DOWNLOAD_RETRIES": "10",
    })


# ---- the run ------------------------------------------------------------------------------


def _tasks(client: httpx.Client) -> list[dict[str, Any]]:
    body = client.get("/api/downloads", params={"pageSize": 10_000}).json()
    assert body["success"], body
    return body["data"]["list"]  # type: ignore[no-any-return]


def _wait_finished(client: httpx.Client, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        tasks = _tasks(client)
        if all(t["status"] in ("success", "failed") for t in tasks):
            return tasks
        if time.monotonic() > deadline:
            return tasks
        time.sleep(0.2)


def run_soak(plan: SoakPlan, files: FileServer, workdir: Path, log: Any = None) -> SoakReport:
    """Run the whole crash loop; the report's `problems` lists every broken guarantee."""
    say = log or (lambda _text: None)
    started = time.monotonic()
    rng = random.Random(plan.seed + 1)
    report = SoakReport(tasks=plan.tasks)
    sources = make_sources(files, plan)
    for source in sources:
        for kind in source.faults:
            report.fault_kinds[kind] = report.fault_kinds.get(kind, 0) + 1
            report.faults_set += 1
    data_dir, downloads = workdir / "data", workdir / "downloads"
    serve = serve_process(data_dir, downloads, plan)
    base = serve.start().url
    headers = {"Content-Type": "application/json"}
    client = httpx.Client(base_url=base, timeout=30, trust_env=False, headers=headers)
    try:
        specs = [{"type": s.kind, "url": s.url, "name": s.name, "folder": FOLDER} for s in sources]
        # In two batches, so the second is created by a process that was already killed once.
        half = len(specs) // 2
        created = client.post("/api/downloads", json={"tasks": specs[:half], "startDownload": True}).json()
        assert created["success"], created
        by_name = {s.name: s for s in sources}
        changed = False
        for kill in range(plan.kills):
            time.sleep(rng.uniform(*plan.kill_after))
            serve.kill()
            report.kills += 1
            say(f"kill {kill + 1}/{plan.kills} at {time.monotonic() - started:.1f}s")
            if not changed:  # the remote file changes while its download is interrupted
                files.replace("/soak/changing.bin", random_bytes(3_000_000, seed=plan.seed + 99))
                by_name["changing.bin"].expected = random_bytes(3_000_000, seed=plan.seed + 99)
                changed = True
            if kill == plan.kills // 2:
                files.faults.throttle("/soak/changing.bin", None)
            base = serve.start().url
            report.restarts += 1
            client.close()
            client = httpx.Client(base_url=base, timeout=30, trust_env=False, headers=headers)
            if kill == 0:
                more = client.post("/api/downloads", json={"tasks": specs[half:], "startDownload": True}).json()
                assert more["success"], more
        if plan.kills == 0:
            more = client.post("/api/downloads", json={"tasks": specs[half:], "startDownload": True}).json()
            assert more["success"], more
        files.faults.throttle("/soak/changing.bin", None)
        tasks = _wait_finished(client, plan.finish_timeout)
    finally:
        client.close()
        code = serve.stop()
    if code != 0:
        report.problems.append(f"serve exited with {code} on SIGTERM")
    report.seconds = time.monotonic() - started
    check(report, sources, tasks, downloads / FOLDER, data_dir)
    for run in range(1, serve.runs + 1):
        text = (data_dir / f"serve-{run}.log").read_text(errors="replace")
        found = re.search(r"recovered (\d+) interrupted task", text)
        report.recovered += int(found.group(1)) if found else 0
        if "Traceback" in text:
            report.problems.append(f"serve run {run} logged a traceback:\n{text[-3000:]}")
    return report


def check(report: SoakReport, sources: list[Source], tasks: list[dict[str, Any]], folder: Path,
          data_dir: Path) -> None:
    problems = report.problems
    by_name = {s.name: s for s in sources}
    names = [t["name"] for t in tasks]
    if sorted(names) != sorted(by_name):
        lost = sorted(set(by_name) - set(names))
        extra = sorted(n for n in set(names) if names.count(n) > 1 or n not in by_name)
        problems.append(f"tasks lost {lost[:10]} or duplicated/unknown {extra[:10]} ({len(tasks)} tasks)")
    expected_files: set[str] = set()
    for task in tasks:
        source = by_name.get(task["name"])
        if source is None:
            continue
        where = f"task {task['id']} ({task['name']}, faults {source.faults})"
        if source.expect_error is not None:
            if task["status"] != "failed" or source.expect_error not in (task["error"] or ""):
                problems.append(f"{where}: wanted failed with {source.expect_error!r}, got "
                                f"{task['status']} {task['error']!r}")
            else:
                report.failed += 1
            continue
        if task["status"] != "success":
            problems.append(f"{where}: {task['status']} {task['error']!r}")
            continue
        report.success += 1
        final = Path(task["file"])
        expected_files.add(final.name)
        if final.parent != folder:
            problems.append(f"{where}: saved outside its folder: {final}")
        try:
            data = final.read_bytes()
        except OSError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if hashlib.sha256(data).digest() != hashlib.sha256(source.expected).digest():
            problems.append(f"{where}: content differs ({len(data)} bytes, wanted {len(source.expected)})")
        else:
            report.bytes_checked += len(data)
        for suffix in TEMP_SUFFIXES:
            leftover = final.with_name(final.name + suffix)
            if leftover.exists():
                problems.append(f"{where}: {leftover.name} left behind")
    if folder.exists():
        stray = sorted(p.name for p in folder.iterdir() if p.name not in expected_files)
        if stray:
            problems.append(f"stray files in the download folder: {stray[:20]}")
    with sqlite3.connect(data_dir / "fetchdeck.db") as db:
        report.integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        stored = db.execute("SELECT count(*), count(DISTINCT name) FROM tasks").fetchone()
    if report.integrity != "ok":
        problems.append(f"integrity_check: {report.integrity}")
    if stored != (len(sources), len(sources)):
        problems.append(f"the database holds {stored[0]} tasks ({stored[1]} names), wanted {len(sources)}")


def main_json(report: SoakReport) -> str:
    return json.dumps({k: v for k, v in report.__dict__.items()}, indent=2)

"""Events out (core/notify/): real downloads from 127.0.0.1, real receivers, a real hook program.

- an Apprise ntfy:// notification reaches a local ntfy-compatible endpoint (and a task with
  notify = false, or an outcome not in [notify] on, sends none);
- the signed webhook: the receiver recomputes the HMAC over the raw body and answers 500 to the
  first attempt; both attempts are in the task log, the body is the task's report;
- hooks: argv and environment arrive verbatim for a file name made to inject shell commands, and
  nothing is injected; a string command is split from the config value only; a hook that outlives
  its timeout is killed; the output is in the task log;
- at shutdown a pending delivery gets the grace period, then is logged as not delivered.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from core.config import Config
from core.engine import Engine
from core.models import Task, TaskOptions, TaskSpec, TaskStatus
from tests.support.engine import engine_config
from tests.support.fileserver import FileServer, random_bytes
from tests.support.notify_receiver import Receiver

SECRET = "s3cret-ключ"


async def wait_for(check: Callable[[], Any], timeout: float = 10, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}; last value {value!r}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = await Receiver().start()
    yield rec
    await rec.stop()


@pytest.fixture
def files() -> AsyncIterator[FileServer]:
    with FileServer() as srv:
        yield srv


def config_for(tmp_path: Path) -> Config:
    config = engine_config(tmp_path, retries=0)
    config.notify.retry_delay = 0.2
    config.notify.grace = 5
    return config


async def run(engine: Engine, url: str, name: str | None = None, **options: Any) -> Task:
    (task,) = await engine.create([TaskSpec(url=url, name=name, options=TaskOptions(**options))])
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id]), 20)
    return done


async def log_texts(engine: Engine, task_id: int) -> list[str]:
    return [line.text for line in await engine.logs(task_id)]


async def test_a_notification_reaches_a_local_ntfy_endpoint(tmp_path: Path, files: FileServer,
                                                            receiver: Receiver) -> None:
    data = random_bytes(300_000, seed=5)
    url = files.add("/movie.mkv", data)
    config = config_for(tmp_path)
    config.notify.urls = [f"ntfy://127.0.0.1:{receiver.port}/fetchdeck-done"]
    config.notify.on = ["success"]  # a failure is not notified
    async with Engine(tmp_path / "db.sqlite", config) as engine:
        done = await run(engine, url)
        assert done.status is TaskStatus.SUCCESS
        assert await wait_for(lambda: receiver.requests, what="the ntfy POST")
        quiet = await run(engine, url, name="quiet.mkv", notify=False)
        failed = await run(engine, files.url("/missing.bin"))
        assert failed.status is TaskStatus.FAILED
    # closed: every pending delivery has had its grace period, so nothing more can arrive
    assert len(receiver.requests) == 1, receiver.requests
    path, headers, raw, _ = receiver.requests[0]
    message = json.loads(raw)
    assert path == "/" and headers["Content-Type"] == "application/json"
    assert message["topic"] == "fetchdeck-done"
    assert message["title"] == "fetchdeck: downloaded: movie.mkv"
    assert message["message"].startswith("movie.mkv (300,000 bytes)\n") and message["message"].endswith(done.file)
    async with Engine(tmp_path / "db.sqlite", config) as engine:
        lines = await log_texts(engine, done.id)
        assert f"notify ntfy://127.0.0.1:{receiver.port}/… (success, attempt 1/4): delivered, sent" in lines, lines
        assert not [t for t in lines if "fetchdeck-done" in t]  # an ntfy topic is as good as a password
        assert not any(t.startswith("notify") for t in await log_texts(engine, quiet.id))
        assert not any(t.startswith("notify") for t in await log_texts(engine, failed.id))


async def test_the_webhook_is_signed_and_retried(tmp_path: Path, files: FileServer, receiver: Receiver) -> None:
    data = random_bytes(200_000, seed=6)
    url = files.add("/report.pdf", data)
    receiver.answers = [500]  # the first attempt fails, the second is delivered
    config = config_for(tmp_path)
    config.webhook.url = f"http://127.0.0.1:{receiver.port}/hooks/fetchdeck?src=test"
    config.webhook.secret = SECRET
    async with Engine(tmp_path / "db.sqlite", config) as engine:
        done = await run(engine, url)
        assert done.status is TaskStatus.SUCCESS and done.file is not None
        assert Path(done.file).read_bytes() == data
        failed = await run(engine, files.url("/gone.bin"))
        assert failed.status is TaskStatus.FAILED and failed.error
        await wait_for(lambda: len(receiver.requests) == 3, what="three webhook POSTs")
        where = f"webhook http://127.0.0.1:{receiver.port}/…"  # no path or query: they may carry tokens

        async def delivered() -> list[str]:
            return [t for t in await log_texts(engine, done.id) if t.startswith(where)]

        lines = await wait_for(lambda: len_at_least(delivered(), 2), what="both attempts in the task log")
        everything = await log_texts(engine, done.id) + await log_texts(engine, failed.id)
        assert not [t for t in everything if "hooks/fetchdeck" in t or "src=test" in t or SECRET in t]
    assert lines == [f"{where} (success, attempt 1/4): HTTP 500; retrying in 0.2 s",
                     f"{where} (success, attempt 2/4): delivered, HTTP 200"]
    for path, headers, raw, _ in receiver.requests:
        assert path == "/hooks/fetchdeck"
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Fetchdeck-Signature"], expected)
        assert headers["Content-Type"] == "application/json"
    bodies = [json.loads(raw) for _, _, raw, _ in receiver.requests]
    success = [b for b in bodies if b["task_id"] == done.id]
    assert len(success) == 2 and success[0] == success[1]  # a retry sends the same report
    body = success[0]
    assert body["event"] == "task.success" and body["status"] == "success" and body["error"] is None
    assert (body["name"], body["url"], body["kind"]) == ("report.pdf", url, "http")
    assert (body["file"], body["size"], body["downloaded"]) == (done.file, len(data), len(data))
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")
    (failure,) = [b for b in bodies if b["task_id"] == failed.id]
    assert failure["status"] == "failed" and failure["event"] == "task.failed"
    assert failure["error"] == failed.error
    (_, headers, _, _) = next(r for r in receiver.requests if json.loads(r[2])["task_id"] == failed.id)
    assert headers["X-Fetchdeck-Event"] == "task.failed"


async def len_at_least(lines: Awaitable[list[str]], n: int) -> list[str] | None:
    got = await lines
    return got if len(got) >= n else None


HOOK = """\
import json, os, sys
out = {"argv": sys.argv[1:], "stdin": json.load(sys.stdin),
       "env": {k: v for k, v in os.environ.items() if k.startswith("FETCHDECK_")}}
with open(os.environ["HOOK_OUT"], "a", encoding="utf-8") as f:
    f.write(json.dumps(out) + "\\n")
print(f"hook saw {len(sys.argv) - 1} arguments")
print("second line", file=sys.stderr)
"""

HOSTILE = "a; touch PWNED $(touch PWNED2) `touch PWNED3` 'q' && rm -rf x | $HOME {url} {id}\n\"l2\".bin"


async def test_hooks_get_the_task_verbatim_and_nothing_is_injected(
        tmp_path: Path, files: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # where an injected `touch PWNED` would land
    out = tmp_path / "hook.jsonl"
    monkeypatch.setenv("HOOK_OUT", str(out))
    script = tmp_path / "hook.py"
    script.write_text(HOOK, encoding="utf-8")
    data = random_bytes(100_000, seed=7)
    url = files.add("/x.bin", data)
    config = config_for(tmp_path)
    config.hooks.on_success = [sys.executable, str(script), "--name={name}", "id={id}"]  # the file: last argument
    # a string: split with shlex, the config value only; {file} placeholders instead of the last argument
    config.hooks.on_failure = f"{sys.executable} {script} 'status: {{status}}' --file={{file}} {{url}}"  # type: ignore[assignment]
    assert config.hooks.on_failure[2] == "status: {status}"
    config.hooks.timeout = 10
    async with Engine(tmp_path / "db.sqlite", config) as engine:
        done = await run(engine, url, name=HOSTILE)
        assert done.status is TaskStatus.SUCCESS and done.file is not None
        assert Path(done.file).read_bytes() == data
        assert "$(touch PWNED2)" in done.name and "`touch PWNED3`" in done.name and "; touch PWNED" in done.name
        assert "{url} {id}" in done.name  # placeholders in task data are not expanded again
        bad_url = files.url("/nope.bin") + "?q=$(touch%20PWNED4);`id`"
        failed = await run(engine, bad_url, name="f.bin")
        assert failed.status is TaskStatus.FAILED
        await wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 2, what="both hooks")
        lines = await wait_for(lambda: hook_lines(engine, done.id, "delivered"), what="the hook's log lines")
    runs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    ok = next(r for r in runs if r["env"]["FETCHDECK_STATUS"] == "success")
    assert ok["argv"] == [f"--name={done.name}", f"id={done.id}", done.file]
    env = ok["env"]
    assert (env["FETCHDECK_TASK_ID"], env["FETCHDECK_FILE"], env["FETCHDECK_NAME"]) == (str(done.id), done.file,
                                                                                       done.name)
    assert (env["FETCHDECK_URL"], env["FETCHDECK_SIZE"], env["FETCHDECK_ERROR"]) == (url, str(len(data)), "")
    assert ok["stdin"]["task_id"] == done.id and ok["stdin"]["file"] == done.file
    bad = next(r for r in runs if r["env"]["FETCHDECK_STATUS"] == "failed")
    assert bad["argv"] == ["status: failed", "--file=", failed.url]  # no file: {file} is empty, nothing appended
    assert bad["env"]["FETCHDECK_ERROR"] == failed.error and bad["stdin"]["error"] == failed.error
    assert sorted(p.name for p in work.iterdir()) == []  # no PWNED* anywhere the hook ran
    assert not list(tmp_path.rglob("PWNED*"))
    label = f"hook on_success {Path(sys.executable).name}"
    assert f"{label}: hook saw 3 arguments" in lines and f"{label}: second line" in lines, lines
    assert lines[-1].endswith("(success, attempt 1/1): delivered, exit 0"), lines


async def hook_lines(engine: Engine, task_id: int, last: str) -> list[str] | None:
    lines = [t for t in await log_texts(engine, task_id) if t.startswith("hook ")]
    return lines if lines and last in lines[-1] else None


async def test_a_hook_past_its_timeout_is_killed_and_retried(tmp_path: Path, files: FileServer) -> None:
    url = files.add("/y.bin", b"y" * 1000)
    config = config_for(tmp_path)
    config.hooks.on_success = [sys.executable, "-c", "import signal; signal.pause()"]  # never ends by itself
    config.hooks.timeout = 0.5
    config.hooks.retries = 1
    async with Engine(tmp_path / "db.sqlite", config) as engine:
        done = await run(engine, url)
        lines = await wait_for(lambda: hook_lines(engine, done.id, "giving up"), what="the hook's give-up")
    name = Path(sys.executable).name
    assert lines == [f"hook on_success {name} (success, attempt 1/2): killed after 0.5 s; retrying in 0.2 s",
                     f"hook on_success {name} (success, attempt 2/2): killed after 0.5 s; giving up"], lines


async def test_shutdown_gives_pending_deliveries_a_grace_period(tmp_path: Path, files: FileServer,
                                                                receiver: Receiver) -> None:
    url = files.add("/z.bin", b"z" * 5000)
    receiver.answers = [503] * 10  # never delivered
    config = config_for(tmp_path)
    config.webhook.url = f"http://127.0.0.1:{receiver.port}/h"
    config.notify.retry_delay = 5  # the second attempt would come after the grace period
    config.notify.grace = 0.5
    engine = await Engine(tmp_path / "db.sqlite", config).open()
    try:
        done = await run(engine, url)
        await wait_for(lambda: receiver.requests, what="the first attempt")
    finally:
        started = time.monotonic()
        await engine.close()
        took = time.monotonic() - started
    assert took < 3, took  # the grace period, not the 5 s backoff
    assert len(receiver.requests) == 1
    async with Engine(tmp_path / "db.sqlite", config) as engine:
        lines = [t for t in await log_texts(engine, done.id) if t.startswith("webhook")]
    where = f"webhook http://127.0.0.1:{receiver.port}/… (success, attempt 1/4)"
    assert lines == [f"{where}: HTTP 503; retrying in 5 s", f"{where}: not delivered: fetchdeck stopped"], lines


async def test_fetchdeck_get_delivers_before_it_exits(tmp_path: Path, files: FileServer, receiver: Receiver) -> None:
    """The one-shot `get`: --notify adds the task's own Apprise URL; [hooks] from the environment (a string,
    split with shlex); both have run when the command returns."""
    data = random_bytes(80_000, seed=8)
    url = files.add("/cli.bin", data)
    script = tmp_path / "hook.py"
    script.write_text(HOOK, encoding="utf-8")
    out = tmp_path / "hook.jsonl"
    env = {**os.environ, "HOOK_OUT": str(out), "FETCHDECK_HOOKS_ON_SUCCESS": f"{sys.executable} {script} 'a b'"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli", "get", url, "--download-dir", str(tmp_path / "dl"), "--data-dir",
        str(tmp_path / "data"), "--notify", f"ntfy://127.0.0.1:{receiver.port}/from-cli", env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    path = stdout.decode().strip()
    assert Path(path).read_bytes() == data
    assert [json.loads(raw)["topic"] for _, _, raw, _ in receiver.requests] == ["from-cli"]
    (hook,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert hook["argv"] == ["a b", path] and hook["env"]["FETCHDECK_FILE"] == path

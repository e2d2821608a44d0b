"""The task lifecycle on the real Engine and SQLite store, driven by the scripted downloader (no sockets).

Start/stop/delete races, the WrongKind kind switch, and a final status the
store refuses (disk full): the task still reads as finished and is saved later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from core.downloaders import DownloaderRegistry
from core.downloaders.scripted import Claim, Fail, Finish, Gate, Report, ScriptedDownloader, SwitchKind, Wait
from core.engine import Engine
from core.errors import DownloadError, IllegalTransition, InvalidField, InvalidInput, StoreUnavailable, TaskNotFound
from core.models import LogLine, Task, TaskKind, TaskOptions, TaskSpec, TaskStatus
from core.queue import QueueMove
from core.store import StoreFactory, TaskPatch, TaskStore
from core.store import base as store_base
from core.store.base import HostCaps, Lease, NodeInfo, TaskFilter
from tests.support.engine import engine_config

URL = "https://files.example.test/a.bin"


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait (yielding to the loop) until condition() holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def finished(engine: Engine, task_id: int, timeout: float = 10.0) -> Task:
    (task,) = await asyncio.wait_for(engine.wait_finished([task_id], poll=0.05), timeout)
    return task


class RefusingStore(TaskStore):
    """The SQLite store, refusing every write while `full` is set (as SQLite does when its disk is full)."""

    def __init__(self, inner: TaskStore) -> None:
        self.inner = inner
        self.full = False

    def _check(self) -> None:
        if self.full:
            raise StoreUnavailable("database or disk is full")

    async def close(self) -> None:
        await self.inner.close()

    async def get(self, task_id: int) -> Task | None:
        return await self.inner.get(task_id)

    async def page(self, offset: int, limit: int, flt: TaskFilter) -> tuple[list[Task], int]:
        return await self.inner.page(offset, limit, flt)

    async def waiting_ids(self, limit: int = -1) -> list[int]:
        return await self.inner.waiting_ids(limit)

    async def count_by_status(self) -> dict[TaskStatus, int]:
        return await self.inner.count_by_status()

    async def folders(self) -> list[str]:
        return await self.inner.folders()

    async def files_in_use(self) -> set[str]:
        return await self.inner.files_in_use()

    async def logs(self, task_id: int, limit: int = 5000) -> list[LogLine]:
        return await self.inner.logs(task_id, limit)

    async def integrity_ok(self) -> bool:
        return await self.inner.integrity_ok()

    async def insert_many(self, tasks: list[Task]) -> list[Task]:
        self._check()
        return await self.inner.insert_many(tasks)

    async def update(self, task_id: int, patch: TaskPatch) -> None:
        self._check()
        await self.inner.update(task_id, patch)

    async def update_many(self, changes: list[tuple[int, TaskPatch]]) -> None:
        self._check()
        await self.inner.update_many(changes)

    async def transition(self, task_id: int, old: TaskStatus, new: TaskStatus) -> bool:
        self._check()
        return await self.inner.transition(task_id, old, new)

    @property
    def node(self) -> str:
        return self.inner.node

    @property
    def shared(self) -> bool:
        return self.inner.shared

    async def claim(
        self, limit: int, *, lease_seconds: float, caps: HostCaps, want_connections: Callable[[Task], int],
        only: frozenset[int] | None = None, skip: frozenset[int] = frozenset(),
    ) -> list[store_base.Claim]:
        self._check()
        return await self.inner.claim(limit, lease_seconds=lease_seconds, caps=caps,
                                      want_connections=want_connections, only=only, skip=skip)

    async def move(self, task_id: int, where: QueueMove) -> bool:
        self._check()
        return await self.inner.move(task_id, where)

    async def set_positions(self, positions: Sequence[tuple[int, float]]) -> None:
        self._check()
        await self.inner.set_positions(positions)

    async def next_start(self, now: float) -> float | None:
        return await self.inner.next_start(now)

    async def renew(self, lease_seconds: float) -> set[int]:
        self._check()
        return await self.inner.renew(lease_seconds)

    async def reap(self) -> list[int]:
        self._check()
        return await self.inner.reap()

    async def recover(self) -> int:
        self._check()
        return await self.inner.recover()

    async def release(self, task_id: int) -> None:
        await self.inner.release(task_id)

    def lease(self, task_id: int) -> Lease | None:
        return self.inner.lease(task_id)

    async def nodes(self) -> list[NodeInfo]:
        return await self.inner.nodes()

    async def get_state(self, task_id: int, key: str) -> bytes | None:
        return await self.inner.get_state(task_id, key)

    # A shared inner store's LISTEN/NOTIFY (what the engine's cluster node needs besides the contract).
    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        await self.inner.listen(channel, callback)  # type: ignore[attr-defined]

    async def notify(self, channel: str, payload: str) -> None:
        await self.inner.notify(channel, payload)  # type: ignore[attr-defined]

    async def put_state(self, task_id: int, key: str, value: bytes | None) -> None:
        self._check()
        await self.inner.put_state(task_id, key, value)

    async def delete(self, task_id: int) -> None:
        self._check()
        await self.inner.delete(task_id)

    async def append_logs(self, lines: list[tuple[int, float, str]]) -> None:
        self._check()
        await self.inner.append_logs(lines)


@pytest.fixture
def http() -> ScriptedDownloader:
    return ScriptedDownloader()


@pytest.fixture
def hls() -> ScriptedDownloader:
    return ScriptedDownloader()


@pytest.fixture
def store_box() -> list[RefusingStore]:
    return []


@pytest.fixture
async def engine(
    tmp_path: Path, http: ScriptedDownloader, hls: ScriptedDownloader, store_box: list[RefusingStore],
    engine_store: StoreFactory,
) -> AsyncIterator[Engine]:
    async def open_store() -> TaskStore:
        store = RefusingStore(await engine_store())
        store_box.append(store)
        return store

    registry = DownloaderRegistry({TaskKind.HTTP: lambda: http, TaskKind.HLS: lambda: hls})
    eng = Engine(None, engine_config(tmp_path), store=open_store, downloaders=registry)
    await eng.open()
    yield eng
    store_box[0].full = False
    await eng.close()


async def test_a_scripted_run_reports_progress_and_finishes(engine: Engine, http: ScriptedDownloader) -> None:
    gate = Gate()
    http.script(URL, Report(40, total=100), Wait(gate), Finish(b"x" * 100))
    (task,) = await engine.create([TaskSpec(url=URL)])
    await asyncio.wait_for(gate.arrived.wait(), 10)
    running = await engine.get(task.id)
    assert running.status is TaskStatus.DOWNLOADING and running.downloaded == 40 and running.total == 100
    gate.open()
    done = await finished(engine, task.id)
    assert done.status is TaskStatus.SUCCESS and done.downloaded == 100 and done.error is None
    assert done.file is not None and Path(done.file).read_bytes() == b"x" * 100
    stored = await engine.store.get(task.id)
    assert stored is not None and stored.status is TaskStatus.SUCCESS and stored.file == done.file
    assert [r.outcome for r in http.runs_of(task.id)] == ["finished"]


@pytest.mark.parametrize("yields", [0, 1, 2, 5])
async def test_stop_while_launching_sticks_and_the_downloader_never_runs(
    engine: Engine, http: ScriptedDownloader, yields: int
) -> None:
    """A stop landing between the launch and the run's claim of the task (or in the claim) wins."""
    http.default = (Finish(b"done"),)
    engine.scheduler.max_concurrent = 0  # the test launches the run itself, at a moment it chooses
    async with engine.scheduler.launching:  # a claim the engine's start-up began has ended (it found nothing)
        pass
    (task,) = await engine.create([TaskSpec(url=URL)])
    waiting = await engine.store.get(task.id)
    assert waiting is not None and waiting.status is TaskStatus.WAITING
    engine.scheduler.launch(waiting)
    for _ in range(yields):
        await asyncio.sleep(0)
    stopped = await engine.stop(task.id)
    assert stopped.status is TaskStatus.STOPPED
    assert task.id not in engine.scheduler.runs
    stored = await engine.store.get(task.id)
    assert stored is not None and stored.status is TaskStatus.STOPPED
    assert [r.outcome for r in http.runs_of(task.id)] in ([], ["cancelled"])


async def test_stop_while_running_then_start_resumes_in_one_new_run(engine: Engine, http: ScriptedDownloader) -> None:
    first, second = Gate(), Gate()
    http.script(URL, Report(10, total=50), Wait(first), Finish(b"never"))
    http.script(URL, Report(30, total=50), Wait(second), Finish(b"y" * 50))
    (task,) = await engine.create([TaskSpec(url=URL)])
    await asyncio.wait_for(first.arrived.wait(), 10)
    with pytest.raises(IllegalTransition):
        await engine.start(task.id)  # already downloading
    stopped = await engine.stop(task.id)
    assert stopped.status is TaskStatus.STOPPED and stopped.downloaded == 10
    assert [r.outcome for r in http.runs_of(task.id)] == ["cancelled"]
    # Start twice in a row: one run, not two.
    assert (await engine.start(task.id)).status is TaskStatus.WAITING
    assert (await engine.start(task.id)).status in (TaskStatus.WAITING, TaskStatus.DOWNLOADING)
    await asyncio.wait_for(second.arrived.wait(), 10)
    second.open()
    done = await finished(engine, task.id)
    assert done.status is TaskStatus.SUCCESS and done.downloaded == 50
    assert [r.outcome for r in http.runs_of(task.id)] == ["cancelled", "finished"]


async def test_delete_while_running_cancels_the_run_and_forgets_the_task(
    engine: Engine, http: ScriptedDownloader, tmp_path: Path
) -> None:
    gate = Gate()
    http.script(URL, Report(5, total=10), Wait(gate), Finish(b"never"))
    (task,) = await engine.create([TaskSpec(url=URL)])
    await asyncio.wait_for(gate.arrived.wait(), 10)
    await engine.delete(task.id, files=True)
    assert task.id not in engine.scheduler.runs
    assert [r.outcome for r in http.runs_of(task.id)] == ["cancelled"]
    with pytest.raises(TaskNotFound):
        await engine.get(task.id)
    assert await engine.store.get(task.id) is None
    assert (await engine.stats()).total == 0


async def test_delete_while_launching_leaves_nothing_behind(engine: Engine, http: ScriptedDownloader) -> None:
    http.default = (Finish(b"done"),)
    engine.scheduler.max_concurrent = 0
    async with engine.scheduler.launching:  # a claim the engine's start-up began has ended
        pass
    (task,) = await engine.create([TaskSpec(url=URL)])
    waiting = await engine.store.get(task.id)
    assert waiting is not None
    engine.scheduler.launch(waiting)
    await engine.delete(task.id)
    assert task.id not in engine.scheduler.runs
    assert await engine.store.get(task.id) is None
    assert [r.outcome for r in http.runs_of(task.id)] in ([], ["cancelled"])


async def test_a_guessed_kind_switches_downloaders_on_wrong_kind(
    engine: Engine, http: ScriptedDownloader, hls: ScriptedDownloader
) -> None:
    http.script(URL, SwitchKind(TaskKind.HLS, "the response is an m3u8 playlist"))
    hls.script(URL, Report(3, total=3, segments=(3, 3)), Finish(b"ts!", name="a.ts"))
    (task,) = await engine.create([TaskSpec(url=URL)])  # kind guessed from the URL: http
    assert task.kind is TaskKind.HTTP and task.options.auto_kind
    done = await finished(engine, task.id)
    assert done.status is TaskStatus.SUCCESS and done.kind is TaskKind.HLS, done.error
    assert done.segments_done == 3 and done.file is not None and done.file.endswith("a.ts")
    stored = await engine.store.get(task.id)
    assert stored is not None and stored.kind is TaskKind.HLS
    assert [r.kind for r in http.runs_of(task.id) + hls.runs_of(task.id)] == [TaskKind.HTTP, TaskKind.HLS]
    assert any("switching to hls" in line.text for line in await engine.logs(task.id))


async def test_an_explicit_kind_is_not_switched(engine: Engine, http: ScriptedDownloader,
                                                hls: ScriptedDownloader) -> None:
    http.script(URL, SwitchKind(TaskKind.HLS, "the response is an m3u8 playlist"))
    (task,) = await engine.create([TaskSpec(url=URL, kind=TaskKind.HTTP)])
    done = await finished(engine, task.id)
    assert done.status is TaskStatus.FAILED and done.kind is TaskKind.HTTP
    assert done.error == "this is a hls download: the response is an m3u8 playlist"
    assert hls.runs == []


async def test_a_kind_that_keeps_changing_fails(engine: Engine, http: ScriptedDownloader,
                                                hls: ScriptedDownloader) -> None:
    http.default = (SwitchKind(TaskKind.HLS),)
    hls.default = (SwitchKind(TaskKind.HTTP),)
    (task,) = await engine.create([TaskSpec(url=URL)])
    done = await finished(engine, task.id)
    assert done.status is TaskStatus.FAILED and done.error == "the download type kept changing"
    assert len(http.runs_of(task.id)) + len(hls.runs_of(task.id)) == 3


async def test_a_download_error_fails_the_task_and_a_restart_runs_it_again(
    engine: Engine, http: ScriptedDownloader
) -> None:
    http.script(URL, Report(7), Fail(DownloadError("HTTP 503 Service Unavailable")))
    http.script(URL, Finish(b"ok"))
    (task,) = await engine.create([TaskSpec(url=URL)])
    failed = await finished(engine, task.id)
    assert failed.status is TaskStatus.FAILED and failed.error == "HTTP 503 Service Unavailable"
    await engine.start(task.id)
    done = await finished(engine, task.id)
    assert done.status is TaskStatus.SUCCESS and done.error is None


async def test_a_final_status_the_store_refuses_still_reads_as_finished_and_is_saved_later(
    engine: Engine, http: ScriptedDownloader, store_box: list[RefusingStore]
) -> None:
    store = store_box[0]
    gate = Gate()
    http.script(URL, Report(4, total=4), Claim(), Wait(gate), Finish(b"data"))
    (task,) = await engine.create([TaskSpec(url=URL)])
    await asyncio.wait_for(gate.arrived.wait(), 10)
    store.full = True  # the disk fills up while the task runs
    gate.open()
    await until(lambda: task.id not in engine.scheduler.runs, "the run to end")
    done = await engine.get(task.id)
    assert done.status is TaskStatus.SUCCESS and done.file is not None and Path(done.file).read_bytes() == b"data"
    row = await store.inner.get(task.id)
    assert row is not None and row.status is TaskStatus.DOWNLOADING  # the store still has the old status
    stats = await engine.stats()
    assert stats.success == 1 and stats.downloading == 0
    (listed,) = (await engine.list_tasks()).items
    assert listed.status is TaskStatus.SUCCESS
    with pytest.raises(StoreUnavailable):
        await engine.stop(task.id)  # a command must not act on a status the store does not hold
    store.full = False  # space freed: the retry loop saves the outcome
    deadline = time.monotonic() + 10
    while (row := await store.inner.get(task.id)) is not None and row.status is not TaskStatus.SUCCESS:
        assert time.monotonic() < deadline, "the outcome was never saved"
        await asyncio.sleep(0.05)
    assert row is not None and row.file == done.file and row.downloaded == 4
    assert (await engine.get(task.id)).status is TaskStatus.SUCCESS


async def test_update_names_the_field_a_rule_refused(engine: Engine) -> None:
    (task,) = await engine.create([TaskSpec(url=URL)], start=False)
    with pytest.raises(InvalidField) as info:
        await engine.update(task.id, TaskPatch(url="ftp://nope/x"))
    assert info.value.field == "url" and info.value.index is None
    with pytest.raises(InvalidField) as info:
        await engine.create([TaskSpec(url=URL), TaskSpec(url=URL, folder="/etc")])
    assert (info.value.field, info.value.index) == ("folder", 1)
    with pytest.raises(InvalidField) as info:
        await engine.create([TaskSpec(url=URL, options=TaskOptions(proxy="nonsense"))])
    assert (info.value.field, info.value.index) == ("proxy", 0)
    with pytest.raises(InvalidInput, match="cannot update status"):
        await engine.update(task.id, TaskPatch(status=TaskStatus.SUCCESS))  # only a run or a mark sets it


async def test_a_backend_belongs_to_the_registry_of_the_engine_it_was_added_to(
    engine: Engine, tmp_path: Path
) -> None:
    backend = ScriptedDownloader(default=(Report(2, total=2), Finish(b"ok", name="got.bin")))
    engine.downloaders.register_backend("fake", backend, check_url=lambda url: url.strip())
    spec = TaskSpec(url=" fake://thing ", options=TaskOptions(backend="fake"))
    (task,) = await engine.create([spec])
    done = await finished(engine, task.id)
    assert done.status is TaskStatus.SUCCESS and done.url == "fake://thing"
    assert [r.outcome for r in backend.runs] == ["finished"]
    async with Engine(tmp_path / "other.sqlite", engine_config(tmp_path / "other")) as other:  # its own registry
        with pytest.raises(InvalidField, match="no downloader named 'fake'") as info:
            await other.create([spec])
        assert (info.value.field, info.value.index) == ("url", 0)


async def test_an_engine_runs_on_the_store_it_is_given(tmp_path: Path, engine_store: StoreFactory) -> None:
    """Any TaskStore drops in: here an open one handed over (the engine closes it with itself)."""
    store = RefusingStore(await engine_store())
    fake = ScriptedDownloader(default=(Finish(b"z"),))
    registry = DownloaderRegistry({TaskKind.HTTP: lambda: fake})
    async with Engine(None, engine_config(tmp_path), store=store, downloaders=registry) as eng:
        assert eng.store is store
        (task,) = await eng.create([TaskSpec(url=URL)])
        assert (await finished(eng, task.id)).status is TaskStatus.SUCCESS
    reopened = await engine_store()
    try:
        row = await reopened.get(task.id)
        assert row is not None and row.status is TaskStatus.SUCCESS
    finally:
        await reopened.close()

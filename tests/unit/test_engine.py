"""Engine behaviour that needs no network: validation, status machine, store, recovery."""

import asyncio
from pathlib import Path

import pytest

from core.engine import Engine
from core.errors import IllegalTransition, InvalidInput, TaskNotFound
from core.events import EventType
from core.models import TaskKind, TaskSpec, TaskStatus
from core.store import StoreFactory, TaskPatch
from core.store.repo import TaskFilter
from tests.support.engine import engine_config

make_config = engine_config

@pytest.fixture
async def engine(engine_store: StoreFactory, tmp_path: Path):
    eng = Engine(None, store=engine_store, config=make_config(tmp_path))
    await eng.open()
    yield eng
    await eng.close()


@pytest.mark.parametrize("url", ["ftp://x/y", "not a url", "http://", "javascript:alert(1)", "http://h:99999/",
                                 "http://h/a\tb", "http://h/\x01", "http://h/a\u2028b", "http://h/a\x7f"])
async def test_bad_urls_are_rejected_and_nothing_is_stored(engine: Engine, url: str) -> None:
    with pytest.raises(InvalidInput):
        await engine.create([TaskSpec(url="http://ok.example/a"), TaskSpec(url=url)], start=False)
    assert (await engine.list_tasks()).total == 0


async def test_create_list_filter_and_kinds(engine: Engine) -> None:
    sub = engine.subscribe()
    tasks = await engine.create(
        [
            TaskSpec(url="http://example.invalid/a.zip"),
            TaskSpec(url="http://example.invalid/live/index.m3u8", name="Live show"),
            TaskSpec(url="https://www.youtube.com/watch?v=x"),
        ],
        start=False,
    )
    assert [t.kind for t in tasks] == [TaskKind.HTTP, TaskKind.HLS, TaskKind.YTDLP]
    assert [t.status for t in tasks] == [TaskStatus.STOPPED] * 3
    assert tasks[0].name == "a.zip" and tasks[1].name == "Live show"
    event = await sub.get(timeout=1)
    assert event is not None and event.type is EventType.CREATE and len(event.payload.ids) == 3  # type: ignore[union-attr]
    page = await engine.list_tasks(1, 2)
    assert page.total == 3 and [t.id for t in page.items] == [tasks[2].id, tasks[1].id]
    found = await engine.list_tasks(1, 10, TaskFilter(text="live"))
    assert [t.id for t in found.items] == [tasks[1].id]


async def test_status_machine(engine: Engine) -> None:
    (task,) = await engine.create([TaskSpec(url="http://example.invalid/a")], start=False)
    await engine.repo.update(task.id, TaskPatch(status=TaskStatus.SUCCESS))
    with pytest.raises(IllegalTransition):
        await engine.stop(task.id)  # a finished task cannot be stopped
    with pytest.raises(TaskNotFound):
        await engine.start(999)
    with pytest.raises(InvalidInput):
        await engine.set_status([task.id], TaskStatus.SUCCESS)
    await engine.update(task.id, TaskPatch(name="renamed"))
    assert (await engine.get(task.id)).name == "renamed"
    await engine.delete(task.id)
    with pytest.raises(TaskNotFound):
        await engine.get(task.id)


async def test_unreachable_host_fails_with_a_reason(engine_store: StoreFactory, tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config.download.retries = 0
    async with Engine(None, store=engine_store, config=config) as eng:
        # port 9 (discard) on loopback: nothing listens, the connection is refused at once
        (task,) = await eng.create([TaskSpec(url="http://127.0.0.1:9/file.bin")])
        (done,) = await asyncio.wait_for(eng.wait_finished([task.id]), 20)
        assert done.status == TaskStatus.FAILED
        assert done.error and "connect" in done.error.lower()
        assert any("failed" in line.text for line in await eng.logs(task.id))


async def test_start_up_recovery_requeues_interrupted_tasks(
    engine_store: StoreFactory, tmp_path: Path
) -> None:
    config = make_config(tmp_path)
    async with Engine(None, store=engine_store, config=config, run_queued=False) as eng:
        (task,) = await eng.create([TaskSpec(url="http://example.invalid/a")], start=False)
        await eng.repo.update(task.id, TaskPatch(status=TaskStatus.DOWNLOADING))
    config.download.max_concurrent = 1
    eng2 = Engine(None, store=engine_store, config=config)
    eng2.scheduler.max_concurrent = 0  # keep it queued: we only look at the recovered status
    await eng2.open()
    try:
        assert (await eng2.repo.get(task.id)).status == TaskStatus.WAITING  # type: ignore[union-attr]
        assert await eng2.repo.integrity_ok()
    finally:
        await eng2.close()


async def test_ten_thousand_tasks_in_one_batch(engine: Engine) -> None:
    specs = [TaskSpec(url=f"http://example.invalid/f{i}.bin") for i in range(10_000)]
    tasks = await engine.create(specs, start=False)
    assert len({t.id for t in tasks}) == 10_000
    assert (await engine.stats()).total == 10_000


async def test_a_write_is_visible_to_the_next_read_while_many_reads_run(engine: Engine) -> None:
    """Reads and writes use separate connections: a read must never work from a snapshot older than
    the last write it follows, however many reads are in flight (the API's create-then-delete did)."""
    await engine.create([TaskSpec(url=f"http://example.invalid/{i}.bin") for i in range(200)], start=False)
    stop = asyncio.Event()

    async def reader() -> None:
        while not stop.is_set():
            await engine.list_tasks(1, 20)
            await engine.get(1)

    readers = [asyncio.create_task(reader()) for _ in range(30)]
    try:
        for i in range(60):
            (task,) = await engine.create([TaskSpec(url=f"http://example.invalid/new-{i}.bin")], start=False)
            assert (await engine.get(task.id)).url.endswith(f"new-{i}.bin")
            await engine.delete(task.id)
            with pytest.raises(TaskNotFound):
                await engine.get(task.id)
    finally:
        stop.set()
        await asyncio.gather(*readers)


@pytest.mark.parametrize("url", ["http://a..b/x", "http://xn--a.com/", f"http://{'a' * 64}.example/"])
async def test_host_names_no_resolver_accepts_are_refused(engine: Engine, url: str) -> None:
    with pytest.raises(InvalidInput, match="not a valid host name"):
        await engine.create([TaskSpec(url=url)], start=False)


@pytest.mark.parametrize("value", [0, 65])
async def test_max_concurrent_outside_the_config_range_changes_nothing(engine: Engine, value: int) -> None:
    before = engine.scheduler.max_concurrent
    with pytest.raises(InvalidInput, match="from 1 to 64"):
        engine.set_max_concurrent(value)
    assert engine.scheduler.max_concurrent == before == engine.config.download.max_concurrent

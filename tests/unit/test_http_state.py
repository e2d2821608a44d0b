from pathlib import Path

from core.downloaders.http_state import RemoteIdentity, SegmentPlan, load_state, save_state


def test_fresh_plan_tiles_the_file() -> None:
    plan = SegmentPlan.fresh(10_000_000, 8)
    assert plan.segments[0].start == 0 and plan.segments[-1].end == 10_000_000
    assert all(a.end == b.start for a, b in zip(plan.segments, plan.segments[1:], strict=False))
    assert len(SegmentPlan.fresh(100, 8).segments) == 1  # tiny files: one connection


def test_work_stealing_splits_the_busiest_segment() -> None:
    plan = SegmentPlan.fresh(16 << 20, 2)
    a, b = plan.take(), plan.take()
    assert a is not None and b is not None
    b.pos = b.end  # b finished; a has 8 MiB left
    plan.release(b)
    stolen = plan.take()
    assert stolen is not None and stolen.start == a.end and stolen.end == 8 << 20
    assert a.end - a.pos >= 3 << 20  # a keeps about half
    a.pos = a.end - 100  # almost done: too small to split
    stolen.pos = stolen.end
    assert plan.take() is None


def test_state_round_trip_and_rejects_gaps(tmp_path: Path) -> None:
    ident = RemoteIdentity("http://x/f", 1000, '"abc"', None)
    plan = SegmentPlan.fresh(1000, 1)
    plan.segments[0].pos = 400
    path = tmp_path / "f.part.json"
    save_state(path, ident, plan)
    loaded = load_state(path)
    assert loaded is not None and loaded[0].matches(ident) and loaded[1].done_bytes == 400
    path.write_text('{"url": "u", "size": 1000, "segments": [[0, 10, 500]]}')
    assert load_state(path) is None  # does not cover the file


def test_identity_matching() -> None:
    a = RemoteIdentity("u", 10, '"v1"', "Mon")
    assert not a.matches(RemoteIdentity("u", 10, '"v2"', "Mon"))
    assert not a.matches(RemoteIdentity("u", 11, '"v1"', "Mon"))
    assert RemoteIdentity("u", 10, 'W/"weak"', "Tue").if_range == "Tue"

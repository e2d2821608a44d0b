"""pool.InOrder and the pack taken as the output: a single .ts VOD is a rename, not a copy.

Segments stored in playlist order make the pack their concatenation; early ones wait in
memory up to a budget, past which the order is given up and the merge copies as before;
a stop flushes what waits. merge() renames the pack only when it holds exactly the
playlist's segments back to back.
"""

from __future__ import annotations

from pathlib import Path

from core.downloaders.hls.merge import Stream, merge
from core.downloaders.hls.playlist import MediaSegment
from core.downloaders.hls.pool import InOrder
from core.downloaders.hls.store import SegmentStore


def stream_of(tmp_path: Path, n: int, first_seq: int = 10) -> Stream:
    store = SegmentStore(tmp_path / "video", ".ts")
    store.scan()
    segments = [(i + 1, MediaSegment(first_seq + i, f"http://x/s{i}.ts", 2.0)) for i in range(n)]
    return Stream("video", "http://x/index.m3u8", segments, store, fmp4=False)


def body(seq: int) -> bytes:
    return bytes([seq]) * (100 + seq)


def seqs(stream: Stream) -> list[int]:
    return [seg.seq for _, seg in stream.segments]


def test_out_of_order_arrivals_are_stored_in_playlist_order(tmp_path: Path) -> None:
    stream = stream_of(tmp_path, 5)
    order = InOrder(stream)
    assert order.save(12, body(12)) == []
    assert order.save(11, body(11)) == []
    assert [s for s, _ in order.save(10, body(10))] == [10, 11, 12]
    assert [s for s, _ in order.save(14, body(14))] == []
    assert [s for s, _ in order.save(13, body(13))] == [13, 14]
    assert order.ordered and stream.store.holds_in_order(seqs(stream))
    assert stream.store.pack_path.read_bytes() == b"".join(body(s) for s in seqs(stream))


def test_past_the_budget_the_order_is_given_up_and_nothing_is_lost(tmp_path: Path) -> None:
    stream = stream_of(tmp_path, 4)
    order = InOrder(stream, budget=200)
    assert order.save(11, body(11)) == []  # 111 bytes wait
    assert sorted(s for s, _ in order.save(12, body(12))) == [11, 12]  # 111 + 112 would pass 200
    assert not order.ordered
    assert [s for s, _ in order.save(10, body(10))] == [10]
    assert [s for s, _ in order.save(13, body(13))] == [13]
    assert set(stream.store.done) == {10, 11, 12, 13}
    assert not stream.store.holds_in_order(seqs(stream))


def test_flush_stores_what_waits(tmp_path: Path) -> None:
    stream = stream_of(tmp_path, 3)
    order = InOrder(stream)
    order.save(12, body(12))
    assert 12 not in stream.store.done
    assert [s for s, _ in order.flush()] == [12]
    assert stream.store.read(12) == body(12)


async def test_merge_renames_an_in_order_pack_and_copies_any_other(tmp_path: Path) -> None:
    logs: list[str] = []
    ordered = stream_of(tmp_path / "a", 3)
    order = InOrder(ordered)
    for seq in (11, 12, 10):
        order.save(seq, body(seq))
    pack = ordered.store.pack_path
    inode = pack.stat().st_ino
    out = await merge([ordered], tmp_path / "a", tmp_path / "a.ts", None, logs.append, take_pack=True)
    assert out.read_bytes() == b"".join(body(s) for s in (10, 11, 12))
    assert out.stat().st_ino == inode and not pack.exists()  # renamed, not copied

    shuffled = stream_of(tmp_path / "b", 3)
    for seq in (11, 12, 10):
        shuffled.store.save(seq, body(seq))
    out = await merge([shuffled], tmp_path / "b", tmp_path / "b.ts", None, logs.append, take_pack=True)
    assert out.read_bytes() == b"".join(body(s) for s in (10, 11, 12))
    assert shuffled.store.pack_path.exists()  # copied: the pack stays for the clean-up

    kept = stream_of(tmp_path / "c", 2)
    for seq in (10, 11):
        kept.store.save(seq, body(seq))
    await merge([kept], tmp_path / "c", tmp_path / "c.ts", None, logs.append)  # take_pack=False: keep_segments
    assert kept.store.pack_path.exists() and kept.store.done.keys() == {10, 11}

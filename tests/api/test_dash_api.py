"""DASH through the native (MediaGo) API: which type names make a DASH task, and what the wire says of it."""

from __future__ import annotations

from tests.api.conftest import Api


async def test_mpd_urls_and_the_dash_type_are_dash_tasks_shown_as_m3u8(api: Api) -> None:
    tasks = await api.create(
        {"type": "m3u8", "url": "https://example.invalid/show/manifest.mpd"},  # MediaGo's m3u8 covers DASH
        {"url": "https://example.invalid/live/stream.mpd?token=1"},  # detected from the URL
        {"type": "dash", "url": "https://example.invalid/watch"},
        {"type": "m3u8", "url": "https://example.invalid/index.m3u8"},
    )
    assert [t["kind"] for t in tasks] == ["dash", "dash", "dash", "hls"]
    assert [t["type"] for t in tasks] == ["m3u8", "m3u8", "m3u8", "m3u8"]
    stored = [await api.engine.get(t["id"]) for t in tasks]
    assert [t.kind.value for t in stored] == ["dash", "dash", "dash", "hls"]

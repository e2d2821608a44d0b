"""fetch.short_name: the fast path (no urlsplit, taken for every segment) names what urlsplit would."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest

from core.downloaders.hls.fetch import short_name
from core.downloaders.hls.playlist import ByteRange


@pytest.mark.parametrize("url", [
    "http://h/a/seg_1.ts", "http://h", "http://h/", "http://h/a/", "http://h/a/b%20c.ts", "http://h/a/b.ts?x=1/2",
    "http://h/a#f/g", "https://h:8/x/y/z.ts", "http://h/a;p", "//h/x", "seg.ts", "http://h/a b.ts",
    " http://h/a/b.ts ", "http://h/a/b\t.ts", "http://h/a/\u00fc.ts", "http://u@h/a;b/c;d",
])
def test_the_same_name_as_from_urlsplit(url: str) -> None:
    assert short_name(url) == (unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or url)


def test_a_byte_range_is_named_too() -> None:
    assert short_name("http://h/v/all.ts", ByteRange(5, 100)) == "all.ts @5+100"

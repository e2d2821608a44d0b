"""The test file server behaves like a real HTTP/1.1 server, and its faults do what they say.

Downloader tests rely on these guarantees, so each one is checked here with a plain client.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.fileserver import FileServer, parse_range, random_bytes

DATA = random_bytes(1 << 20, seed=7)  # 1 MiB


def raw_get(srv: FileServer, path: str, extra: str = "", timeout: float = 5.0) -> tuple[bytes, bytes, str]:
    """Send one GET on a fresh socket; return (head, body, how it ended: "eof" | "reset" | "timeout")."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{extra}\r\n".encode())
        buf = bytearray()
        end = "eof"
        try:
            while chunk := s.recv(65536):
                buf += chunk
        except ConnectionResetError:
            end = "reset"
        except TimeoutError:
            end = "timeout"
    head, _, body = bytes(buf).partition(b"\r\n\r\n")
    return head, body, end


# --------------------------------------------------------------------------- basics


def test_get_and_head(file_server: FileServer) -> None:
    url = file_server.add(
        "/f.bin", DATA, last_modified=1_700_000_000, content_disposition='attachment; filename="x.bin"'
    )
    assert url == file_server.base_url + "/f.bin"
    assert file_server.base_url.startswith("http://127.0.0.1:")
    with httpx.Client() as c:
        r = c.get(url)
        assert r.status_code == 200
        assert r.content == DATA
        assert r.headers["content-length"] == str(len(DATA))
        assert r.headers["accept-ranges"] == "bytes"
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.headers["content-disposition"] == 'attachment; filename="x.bin"'
        assert r.headers["etag"].startswith('"')
        assert r.headers["last-modified"] == email.utils.formatdate(1_700_000_000, usegmt=True)
        h = c.head(url)
        assert h.status_code == 200
        assert h.content == b""
        assert h.headers["content-length"] == str(len(DATA))
        assert h.headers["etag"] == r.headers["etag"]
        assert c.get(file_server.url("/missing")).status_code == 404
        assert c.post(url).status_code == 405
    st = file_server.stats["/f.bin"]
    assert st.requests == 3
    assert st.methods == {"GET": 1, "HEAD": 1, "POST": 1}
    assert st.status_counts == {200: 2, 405: 1}
    assert st.bytes_sent == len(DATA)
    assert file_server.stats[url].requests == 3  # full URL accepted too
    assert file_server.stats["/never"].requests == 0


def test_validators_optional_and_explicit(file_server: FileServer) -> None:
    bare = file_server.add("/bare", b"abc", etag=None)
    tagged = file_server.add("/tagged", b"abc", etag="v1", content_type="text/plain")
    with httpx.Client() as c:
        r = c.get(bare)
        assert "etag" not in r.headers
        assert "last-modified" not in r.headers
        r = c.get(tagged)
        assert r.headers["etag"] == '"v1"'
        assert r.headers["content-type"].startswith("text/plain")


def test_auto_etag_depends_on_content(file_server: FileServer) -> None:
    a = file_server.add("/a", b"same")
    b = file_server.add("/b", b"same")
    c_ = file_server.add("/c", b"other")
    with httpx.Client() as c:
        tags = [c.head(u).headers["etag"] for u in (a, b, c_)]
    assert tags[0] == tags[1] != tags[2]


def test_replace_changes_content_and_validators(file_server: FileServer) -> None:
    url = file_server.add("/f", DATA, last_modified=time.time())
    with httpx.Client() as c:
        before = c.head(url).headers
        file_server.replace("/f", DATA)  # even identical bytes count as a new version
        mid = c.head(url).headers
        file_server.replace("/f", b"new")
        r = c.get(url)
    assert mid["etag"] != before["etag"]
    assert r.headers["etag"] not in (before["etag"], mid["etag"])
    assert email.utils.parsedate_to_datetime(mid["last-modified"]) > email.utils.parsedate_to_datetime(
        before["last-modified"]
    )
    assert r.content == b"new"


def test_empty_file(file_server: FileServer) -> None:
    url = file_server.add("/empty", b"")
    with httpx.Client() as c:
        r = c.get(url)
        assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", "0")
        assert c.get(url, headers={"Range": "bytes=0-"}).status_code == 416


# --------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", (0, 9)),
        ("bytes=10-", (10, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=50-5000", (50, 99)),
        ("bytes=99-99", (99, 99)),
        ("bytes = 1-2", (1, 2)),
        ("bytes=5-1", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=a-b", None),
        ("bytes=-", None),
    ],
)
def test_parse_range(header: str, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


def test_range_requests(file_server: FileServer) -> None:
    url = file_server.add("/r", DATA)
    n = len(DATA)
    with httpx.Client() as c:
        for header, (start, end) in [
            ("bytes=0-99", (0, 99)),
            ("bytes=1000-", (1000, n - 1)),
            ("bytes=-4096", (n - 4096, n - 1)),
            (f"bytes=5-{n + 100}", (5, n - 1)),
        ]:
            r = c.get(url, headers={"Range": header})
            assert r.status_code == 206, header
            assert r.headers["content-range"] == f"bytes {start}-{end}/{n}"
            assert r.headers["content-length"] == str(end - start + 1)
            assert r.content == DATA[start : end + 1]
        r = c.get(url, headers={"Range": f"bytes={n}-"})
        assert r.status_code == 416
        assert r.headers["content-range"] == f"bytes */{n}"
        assert c.get(url, headers={"Range": "bytes=-0"}).status_code == 416
        r = c.get(url, headers={"Range": "bytes=0-1,4-5"})  # multi-range is ignored, not refused
        assert (r.status_code, len(r.content)) == (200, n)
        h = c.head(url, headers={"Range": "bytes=10-19"})
        assert (h.status_code, h.headers["content-length"], h.content) == (206, "10", b"")
    st = file_server.stats["/r"]
    assert st.range_requests == 8
    assert st.range_headers[:2] == ["bytes=0-99", "bytes=1000-"]
    assert st.status_counts == {206: 5, 416: 2, 200: 1}


def test_if_range(file_server: FileServer) -> None:
    lm = 1_700_000_000.0
    url = file_server.add("/ir", DATA, last_modified=lm)
    rng = {"Range": "bytes=100-199"}
    with httpx.Client() as c:
        etag = c.head(url).headers["etag"]
        r = c.get(url, headers={**rng, "If-Range": etag})
        assert (r.status_code, r.content) == (206, DATA[100:200])
        r = c.get(url, headers={**rng, "If-Range": '"something-else"'})
        assert (r.status_code, r.content) == (200, DATA)
        r = c.get(url, headers={**rng, "If-Range": "W/" + etag})  # weak never matches
        assert r.status_code == 200
        r = c.get(url, headers={**rng, "If-Range": email.utils.formatdate(lm, usegmt=True)})
        assert r.status_code == 206
        r = c.get(url, headers={**rng, "If-Range": email.utils.formatdate(lm - 60, usegmt=True)})
        assert r.status_code == 200
        file_server.replace("/ir", DATA[::-1])
        r = c.get(url, headers={**rng, "If-Range": etag})  # file changed under a resume
        assert (r.status_code, r.content) == (200, DATA[::-1])
        assert r.headers["etag"] != etag
    assert file_server.stats["/ir"].if_range_headers[0] == etag


def test_ranges_disabled(file_server: FileServer) -> None:
    url = file_server.add("/nr", DATA, ranges=False)
    with httpx.Client() as c:
        r = c.get(url, headers={"Range": "bytes=0-9"})
        assert (r.status_code, r.content) == (200, DATA)
        assert "accept-ranges" not in r.headers
        assert "content-range" not in r.headers
        assert r.headers["content-length"] == str(len(DATA))
        assert c.get(url, headers={"Range": f"bytes={len(DATA) + 5}-"}).status_code == 200


def test_no_length_is_chunked(file_server: FileServer) -> None:
    url = file_server.add("/nl", DATA, send_length=False)
    with httpx.Client() as c:
        r = c.get(url, headers={"Range": "bytes=0-9"})
        assert (r.status_code, r.content) == (200, DATA)
        assert "content-length" not in r.headers
        assert r.headers["transfer-encoding"] == "chunked"
        assert "accept-ranges" not in r.headers
        h = c.head(url)
        assert h.status_code == 200
        assert "content-length" not in h.headers


# --------------------------------------------------------------------------- faults


def test_fail_status_burst_then_ok(file_server: FileServer) -> None:
    url = file_server.add("/s", DATA)
    file_server.faults.fail_status("/s", status=503, times=3)
    with httpx.Client() as c:
        codes = [c.get(url).status_code for _ in range(4)]
    assert codes == [503, 503, 503, 200]
    assert file_server.stats["/s"].status_counts == {503: 3, 200: 1}


def test_fail_status_retry_after_and_head(file_server: FileServer) -> None:
    url = file_server.add("/s", DATA)
    file_server.faults.fail_status("/s", status=429, times=2, retry_after=2)
    with httpx.Client() as c:
        h = c.head(url)
        r = c.get(url)
        ok = c.get(url)
    assert (h.status_code, h.headers["retry-after"]) == (429, "2")
    assert (r.status_code, r.headers["retry-after"]) == (429, "2")
    assert len(r.content) < 100
    assert ok.status_code == 200
    assert "retry-after" not in ok.headers
    file_server.faults.fail_status("/s", status=503, retry_after=0.5)
    assert httpx.get(url).headers["retry-after"] == "0.5"


def test_global_faults_and_ordering(file_server: FileServer) -> None:
    a = file_server.add("/a", b"a" * 1000)
    b = file_server.add("/b", b"b" * 1000)
    file_server.faults.fail_status(None, status=500, times=2)
    file_server.faults.fail_status("/a", status=502, times=1)
    with httpx.Client() as c:
        assert [c.get(a).status_code, c.get(b).status_code, c.get(a).status_code, c.get(b).status_code] == [
            502,  # path rule first
            500,
            500,
            200,
        ]
        file_server.faults.fail_status("/a", status=503, times=None)  # until cleared
        assert {c.get(a).status_code for _ in range(5)} == {503}
        file_server.faults.clear()
        assert c.get(a).status_code == 200


def test_reset_after(file_server: FileServer) -> None:
    url = file_server.add("/big", DATA)
    file_server.faults.reset_after("/big", nbytes=100_000, times=1)
    with httpx.Client() as c, pytest.raises(httpx.TransportError):
        c.get(url)
    assert file_server.stats["/big"].bytes_sent == 100_000
    assert httpx.get(url).content == DATA  # only `times` responses are hit

    file_server.faults.reset_after(None, nbytes=12_345, times=1)
    head, body, end = raw_get(file_server, "/big")
    assert head.startswith(b"HTTP/1.1 200")
    assert f"Content-Length: {len(DATA)}".encode() in head
    assert (len(body), end) == (12_345, "reset")
    assert body == DATA[:12_345]


def test_reset_after_on_range(file_server: FileServer) -> None:
    file_server.add("/big", DATA)
    file_server.faults.reset_after("/big", nbytes=10, times=1)
    head, body, end = raw_get(file_server, "/big", "Range: bytes=1000-\r\n")
    assert head.startswith(b"HTTP/1.1 206")
    assert (body, end) == (DATA[1000:1010], "reset")


def test_truncate(file_server: FileServer) -> None:
    url = file_server.add("/t", DATA)
    file_server.faults.truncate("/t", nbytes=50_000, times=2)
    with httpx.Client() as c, pytest.raises(httpx.RemoteProtocolError):
        c.get(url)
    head, body, end = raw_get(file_server, "/t")
    assert f"Content-Length: {len(DATA)}".encode() in head
    assert (body, end) == (DATA[:50_000], "eof")  # clean close, short body
    assert httpx.get(url).content == DATA


def test_truncate_chunked(file_server: FileServer) -> None:
    url = file_server.add("/tc", DATA, send_length=False)
    file_server.faults.truncate("/tc", nbytes=1000, times=1)
    with httpx.Client() as c, pytest.raises(httpx.RemoteProtocolError):
        c.get(url)  # no terminating zero chunk
    assert file_server.stats["/tc"].bytes_sent == 1000


@pytest.mark.serial  # alone: times a 0.6 s stall
def test_stall(file_server: FileServer) -> None:
    url = file_server.add("/st", DATA)
    file_server.faults.stall("/st", after_bytes=4096, seconds=0.6, times=2)
    t0 = time.monotonic()
    _, body, end = raw_get(file_server, "/st")
    elapsed = time.monotonic() - t0
    assert (body, end) == (DATA[:4096], "eof")
    assert 0.5 <= elapsed < 3
    with pytest.raises(httpx.ReadTimeout), httpx.Client(timeout=httpx.Timeout(5, read=0.2)) as c:
        c.get(url)
    assert httpx.get(url).content == DATA


@pytest.mark.serial  # alone: times the throttle
def test_throttle(file_server: FileServer) -> None:
    url = file_server.add("/th", DATA[:200_000])
    file_server.faults.throttle("/th", 400_000)
    t0 = time.monotonic()
    assert httpx.get(url).content == DATA[:200_000]
    one = time.monotonic() - t0
    assert 0.4 <= one < 3  # 0.5 s at the rate (load only slows it)

    # per connection: two parallel streams take about as long as one (a shared rate would take twice as long)
    t0 = time.monotonic()
    threads = [threading.Thread(target=httpx.get, args=(url,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    two = time.monotonic() - t0
    assert 0.4 <= two < 1.5 * one, (two, one)

    file_server.faults.throttle("/th", None)
    t0 = time.monotonic()
    httpx.get(url)
    assert time.monotonic() - t0 < 0.5 * one


@pytest.mark.serial  # alone: times the throttle
def test_throttle_lift_mid_stream(file_server: FileServer) -> None:
    url = file_server.add("/th", DATA)
    file_server.faults.throttle(None, 100_000)  # 1 MiB would take ~10 s
    got = 0
    t0 = time.monotonic()
    with httpx.stream("GET", url) as r:
        for chunk in r.iter_raw():
            got += len(chunk)
            if got >= 20_000:
                file_server.faults.throttle(None, None)
    assert got == len(DATA)
    assert time.monotonic() - t0 < 3


# --------------------------------------------------------------------------- scale and threading


async def test_64_concurrent_keepalive_ranges(file_server: FileServer) -> None:
    data = random_bytes(32 << 20, seed=3)
    url = file_server.add("/many", data)
    part = len(data) // 64
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    file_server.faults.throttle("/many", 1 << 20)  # ~0.5 s per part keeps all 64 in flight at once
    async with httpx.AsyncClient(limits=limits, timeout=30) as c:

        async def fetch(i: int) -> bytes:
            r = await c.get(url, headers={"Range": f"bytes={i * part}-{(i + 1) * part - 1}"})
            assert r.status_code == 206
            return r.content

        parts = await asyncio.gather(*(fetch(i) for i in range(64)))
        assert b"".join(parts) == data
        file_server.faults.throttle("/many", None)
        await asyncio.gather(*(fetch(i) for i in range(64)))  # second round reuses the sockets
    st = file_server.stats["/many"]
    assert st.requests == 128
    assert st.max_active == 64
    assert st.connections == 64
    assert st.bytes_sent == 2 * len(data)


async def test_large_streamed_body(file_server: FileServer) -> None:
    data = random_bytes(200 << 20, seed=11)
    url = file_server.add("/huge", data)
    digest = hashlib.sha256()
    async with httpx.AsyncClient(timeout=60) as c, c.stream("GET", url) as r:
        async for chunk in r.aiter_raw():
            digest.update(chunk)
    assert digest.digest() == hashlib.sha256(data).digest()


def test_serves_a_subprocess(file_server: FileServer) -> None:
    url = file_server.add("/sub", DATA)
    code = (
        "import hashlib, sys, urllib.request\n"
        "print(hashlib.sha256(urllib.request.urlopen(sys.argv[1]).read()).hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == hashlib.sha256(DATA).hexdigest()


async def test_async_context_manager() -> None:
    async with FileServer() as srv:
        url = srv.add("x", b"hello")  # leading slash optional
        async with httpx.AsyncClient() as c:
            assert (await c.get(url)).text == "hello"


def test_stop_and_restart_on_same_port() -> None:
    srv = FileServer()
    url = srv.add("/f", b"data")  # port reserved before start
    with srv:
        assert httpx.get(url).content == b"data"
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)
    with srv:
        assert httpx.get(url).content == b"data"
    assert srv.stats["/f"].requests == 2
    srv.reset_stats()
    assert srv.stats["/f"].requests == 0


def test_stop_with_stalled_response_is_quick() -> None:
    srv = FileServer().start()
    srv.add("/s", DATA)
    srv.faults.stall("/s", after_bytes=10, seconds=60)
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"GET /s HTTP/1.1\r\nHost: t\r\n\r\n")
        s.recv(100)
        t0 = time.monotonic()
        srv.stop()
        assert time.monotonic() - t0 < 3


# --------------------------------------------------------------------------- directories


def test_add_dir(file_server: FileServer, tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    (tmp_path / "index.m3u8").write_text("#EXTM3U\n")
    seg = random_bytes(5000, seed=1)
    (tmp_path / "v1" / "seg 0.ts").write_bytes(seg)
    (tmp_path.parent / "secret.txt").write_text("no")
    base = file_server.add_dir("/hls", tmp_path)
    assert base == file_server.base_url + "/hls/"
    with httpx.Client() as c:
        r = c.get(base + "index.m3u8")
        assert (r.status_code, r.text) == (200, "#EXTM3U\n")
        assert r.headers["content-type"] == "application/vnd.apple.mpegurl"
        seg_url = file_server.url("/hls/v1/seg 0.ts")
        r = c.get(seg_url, headers={"Range": "bytes=100-199"})
        assert (r.status_code, r.content) == (206, seg[100:200])
        assert r.headers["content-type"] == "video/mp2t"
        assert "etag" in r.headers
        assert c.get(base + "nope.ts").status_code == 404
        (tmp_path / "index.m3u8").write_text("#EXTM3U\n#EXT-X-ENDLIST\n")  # live playlist update
        assert c.get(base + "index.m3u8").text.endswith("ENDLIST\n")
    head, _, _ = raw_get(file_server, "/hls/../secret.txt")
    assert not head.startswith(b"HTTP/1.1 200")
    assert file_server.stats["/hls/index.m3u8"].requests == 2


def test_random_bytes_deterministic() -> None:
    assert random_bytes(1000, seed=1) == random_bytes(1000, seed=1)
    assert random_bytes(1000, seed=1) != random_bytes(1000, seed=2)
    assert len(random_bytes(12_345, seed=5)) == 12_345


def test_random_bytes_fixture(request: pytest.FixtureRequest) -> None:
    fixture = request.getfixturevalue("random_bytes")
    assert fixture(64, 9) == random_bytes(64, seed=9)

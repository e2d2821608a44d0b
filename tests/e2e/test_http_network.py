"""Proxies (HTTP and SOCKS5, with credentials that need percent-encoding) and TLS options."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import pytest

from core.engine import Engine
from core.errors import InvalidInput
from core.models import TaskOptions, TaskSpec, TaskStatus
from core.validation import normalize_proxy
from tests.support.engine import engine_config
from tests.support.fileserver import FileServer, random_bytes
from tests.support.proxies import HttpProxy, Socks5Proxy
from tests.support.tls import self_signed_context

USER, PASSWORD = "me@home", "p:ss/w%rd"  # characters that must be percent-encoded in a URL


config_for = partial(engine_config, retries=1)

async def fetch(tmp_path: Path, url: str, **options: object):
    async with Engine(tmp_path / "db.sqlite", config_for(tmp_path)) as engine:
        (task,) = await engine.create([TaskSpec(url=url, options=TaskOptions(**options))])  # type: ignore[arg-type]
        (done,) = await asyncio.wait_for(engine.wait_finished([task.id]), 60)
        return done


def raw_proxy_url(scheme: str, port: int) -> str:
    # As a user would type it: credentials unencoded; fetchdeck encodes them.
    return f"{scheme}://{USER}:{PASSWORD}@127.0.0.1:{port}"


def test_proxy_credentials_are_percent_encoded() -> None:
    assert normalize_proxy("http://me@home:p:ss/w%rd@127.0.0.1:3128") is not None
    assert normalize_proxy("socks5h://u:p@h:1080") == "socks5://u:p@h:1080"
    with pytest.raises(InvalidInput):
        normalize_proxy("ftp://h:1")


@pytest.mark.parametrize("kind", ["http", "socks5"])
async def test_download_through_proxy_with_credentials(tmp_path: Path, kind: str) -> None:
    data = random_bytes(3 << 20, seed=21)
    proxy_cls = HttpProxy if kind == "http" else Socks5Proxy
    with FileServer() as srv, proxy_cls(USER, PASSWORD) as proxy:
        url = srv.add("/p.bin", data)
        done = await fetch(tmp_path, url, proxy=f"{kind}://{_enc(USER)}:{_enc(PASSWORD)}@127.0.0.1:{proxy.port}",
                           connections=4)
        assert done.status == TaskStatus.SUCCESS, done.error
        assert Path(done.file or "").read_bytes() == data
        assert proxy.relayed >= 1 and proxy.rejected == 0


async def test_wrong_proxy_password_fails_clearly(tmp_path: Path) -> None:
    with FileServer() as srv, HttpProxy(USER, PASSWORD) as proxy:
        url = srv.add("/p.bin", b"x" * 100)
        done = await fetch(tmp_path, url, proxy=f"http://{_enc(USER)}:wrong@127.0.0.1:{proxy.port}")
        assert done.status == TaskStatus.FAILED
        assert done.error and "407" in done.error


async def test_self_signed_tls_needs_insecure(tmp_path: Path) -> None:
    data = random_bytes(1 << 20, seed=22)
    with FileServer(ssl_context=self_signed_context(tmp_path)) as srv:
        url = srv.add("/t.bin", data)
        assert url.startswith("https://")
        refused = await fetch(tmp_path / "a", url)
        assert refused.status == TaskStatus.FAILED
        assert refused.error and "certificate" in refused.error.lower()
        accepted = await fetch(tmp_path / "b", url, insecure=True)
        assert accepted.status == TaskStatus.SUCCESS, accepted.error
        assert Path(accepted.file or "").read_bytes() == data


def _enc(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")

"""`[hosts."NAME"]` keys match the URL's host name or IP whatever port, case, brackets or trailing dot
either side is written with (core/config.py host_key, core/store/rows.py host_of)."""

from __future__ import annotations

import pytest

from core.config import HostLimitConfig, HostsConfig, host_key
from core.store.base import HostLimit
from core.store.rows import host_of


@pytest.mark.parametrize(("key", "url"), [
    ("example.com", "https://example.com/a.bin"),
    ("Example.COM:8443", "http://example.com:8080/a.bin"),
    ("example.com.", "https://EXAMPLE.com./a.bin"),
    ("10.0.0.7", "http://10.0.0.7:9000/a.bin"),
    ("[::1]:80", "http://[::1]:8080/a.bin"),
    ("::1", "http://[::1]/a.bin"),
])
def test_a_key_matches_its_host_whatever_the_port(key: str, url: str) -> None:
    hosts = HostsConfig(limits={key: HostLimitConfig(connections=3, tasks=1), "*": HostLimitConfig(tasks=9)})
    caps = hosts.caps()
    assert caps.of(host_of(url)) == HostLimit(connections=3, tasks=1)
    assert caps.of(host_of("https://other.example/x")) == HostLimit(tasks=9)
    assert host_key(key) == host_of(url)

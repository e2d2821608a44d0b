"""The S3 tests' server: one real SeaweedFS S3 gateway per test session, a fresh bucket per test
(the fixtures live in tests/support/s3server.py, so another test package can import them too)."""

from tests.support.s3server import bucket, s3, s3_server

__all__ = ["bucket", "s3", "s3_server"]

"""S3-compatible object storage as a download destination (issue 13): the package's public surface.

- `is_s3_url`, `S3Location`: `s3://bucket/key` values (core/storage/location.py);
- `S3Settings.from_config(config.storage.s3, environ)`: endpoint, region and credentials (settings.py);
- `S3Client`: the async client an engine opens once and closes with itself (client.py; aiobotocore,
  imported only when an s3:// destination is used);
- `S3Target`: what a download run gets in `DownloadContext.remote` for an s3:// destination;
- `part_size_for`: the part size rule (≥ 8 MiB, ≤ 10,000 parts); `source_metadata`: an object's metadata.

Everything else in the package is internal; import from here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.storage.client import MAX_PARTS, MIN_PART, Attempts, ObjectInfo, S3Client, once, part_size_for
from core.storage.location import S3Location, is_s3_url, source_metadata
from core.storage.settings import S3Section, S3Settings


@dataclass(frozen=True, slots=True)
class S3Target:
    """An s3:// destination for one run: the engine's client, and `claim(filename)`, which decides (once)
    the object's key under the destination prefix (de-duplicated, recorded as the task's `file`)."""

    client: S3Client
    claim: Callable[[str], Awaitable[S3Location]]


__all__ = [
    "MAX_PARTS",
    "MIN_PART",
    "Attempts",
    "ObjectInfo",
    "S3Client",
    "S3Location",
    "S3Section",
    "S3Settings",
    "S3Target",
    "is_s3_url",
    "once",
    "part_size_for",
    "source_metadata",
]

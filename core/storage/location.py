"""Where an object lives in an S3-compatible store: `s3://bucket/key` URLs, parsed, checked and joined.

A folder value (a task's folder, `download.dir`) may be `s3://bucket/prefix`; a task's `file` is then
`s3://bucket/key`. A key here is a `/`-separated path without empty, `.` or `..` segments (a prefix is a key
without its last segment's file name); the URL form is what the engine stores and shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from core.errors import InvalidInput

SCHEME = "s3://"
MAX_KEY_BYTES = 1024
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_LIKE = re.compile(r"\d+\.\d+\.\d+\.\d+")


def is_s3_url(value: str | None) -> bool:
    """True if `value` is meant as an S3 location (`s3://…`, any case), well-formed or not."""
    return value is not None and value.strip()[:5].lower() == SCHEME


def _segments(path: str, what: str, url: str) -> list[str]:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    for part in parts:
        if part == "..":
            raise InvalidInput(f"invalid S3 location {url!r}: {what} may not contain '..'")
        if any(ord(c) < 32 or ord(c) == 127 for c in part):
            raise InvalidInput(f"invalid S3 location {url!r}: {what} contains control characters")
    return parts


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    key: str = ""  # an object key or a prefix; "" is the bucket's root

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """`s3://bucket[/key]` → S3Location; InvalidInput (a sentence saying why) for anything malformed."""
        text = (url or "").strip()
        if not is_s3_url(text):
            raise InvalidInput(f"invalid S3 location {url!r}: must look like s3://bucket/prefix")
        rest = text[len(SCHEME):]
        bucket, _, path = rest.partition("/")
        if not bucket:
            raise InvalidInput(f"invalid S3 location {url!r}: no bucket name")
        check_bucket(bucket, url)
        if "?" in path or "#" in path:
            raise InvalidInput(f"invalid S3 location {url!r}: '?' and '#' are not allowed")
        return cls(bucket, "/".join(_segments(path, "the key", url))).checked(url)

    def checked(self, url: str | None = None) -> S3Location:
        if len(self.key.encode()) > MAX_KEY_BYTES:
            shown = (url or self.url)[:120]
            raise InvalidInput(f"invalid S3 location {shown!r}: the key is over {MAX_KEY_BYTES} bytes")
        return self

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}" if self.key else f"{SCHEME}{self.bucket}"

    @property
    def name(self) -> str:
        """The key's last segment (an object's file name); "" at the bucket's root."""
        return self.key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> S3Location:
        return S3Location(self.bucket, self.key.rpartition("/")[0])

    def join(self, *relative: str) -> S3Location:
        """This prefix with relative `/`-separated paths appended (no '..' allowed: InvalidInput)."""
        parts = [self.key] if self.key else []
        for rel in relative:
            parts.extend(_segments(rel, "a relative path", rel))
        return S3Location(self.bucket, "/".join(parts)).checked()

    def __str__(self) -> str:
        return self.url


def check_bucket(bucket: str, url: str = "") -> str:
    """The bucket name if it follows S3's naming rules (3-63 of a-z 0-9 . -), else InvalidInput."""
    where = url or f"s3://{bucket}"
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or _IP_LIKE.fullmatch(bucket):
        raise InvalidInput(
            f"invalid S3 location {where!r}: bucket {bucket!r} is not a valid bucket name "
            "(3-63 characters: lower-case letters, digits, '.' and '-')"
        )
    return bucket


_METADATA_SAFE = "".join(chr(c) for c in range(33, 127) if chr(c) != "%")


def source_metadata(url: str, etag: str | None) -> dict[str, str]:
    """An object's metadata (x-amz-meta-*): `source-url`, and `source-etag` when the origin sent one;
    header-safe (non-ASCII and spaces percent-encoded)."""
    meta = {"source-url": quote(url, safe=_METADATA_SAFE)}
    if etag:
        meta["source-etag"] = quote(etag, safe=_METADATA_SAFE)
    return meta

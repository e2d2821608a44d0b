"""core.storage against a real SeaweedFS S3 server: locations, settings, the client's requests and errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core.config import S3Config
from core.errors import InvalidInput, StorageError, StorageUnreachable, UploadGone
from core.storage import MAX_PARTS, MIN_PART, S3Client, S3Location, S3Settings, is_s3_url, part_size_for
from tests.support.fileserver import random_bytes
from tests.support.s3server import S3Server, _free_ports


def settings_for(s3: S3Server) -> S3Settings:
    return S3Settings.from_config(S3Config(), s3.env())


@pytest.mark.parametrize("bad", [
    "s3://", "s3:///key", "s3://Bad_Bucket/x", "s3://ab/x", "s3://bucket/../x", "s3://bucket/a?b",
    "s3://bucket/a\x00b", "http://bucket/x", "s3://192.168.1.1/x", "s3://" + "b" * 64 + "/x",
    "s3://bucket/" + "k" * 1100,
])
def test_malformed_locations_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(InvalidInput, match="invalid S3 location"):
        S3Location.parse(bad)


def test_locations_parse_and_join() -> None:
    loc = S3Location.parse(" S3://media.bucket/shows//2024/./ep1.mp4 ")
    assert (loc.bucket, loc.key, loc.name) == ("media.bucket", "shows/2024/ep1.mp4", "ep1.mp4")
    assert loc.url == "s3://media.bucket/shows/2024/ep1.mp4"
    assert loc.parent.url == "s3://media.bucket/shows/2024"
    root = S3Location.parse("s3://media-bucket")
    assert root.key == "" and root.join("a/b", "c.bin").url == "s3://media-bucket/a/b/c.bin"
    with pytest.raises(InvalidInput):
        root.join("../escape")
    assert is_s3_url("s3://x") and is_s3_url("S3://x/y") and not is_s3_url("/srv/s3") and not is_s3_url(None)


def test_settings_fall_back_to_the_aws_variables() -> None:
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000/", "AWS_REGION": "eu-west-3",
           "AWS_ACCESS_KEY_ID": "env-key", "AWS_SECRET_ACCESS_KEY": "env-secret"}
    s = S3Settings.from_config(S3Config(), env)
    assert (s.endpoint_url, s.region, s.access_key_id, s.secret_access_key) == (
        "http://127.0.0.1:9000", "eu-west-3", "env-key", "env-secret")
    own = S3Settings.from_config(S3Config(endpoint_url="https://s3.example", access_key_id="cfg"), env)
    assert (own.endpoint_url, own.access_key_id, own.secret_access_key) == ("https://s3.example", "cfg", "env-secret")
    assert S3Settings.from_config(S3Config(), {}).region == "us-east-1"
    assert "env-secret" not in repr(s)
    with pytest.raises(InvalidInput):
        S3Settings.from_config(S3Config(endpoint_url="ftp://x"), {})


def test_part_sizes_respect_the_s3_limits() -> None:
    for size in (0, 1, MIN_PART, 80 << 30, 200 << 30, 5 << 40):
        part = part_size_for(size)
        assert part >= MIN_PART and part % (1 << 20) == 0
        assert -(-size // part) <= MAX_PARTS


async def test_multipart_step_by_step_and_head(s3: S3Server, bucket: str) -> None:
    client = await S3Client(settings_for(s3)).open()
    try:
        loc = S3Location(bucket, "dir/obj.bin")
        data = random_bytes(11 << 20, seed=3)
        upload = await client.create_multipart(loc, {"source-url": "http://127.0.0.1/x", "source-etag": '"e1"'})
        first = await client.upload_part(loc, upload, 1, data[: 6 << 20])
        assert await client.list_parts(loc, upload) == {1: first}
        second = await client.upload_part(loc, upload, 2, data[6 << 20:])
        await client.complete(loc, upload, {1: first, 2: second})
        assert s3.get(bucket, "dir/obj.bin") == data
        info = await client.head(loc)
        assert info is not None and info.size == len(data)
        assert info.metadata == {"source-url": "http://127.0.0.1/x", "source-etag": '"e1"'}
        assert await client.head(S3Location(bucket, "nothing")) is None
        assert not await client.exists(S3Location(bucket, "nothing"))
        with pytest.raises(UploadGone):
            await client.list_parts(loc, upload)  # completed: no longer an upload
    finally:
        await client.close()


async def test_upload_file_streams_parts_from_disk(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = random_bytes(20 << 20, seed=5)
    path.write_bytes(data)
    sent: list[int] = []
    client = await S3Client(settings_for(s3)).open()
    try:
        await client.upload_file(path, S3Location(bucket, "up/big.bin"), {"source-url": "http://o/big.bin"},
                                 progress=sent.append, concurrency=2)
        small = tmp_path / "small.txt"
        small.write_bytes(b"tiny")
        await client.upload_file(small, S3Location(bucket, "up/small.txt"), {})
    finally:
        await client.close()
    assert hashlib.sha256(s3.get(bucket, "up/big.bin")).digest() == hashlib.sha256(data).digest()
    assert s3.head(bucket, "up/big.bin")["ETag"].endswith('-3"')  # three parts of 8 MiB at most
    assert sorted(sent) == [4 << 20, 8 << 20, 8 << 20]
    assert s3.metadata(bucket, "up/big.bin") == {"source-url": "http://o/big.bin"}
    assert s3.get(bucket, "up/small.txt") == b"tiny"
    assert s3.uploads(bucket) == []


async def test_errors_read_as_reasons(s3: S3Server, bucket: str) -> None:
    client = await S3Client(settings_for(s3)).open()
    try:
        with pytest.raises(StorageError, match="S3 bucket 'no-such-bucket' does not exist") as missing:
            await client.create_multipart(S3Location("no-such-bucket", "k"), {})
        assert not missing.value.retryable
    finally:
        await client.close()
    wrong = S3Settings(s3.endpoint, s3.region, s3.access_key, "not-the-secret")
    client = await S3Client(wrong).open()
    try:
        with pytest.raises(StorageError, match="refused") as refused:
            await client.create_multipart(S3Location(bucket, "k"), {})
        assert not refused.value.retryable
    finally:
        await client.close()
    port = _free_ports(1)[0]
    client = await S3Client(S3Settings(f"http://127.0.0.1:{port}", "us-east-1", "k", "s")).open()
    try:
        with pytest.raises(StorageUnreachable) as down:
            await client.create_multipart(S3Location(bucket, "k"), {})
        assert str(down.value) == f"S3 store unreachable at http://127.0.0.1:{port}: connection refused"
        assert down.value.retryable and down.value.unreachable
    finally:
        await client.close()

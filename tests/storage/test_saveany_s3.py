"""SaveAny-Bot's `storage` naming an S3 storage (`[api] storages = ["bucket=s3://bucket/prefix"]`): tasks created
through its API land in the S3 server (real SeaweedFS), with the endpoint and keys taken from the AWS_* variables."""

from __future__ import annotations

import hashlib

import pytest

from server.storages import parse_storages, task_folder
from tests.api.compat_support import wait_for
from tests.api.conftest import Api, ApiFactory, make_api
from tests.support.fileserver import FileServer, random_bytes
from tests.support.s3server import S3Server

__all__ = ["make_api"]
AUTH = {"Authorization": "Bearer sa-token"}


def test_s3_storages_parse_and_name_their_prefix() -> None:
    from pathlib import Path

    from core.errors import InvalidInput

    storages = parse_storages(["local=", "bucket=s3://media-bucket/incoming/"], Path("/srv/dl"))
    s3 = storages["bucket"]
    assert (s3.type, s3.folder, s3.path) == ("s3", "s3://media-bucket/incoming", None)
    assert task_folder(s3, "shows/2024") == "s3://media-bucket/incoming/shows/2024"
    assert task_folder(s3, "") == "s3://media-bucket/incoming"
    assert storages["local"].type == "local"
    with pytest.raises(InvalidInput, match="invalid S3 location"):
        parse_storages(["bad=s3://No_Such"], Path("/srv/dl"))


async def test_saveany_tasks_with_an_s3_storage_land_in_s3(
    make_api: ApiFactory, s3: S3Server, bucket: str, file_server: FileServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    api: Api = await make_api(token="sa-token", api={"storages": ["local=", f"bucket=s3://{bucket}/incoming"]})
    api.client.headers.update(AUTH)
    listed = (await api.client.get("/api/v1/storages")).json()
    assert {"name": "bucket", "type": "s3"} in listed["storages"]
    one, two = random_bytes(6_000_000, seed=31), random_bytes(300_000, seed=32)
    urls = [file_server.add("/d/one.bin", one), file_server.add("/d/two.bin", two)]
    created = await api.client.post("/api/v1/tasks", json={
        "type": "directlinks", "storage": "bucket", "path": "today", "params": {"urls": urls}})
    assert created.status_code == 201, created.text
    task_id = created.json()["task_id"]

    async def completed() -> dict[str, object] | None:
        task = (await api.client.get(f"/api/v1/tasks/{task_id}")).json()
        assert task["status"] != "failed", task
        return task if task["status"] == "completed" else None

    done = await wait_for(completed, timeout=60)
    assert done["storage"] == "bucket" and done["path"] == "today"
    assert s3.keys(bucket) == ["incoming/today/one.bin", "incoming/today/two.bin"]
    assert hashlib.sha256(s3.get(bucket, "incoming/today/one.bin")).digest() == hashlib.sha256(one).digest()
    assert s3.get(bucket, "incoming/today/two.bin") == two
    assert s3.metadata(bucket, "incoming/today/one.bin")["source-url"] == urls[0]
    # A transfer copies out of local storages only.
    refused = await api.client.post("/api/v1/tasks", json={
        "type": "transfer", "storage": "local", "params": {
            "source_storage": "bucket", "source_path": "today", "target_storage": "local", "target_path": ""}})
    assert refused.status_code == 400, refused.text
    assert refused.json()["message"] == "failed to list source files: storage bucket is an S3 storage"

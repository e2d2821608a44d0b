"""SaveAny-Bot storages (named folders from `[api] storages`) and the `transfer` backend.

`[api] storages = ["local=", "media=/srv/media", "bucket=s3://bucket/prefix"]`: a relative dir is under the
download dir, an absolute one must be inside the download dir or one of
`download.allowed_roots` (the engine refuses anything else); an `s3://bucket/prefix`
is an S3 storage (type "s3"): its tasks' folders are that prefix, so they land in
the S3-compatible store (core/storage). Nothing configured: one storage, `local`,
the download dir itself. A transfer copies out of a local storage only.

A transfer task is an engine task with `options.backend = "transfer"`, URL
`transfer://<source storage>/<source path>` (what clients see) and the
source's absolute path in `backend_options["source"]`. It copies the source
(a file, or a folder with everything in it) into the task's folder (the target
storage and path) under the source's name, through a `.part` name renamed at
the end, reporting bytes as it goes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.downloaders.base import DownloadContext
from core.errors import DownloadError, InvalidInput
from core.models import Task
from core.naming import sanitize_folder
from core.storage import S3Location, is_s3_url

if TYPE_CHECKING:
    from core.downloaders import DownloaderRegistry

CHUNK = 1 << 20
SCHEME = "transfer://"


@dataclass(frozen=True, slots=True)
class Storage:
    name: str
    type: str
    folder: str  # what the engine stores as the task folder for the storage root ("", absolute or s3://)
    path: Path | None  # absolute; None for an S3 storage (no local files)


def parse_storages(entries: list[str], download_root: Path) -> dict[str, Storage]:
    out: dict[str, Storage] = {}
    for entry in entries:
        name, sep, where = entry.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InvalidInput(f"api.storages: {entry!r} is not name=dir")
        where = where.strip()
        if is_s3_url(where):
            try:
                location = S3Location.parse(where)
            except InvalidInput as exc:
                raise InvalidInput(f"api.storages: {entry!r}: {exc}") from None
            out[name] = Storage(name=name, type="s3", folder=location.url, path=None)
            continue
        if where and Path(where).expanduser().is_absolute():
            path = Path(where).expanduser().resolve()
            folder = str(path)
        else:
            folder = sanitize_folder(where)
            path = (download_root / folder).resolve()
        out[name] = Storage(name=name, type="local", folder=folder, path=path)
    if not out:
        out["local"] = Storage(name="local", type="local", folder="", path=download_root)
    return out


def task_folder(storage: Storage, sub: str | None) -> str:
    """The engine folder for a path inside a storage."""
    rel = sanitize_folder(sub)
    if not storage.folder:
        return rel
    if storage.type == "s3":
        return S3Location.parse(storage.folder).join(rel).url
    if Path(storage.folder).is_absolute():
        return str(Path(storage.folder, rel)) if rel else storage.folder
    return f"{storage.folder}/{rel}" if rel else storage.folder


def source_path(storage: Storage, sub: str | None) -> Path:
    """An existing path inside a storage, holding at least one file (InvalidInput otherwise)."""
    if storage.path is None:
        raise InvalidInput(f"storage {storage.name!r} is an S3 storage; transfers copy from local storages only")
    target = (storage.path / sanitize_folder(sub)).resolve()
    root = storage.path.resolve()
    if target != root and root not in target.parents:
        raise InvalidInput(f"source_path {sub!r} leaves storage {storage.name!r}")
    if not target.exists():
        raise InvalidInput(f"source_path {sub!r} does not exist in storage {storage.name!r}")
    if target.is_dir() and not any(p.is_file() for p in target.rglob("*")):
        raise InvalidInput(f"source_path {sub!r} in storage {storage.name!r} holds no file")
    return target


def check_transfer_url(url: str) -> str:
    if not url.startswith(SCHEME) or len(url) <= len(SCHEME):
        raise InvalidInput(f"invalid transfer source {url!r}")
    return url


class TransferDownloader:
    async def run(self, task: Task, ctx: DownloadContext) -> Path:
        source = Path(task.options.backend_options.get("source", ""))
        if not source.is_absolute() or not source.exists():
            raise DownloadError(f"transfer source {source} no longer exists")
        files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        ctx.progress.set_total(sum(p.stat().st_size for p in files))
        final = await ctx.claim_output(source.name)
        part = final.with_name(final.name + ".part")
        await asyncio.to_thread(_remove, part)
        ctx.progress.set_downloaded(0)
        for src in files:
            dest = part if src == source else part / src.relative_to(source)
            await _copy(src, dest, ctx)
        await asyncio.to_thread(os.replace, part, final)
        ctx.log(f"copied {len(files)} file(s) from {source}")
        return final


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


async def _copy(src: Path, dest: Path, ctx: DownloadContext) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with src.open("rb") as reader, dest.open("wb") as writer:
        while True:
            chunk = await asyncio.to_thread(reader.read, CHUNK)
            if not chunk:
                break
            await asyncio.to_thread(writer.write, chunk)
            ctx.progress.add(len(chunk))
    shutil.copystat(src, dest)


TRANSFER = TransferDownloader()


def register(registry: DownloaderRegistry) -> None:
    """Add the `transfer` backend (copies out of a configured storage) to an engine's registry."""
    registry.register_backend("transfer", TRANSFER, check_transfer_url)

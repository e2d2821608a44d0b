"""What an s3:// destination changes in the engine: folders, the object's key, staging, the upload on success.

- Folder rule: a task folder `s3://bucket/prefix` is that prefix; with `download.dir = "s3://bucket/prefix"`
  a relative task folder joins the prefix (an absolute local folder stays local).
- One S3 client per engine, opened at the first s3:// run and closed with the engine.
- The key: decided once per task (`claim`), de-duplicated against the `file` of the other unfinished tasks and
  against the objects already in the bucket ("name (1).ext"...), recorded as the task's `file`
  (`s3://bucket/key`); a resumed run keeps it. Claims of one engine are serialised; two nodes claiming the
  same new name at the same instant could still pick the same key (the store has no unique index on files).
- A kind without a direct-to-S3 downloader (HLS, yt-dlp, backends) downloads into `<data dir>/staging/<task id>/`;
  when it succeeds the file is uploaded (multipart, streamed from disk, `source-url` metadata) and the staging
  dir is removed. A failed upload fails the run with the store's reason; the next run downloads again and
  uploads the whole file again (an upload of a finished file is not resumed).
- Deleting a task aborts its unfinished multipart upload; with its files, the object goes too.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from core.downloaders.base import DownloadContext
from core.errors import DownloadError, InvalidInput
from core.models import Task, TaskStatus
from core.naming import sanitize_name, with_counter
from core.storage import Attempts, S3Client, S3Location, S3Section, S3Settings, is_s3_url, once, source_metadata

log = logging.getLogger("fetchdeck.engine")


class S3Output:
    """The engine's s3:// side (one per engine)."""

    def __init__(
        self, section: S3Section, environ: Mapping[str, str], staging_root: Path, download_dir: str = ""
    ) -> None:
        """download_dir: `download.dir` as configured (an s3:// URL makes relative task folders S3 prefixes)."""
        self._section = section
        self._environ = dict(environ)
        self.staging_root = staging_root
        self.root = S3Location.parse(download_dir) if is_s3_url(download_dir) else None
        self._client: S3Client | None = None
        self._lock = asyncio.Lock()
        self._claiming = asyncio.Lock()

    def location(self, folder: str) -> S3Location | None:
        """The S3 prefix a stored task folder stands for; None: a local folder."""
        if is_s3_url(folder):
            return S3Location.parse(folder)
        if self.root is not None and not Path(folder).is_absolute():
            return self.root.join(folder) if folder else self.root
        return None

    async def client(self) -> S3Client:
        async with self._lock:
            if self._client is None:
                settings = S3Settings.from_config(self._section, self._environ)
                self._client = await S3Client(settings).open()
            return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def staging(self, task_id: int) -> Path:
        return self.staging_root / str(task_id)

    def discard_staging(self, task_id: int) -> None:
        shutil.rmtree(self.staging(task_id), ignore_errors=True)

    async def claim(
        self, task: Task, prefix: S3Location, filename: str, in_use: Callable[[], Awaitable[set[str]]],
        record: Callable[[S3Location], Awaitable[None]], attempts: Attempts = once,
    ) -> S3Location:
        """The task's object: its s3:// `file` if it has one, else a new key under `prefix`, chosen and
        `record`ed one claim at a time (two runs of this engine never pick the same key)."""
        if task.file and is_s3_url(task.file):
            return S3Location.parse(task.file)
        client = await self.client()
        async with self._claiming:
            taken = await in_use()
            name = sanitize_name(filename)
            candidate, n = prefix.join(name), 1

            def taken_in_bucket(at: S3Location) -> Awaitable[bool]:
                return attempts(f"checking {at.url}", lambda: client.exists(at))

            while candidate.url in taken or await taken_in_bucket(candidate):
                candidate = prefix.join(with_counter(name, n))
                n += 1
            await record(candidate)
        return candidate

    async def forget(self, task: Task, upload: bytes | None, files: bool) -> None:
        """A deleted task's S3 side: abort its unfinished multipart upload (`upload`: its recorded state blob)
        and, with `files`, delete its object. Best effort: a store that cannot be reached is logged, not raised."""
        if not (task.file and is_s3_url(task.file)):
            return
        from core.downloaders.http_s3 import UploadRecord

        record = UploadRecord.decode(upload)
        try:
            client = await self.client()
            if record is not None:
                await client.abort(record.location, record.upload_id)
            if files and task.status is TaskStatus.SUCCESS:
                await client.delete(S3Location.parse(task.file))
        except (DownloadError, InvalidInput) as exc:
            log.warning("task %s: could not clean up %s: %s", task.id, task.file, exc)

    async def upload_staged(self, ctx: DownloadContext, path: Path, location: S3Location) -> S3Location:
        """Upload the finished local file of a staged run; the object's location (the file's own name when
        the downloader chose another one, e.g. yt-dlp merging into .mkv). Removes the staging dir."""
        if path.name != location.name:
            location = location.parent.join(path.name)
        from core.downloaders.http_s3 import task_attempts

        client = await self.client()
        ctx.log(f"uploading {path.name} ({path.stat().st_size} bytes) to {location.url}")
        ctx.progress.set_note(f"uploading to {location.url}")
        try:
            await client.upload_file(path, location, source_metadata(ctx.task.url, None),
                                     attempts=task_attempts(ctx))
        finally:
            ctx.progress.set_note(None)
        await asyncio.to_thread(self.discard_staging, ctx.task.id)
        return location

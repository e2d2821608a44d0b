"""Choose the S3 client by measurement: obstore against aiobotocore, one multipart upload each to a real
SeaweedFS S3 server on 127.0.0.1 (tests/support/s3server.py).

    .venv/bin/python tests/bench/bench_s3_clients.py [--mib 1024] [--part-mib 16] [--concurrency 8]

Each client runs in its own child process (so import time and peak RSS are its own): it imports the library
(timed), then uploads the same file from disk as one multipart upload with the same part size and the same
number of parts in flight, then reads the object's size back. Printed per client: import seconds, upload wall
seconds and MB/s, peak RSS of the child. Also printed: whether the library exposes a resumable multipart upload
(CreateMultipartUpload / UploadPart with an explicit part number / ListParts / CompleteMultipartUpload with
the recorded ETags), which fetchdeck needs to continue an upload by its id on another node.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def child(client: str, path: str, endpoint: str, key_id: str, secret: str, region: str, bucket: str,
          part: int, concurrency: int) -> dict[str, object]:
    size = os.path.getsize(path)
    t0 = time.perf_counter()
    if client == "obstore":
        import obstore
        from obstore.store import S3Store
        imported = time.perf_counter() - t0
        store = S3Store(bucket, endpoint=endpoint, access_key_id=key_id, secret_access_key=secret, region=region,
                        virtual_hosted_style_request=False, client_options={"allow_http": True})

        async def run() -> int:
            await obstore.put_async(store, "big.bin", Path(path), chunk_size=part, max_concurrency=concurrency)
            meta = await obstore.head_async(store, "big.bin")
            return int(meta["size"])
        resumable = False  # put/put_async only: the upload id and part ETags never reach Python
    else:
        from aiobotocore.session import get_session
        from botocore.config import Config
        imported = time.perf_counter() - t0

        async def run() -> int:
            session = get_session()
            # As core/storage/client.py configures it: no CRC32 of every part (SigV4 signs the payload hash).
            config = Config(s3={"addressing_style": "path"}, max_pool_connections=concurrency,
                            request_checksum_calculation="when_required",
                            response_checksum_validation="when_required")
            async with session.create_client("s3", endpoint_url=endpoint, region_name=region,
                                             aws_access_key_id=key_id, aws_secret_access_key=secret,
                                             config=config) as s3:
                upload = await s3.create_multipart_upload(Bucket=bucket, Key="big.bin")
                upload_id = upload["UploadId"]
                count = -(-size // part)
                etags: dict[int, str] = {}
                numbers = iter(range(1, count + 1))
                fd = os.open(path, os.O_RDONLY)

                async def worker() -> None:
                    for n in numbers:
                        body = await asyncio.to_thread(os.pread, fd, part, (n - 1) * part)
                        answer = await s3.upload_part(Bucket=bucket, Key="big.bin", UploadId=upload_id,
                                                      PartNumber=n, Body=body)
                        etags[n] = answer["ETag"]
                try:
                    await asyncio.gather(*(worker() for _ in range(concurrency)))
                finally:
                    os.close(fd)
                listed = await s3.list_parts(Bucket=bucket, Key="big.bin", UploadId=upload_id)
                assert len(listed["Parts"]) == min(count, 1000)
                await s3.complete_multipart_upload(
                    Bucket=bucket, Key="big.bin", UploadId=upload_id,
                    MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]})
                head = await s3.head_object(Bucket=bucket, Key="big.bin")
                return int(head["ContentLength"])
        resumable = True
    t1 = time.perf_counter()
    stored = asyncio.run(run())
    wall = time.perf_counter() - t1
    assert stored == size, (stored, size)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"client": client, "import_s": imported, "upload_s": wall, "mb_s": size / wall / 1e6,
            "rss_mib": rss, "resumable_by_upload_id": resumable}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--part-mib", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--child", nargs=9)
    args = parser.parse_args()
    if args.child:
        c, path, endpoint, key_id, secret, region, bucket, part, conc = args.child
        print(json.dumps(child(c, path, endpoint, key_id, secret, region, bucket, int(part), int(conc))))
        return
    from tests.support.s3server import S3Server

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp, "source.bin")
        with source.open("wb") as out:
            for _ in range(args.mib):
                out.write(os.urandom(1 << 20))
        with S3Server(Path(tmp, "weed")) as s3:
            print(f"{args.mib} MiB from disk, parts of {args.part_mib} MiB, {args.concurrency} in flight, "
                  f"to SeaweedFS at {s3.endpoint}")
            for client in ("obstore", "aiobotocore", "obstore", "aiobotocore"):
                bucket = s3.new_bucket(client)
                out = subprocess.run(
                    [sys.executable, __file__, "--child", client, str(source), s3.endpoint, s3.access_key,
                     s3.secret_key, s3.region, bucket, str(args.part_mib << 20), str(args.concurrency)],
                    check=True, capture_output=True, text=True)
                r = json.loads(out.stdout)
                print(f"{r['client']:12} import {r['import_s']:.3f} s  upload {r['upload_s']:6.2f} s "
                      f"({r['mb_s']:6.1f} MB/s)  peak RSS {r['rss_mib']:6.1f} MiB  "
                      f"resumable by upload id: {'yes' if r['resumable_by_upload_id'] else 'no'}")
                s3.client().delete_object(Bucket=bucket, Key="big.bin")


if __name__ == "__main__":
    main()

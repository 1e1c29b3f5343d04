"""Multipart upload and presigned GET: Cairn against `rclone serve s3` (issue 3's Performance goal).

Contract: `python loadtests/multipart_presigned.py [--rounds N] [--size-mib 256] [--part-mib 16]
[--small-seconds S] [--small-keys K]` starts Cairn (4 drive folders, EC 2+2) and `rclone serve s3` on free loopback
ports over temporary folders (throughput.make_servers), runs every workload on them in turn for N
rounds (Cairn, rclone, Cairn, ...) after one unrecorded warm-up round each, prints a Markdown report
of the medians and every round, then stops only the processes it started and removes the folders.
It measures; it never asserts a target.

Workloads per round and server:
- single PUT: one object of `size` bytes in one request;
- multipart PUT: the same size in parts of `part` bytes, 4 parts in flight (CreateMultipartUpload,
  UploadPart x n, CompleteMultipartUpload, all timed), so multipart/single compares like with like;
- signed GET and presigned GET of 4 KiB objects, 16 in flight for `small_seconds`: the presigned
  URLs are made by botocore's `generate_presigned_url` (before the round) and fetched by a plain
  unsigned GET of the URL's path and query; one URL is also fetched by urllib, and the same URL with
  a changed signature must be refused with 403, so the server is known to check query signatures.
Both large objects are read back after the round (not timed) and compared by XXH3-128 digest; every
4 KiB body is compared byte for byte. An error status aborts the run with the request and body.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import xxhash
from benchkit import Measured, Meter
from botocore.config import Config
from client import Response, S3Client
from throughput import (
    ACCESS_KEY,
    BUCKET,
    MIB,
    SECRET_KEY,
    BenchmarkFailure,
    Server,
    expect,
    in_flight,
    make_servers,
    serve_and_run,
)

SMALL_SIZE = 4096
SMALL_IN_FLIGHT = 16
PARTS_IN_FLIGHT = 4
TAG = 64
WORKLOADS = [
    Measured("single-put", "single PUT", "MiB/s"),
    Measured("multipart-put", f"multipart PUT, {PARTS_IN_FLIGHT} parts in flight", "MiB/s"),
    Measured("signed-get", f"4 KiB GET, header-signed, {SMALL_IN_FLIGHT} in flight", "ops/s"),
    Measured("presigned-get", f"4 KiB GET, presigned URL, {SMALL_IN_FLIGHT} in flight", "ops/s"),
]
_UPLOAD_ID = re.compile(rb"<UploadId>(.*?)</UploadId>")


@dataclass(frozen=True)
class Sizes:
    size: int
    part: int
    small_seconds: float
    small_keys: int
    rounds: int


def digest(parts: Sequence[bytes | bytearray | memoryview]) -> bytes:
    h = xxhash.xxh3_128()
    for part in parts:
        h.update(part)
    return h.digest()


class Run:
    def __init__(self, servers: list[Server], sizes: Sizes) -> None:
        self.servers = servers
        self.sizes = sizes
        self.clients = {s.key: S3Client(s.endpoint, ACCESS_KEY, SECRET_KEY) for s in servers}
        self.meter = Meter(WORKLOADS)
        self.base = memoryview(os.urandom(sizes.size))
        self.readback = bytearray(sizes.size)
        self.small = {i: f"{i:016d}".encode() + os.urandom(SMALL_SIZE - 16) for i in range(sizes.small_keys)}

    def body(self, key: str) -> list[memoryview]:
        """The large object under `key`: its name heads the bytes, so a mixed-up object is caught."""
        return [memoryview(key.encode().ljust(TAG, b"#")), self.base[TAG:]]

    async def setup(self, server: Server) -> None:
        c = self.clients[server.key]
        expect(await c.create_bucket(BUCKET), (200,), server, f"PUT /{BUCKET}")

        async def put(i: int) -> Response:
            resp = await c.put_object(BUCKET, f"small/{i:05d}", [self.small[i]])
            expect(resp, (200,), server, f"PUT /{BUCKET}/small/{i:05d}")
            return resp

        await in_flight(SMALL_IN_FLIGHT, range(len(self.small)), put)

    async def single_put(self, server: Server, key: str) -> Response:
        resp = await self.clients[server.key].put_object(BUCKET, key, self.body(key))
        expect(resp, (200,), server, f"PUT /{BUCKET}/{key} ({self.sizes.size} bytes)")
        return resp

    async def multipart_put(self, server: Server, key: str) -> list[float]:
        c = self.clients[server.key]
        created = await c.request("POST", BUCKET, key, params=[("uploads", "")])
        expect(created, (200,), server, f"POST /{BUCKET}/{key}?uploads")
        found = _UPLOAD_ID.search(bytes(created.body))
        if found is None:
            raise BenchmarkFailure(f"{server.label}: no UploadId in {bytes(created.body)[:500]!r}")
        upload_id = found.group(1).decode()
        whole = self.body(key)
        first = [whole[0], self.base[TAG : self.sizes.part]]
        bodies = [first] + [[self.base[o : o + self.sizes.part]] for o in range(self.sizes.part, self.sizes.size,
                                                                                self.sizes.part)]
        etags: dict[int, str] = {}

        async def part(number: int) -> Response:
            resp = await c.request("PUT", BUCKET, key, params=[("partNumber", str(number)), ("uploadId", upload_id)],
                                   body=bodies[number - 1])
            expect(resp, (200,), server, f"PUT /{BUCKET}/{key}?partNumber={number}")
            etags[number] = resp.headers["etag"]
            return resp

        latencies = await in_flight(PARTS_IN_FLIGHT, range(1, len(bodies) + 1), part)
        xml = "<CompleteMultipartUpload>" + "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{etags[n]}</ETag></Part>" for n in sorted(etags)
        ) + "</CompleteMultipartUpload>"
        done = await c.request("POST", BUCKET, key, params=[("uploadId", upload_id)], body=[xml.encode()])
        expect(done, (200,), server, f"POST /{BUCKET}/{key}?uploadId=...")
        if b"<Error>" in bytes(done.body):
            raise BenchmarkFailure(f"{server.label}: CompleteMultipartUpload failed: {bytes(done.body)[:500]!r}")
        return latencies

    async def check_and_delete(self, server: Server, key: str) -> None:
        c = self.clients[server.key]
        got = await c.get_object(BUCKET, key, into=self.readback)
        expect(got, (200,), server, f"GET /{BUCKET}/{key}")
        if len(got.body) != self.sizes.size or digest([got.body]) != digest(self.body(key)):
            raise BenchmarkFailure(f"{server.label}: GET /{BUCKET}/{key} returned other bytes than were uploaded")
        expect(await c.delete_object(BUCKET, key), (200, 204), server, f"DELETE /{BUCKET}/{key}")

    def presigned_targets(self, server: Server) -> list[str]:
        s3 = boto3.session.Session().client(
            "s3", endpoint_url=server.endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1", config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
        urls = [s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": f"small/{i:05d}"},
                                          ExpiresIn=3600) for i in range(len(self.small))]
        self.check_presigned(server, urls[0])
        return [urlsplit(u).path + "?" + urlsplit(u).query for u in urls]

    def check_presigned(self, server: Server, url: str) -> None:
        with urllib.request.urlopen(url, timeout=10) as resp:
            if resp.read() != self.small[0]:
                raise BenchmarkFailure(f"{server.label}: presigned GET via urllib returned other bytes")
        signature = url.rsplit("X-Amz-Signature=", 1)[1][:64]
        tampered = url.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
        try:
            with urllib.request.urlopen(tampered, timeout=10) as resp:
                raise BenchmarkFailure(f"{server.label}: a presigned URL with a wrong signature got {resp.status}")
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code != 403:
                raise BenchmarkFailure(f"{server.label}: a wrong presigned signature got {exc.code}, not 403") from exc

    async def round(self, server: Server, rnd: int, targets: list[str]) -> None:
        c, sizes = self.clients[server.key], self.sizes
        single, multi = f"large/r{rnd}-single", f"large/r{rnd}-multipart"

        async def run_single() -> tuple[float, list[float]]:
            return sizes.size, [(await self.single_put(server, single)).latency]

        async def run_multi() -> tuple[float, list[float]]:
            return sizes.size, await self.multipart_put(server, multi)

        # Odd rounds upload whole first, even rounds in parts first, so an order effect cancels out.
        order = [("single-put", run_single), ("multipart-put", run_multi)]
        for name, run_large in order if rnd % 2 else order[::-1]:
            await self.meter.measure(server.key, [server], name, run_large)
        for key in (single, multi):
            await self.check_and_delete(server, key)

        async def signed(i: int) -> Response:
            resp = await c.get_object(BUCKET, f"small/{i:05d}")
            expect(resp, (200,), server, f"GET /{BUCKET}/small/{i:05d}")
            if resp.body != self.small[i]:
                raise BenchmarkFailure(f"{server.label}: GET small/{i:05d} returned other bytes")
            return resp

        async def presigned(i: int) -> Response:
            resp = await c.get_unsigned(targets[i])
            expect(resp, (200,), server, f"GET {targets[i]}")
            if resp.body != self.small[i]:
                raise BenchmarkFailure(f"{server.label}: presigned GET small/{i:05d} returned other bytes")
            return resp

        for name, op in (("signed-get", signed), ("presigned-get", presigned)):
            async def run(op: Callable[[int], Awaitable[Response]] = op) -> tuple[float, list[float]]:
                latencies = await in_flight(SMALL_IN_FLIGHT, itertools.cycle(range(len(self.small))), op,
                                            sizes.small_seconds)
                return len(latencies), latencies
            await self.meter.measure(server.key, [server], name, run)

    def report(self, command: str, started: str, elapsed: float) -> str:
        labels = [(s.key, s.label) for s in self.servers]
        out = [f"Measured {started} UTC in {elapsed / 60:.1f} min by `{command}`; "
               f"{self.sizes.size // MIB} MiB objects, parts of {self.sizes.part // MIB} MiB; "
               f"{self.sizes.rounds} rounds per server, medians.", ""]
        out += self.meter.table(labels, ("cairn", "rclone") if len(labels) > 1 else (labels[0][0], labels[0][0]))
        out.append("")
        for key, label in labels:
            single, multi = self.meter.median("single-put", key), self.meter.median("multipart-put", key)
            signed, pre = self.meter.median("signed-get", key), self.meter.median("presigned-get", key)
            if single and multi and signed and pre:
                out.append(f"- {label}: multipart/single PUT {multi / single:.2f}x (goal >= 0.90x: "
                           f"{'met' if multi / single >= 0.9 else 'missed'}); presigned/signed GET {pre / signed:.2f}x.")
        return "\n".join(out)


async def run_all(run: Run) -> None:
    targets = {}
    for s in run.servers:
        await run.setup(s)
        targets[s.key] = await asyncio.to_thread(run.presigned_targets, s)
        # Warm-up, not recorded: the first large uploads pay for allocator and page-cache growth.
        await run.round(s, 0, targets[s.key])
    run.meter.rounds.clear()
    for rnd in range(1, run.sizes.rounds + 1):
        for s in run.servers:
            await run.round(s, rnd, targets[s.key])
    for c in run.clients.values():
        c.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--part-mib", type=int, default=16)
    parser.add_argument("--small-seconds", type=float, default=2.5)
    parser.add_argument("--small-keys", type=int, default=512, help="4 KiB objects the GET rounds cycle over")
    parser.add_argument("--servers", default="cairn,rclone", help="comma-separated subset of cairn,rclone")
    args = parser.parse_args(argv)
    if args.part_mib < 5 and args.size_mib > args.part_mib:
        parser.error("S3 parts other than the last must be at least 5 MiB")
    sizes = Sizes(args.size_mib * MIB, args.part_mib * MIB, args.small_seconds, max(1, args.small_keys),
                  max(1, args.rounds))
    keys = [k for k in ("cairn", "rclone") if k in args.servers.split(",")]
    command = " ".join(["python", "loadtests/multipart_presigned.py", *(argv if argv is not None else sys.argv[1:])])
    started, t0 = time.strftime("%Y-%m-%d %H:%M", time.gmtime()), time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="cairn-multipart-"))
    servers = make_servers(keys, root, None)
    run = Run(servers, sizes)
    if not serve_and_run(servers, root, lambda: run_all(run)):
        return 1
    print("\n" + run.report(command, started, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())

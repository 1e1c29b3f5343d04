"""A 4-node Cairn cluster against one node with the same 16 drives (issue 5's Performance section).

Contract: `python loadtests/cluster_bench.py [--rounds N] [--large-objects K] [--small-seconds S]`
(as root) builds two network-namespace labs (simulator.netns.ClusterLab) in one temporary folder:
- cluster: 4 nodes, 4 drive folders each, every node started with the same URL list
  `http://10.99.N.1{1...4}:9000/.../d{1...4}` and `--parity 4` (one erasure set, EC 12+4);
- single: 1 node in its own namespace with 16 drive folders and `--parity 4` (the same EC 12+4).
Both are started in the same run and stay up together; the client (this process, in the root
namespace) reaches them over the labs' bridges. Each workload runs on the two in turn (single,
cluster, single, ...) for N rounds; cluster requests go round-robin to the 4 nodes, as a load
balancer would send them. Workloads: 64 MiB PUT and GET at 4 in flight (every GET checked by
XXH3-128 digest), 4 KiB PUT and GET at 16 in flight for S seconds (every body compared). Per round it
also records the bytes the nodes' veth links carried (in + out), per payload byte. It prints a
Markdown report (medians, every round, cluster/single ratios), then stops every node and removes the
namespaces, bridges and folders, also after a failure. It measures; it never asserts a target.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import xxhash
from benchkit import Measured, Meter
from client import Response, S3Client
from throughput import BUCKET, MIB, BenchmarkFailure, Server, expect, in_flight

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

from simulator.netns import ClusterLab  # noqa: E402  (needs the repository root on sys.path)

LARGE_SIZE = 64 * MIB
SMALL_SIZE = 4096
LARGE_IN_FLIGHT = 4
SMALL_IN_FLIGHT = 16
TAG = 64
SERVER_ARGS = ("--parity", "4")
WORKLOADS = [
    Measured("large-put", f"64 MiB PUT, {LARGE_IN_FLIGHT} in flight", "MiB/s"),
    Measured("large-get", f"64 MiB GET, {LARGE_IN_FLIGHT} in flight", "MiB/s"),
    Measured("small-put", f"4 KiB PUT, {SMALL_IN_FLIGHT} in flight", "ops/s"),
    Measured("small-get", f"4 KiB GET, {SMALL_IN_FLIGHT} in flight", "ops/s"),
]


@dataclass
class Deployment:
    """One lab under test: its node processes (as throughput.Server, for CPU accounting) and clients."""

    key: str
    label: str
    lab: ClusterLab
    servers: list[Server] = field(default_factory=list)
    clients: list[S3Client] = field(default_factory=list)
    wire_bytes: dict[str, list[float]] = field(default_factory=dict)  # workload -> bytes per payload byte
    idle_cpu: float = 0.0  # CPU its nodes used while the other deployment was measured
    idle_seconds: float = 0.0

    def attach(self) -> None:
        """Wrap the started node processes and open one client per node."""
        for i, node in self.lab.nodes.items():
            server = Server(f"{self.key}{i}", f"{self.label} node {i}", [], node.endpoint,
                            f"{node.endpoint}/minio/health/ready", False, self.lab.root)
            server.proc = node.process
            self.servers.append(server)
            self.clients.append(S3Client(node.endpoint, self.lab.access_key, self.lab.secret_key))

    def veth_bytes(self) -> int:
        total = 0
        for node in self.lab.nodes.values():
            for direction in ("rx_bytes", "tx_bytes"):
                total += int(Path(f"/sys/class/net/{node.host.host_veth}/statistics/{direction}").read_text())
        return total

    def client(self, i: int) -> S3Client:
        return self.clients[i % len(self.clients)]


class Run:
    def __init__(self, deployments: list[Deployment], rounds: int, large_objects: int, small_seconds: float) -> None:
        self.deployments = deployments
        self.rounds = rounds
        self.large_objects = large_objects
        self.small_seconds = small_seconds
        self.meter = Meter(WORKLOADS)
        self.large_base = memoryview(os.urandom(LARGE_SIZE))
        self.small_base = os.urandom(SMALL_SIZE)

    async def measure(self, d: Deployment, workload: str,
                      run: Callable[[], Awaitable[tuple[float, list[float]]]]) -> None:
        wire0 = d.veth_bytes()
        others = [o for o in self.deployments if o is not d]
        idle0 = [sum(s.cpu_seconds() for s in o.servers) for o in others]
        sample = await self.meter.measure(d.key, d.servers, workload, run)
        for o, before in zip(others, idle0, strict=True):
            o.idle_cpu += sum(s.cpu_seconds() for s in o.servers) - before
            o.idle_seconds += sample.seconds
        payload = sample.units if self.meter.unit(workload) == "MiB/s" else sample.units * SMALL_SIZE
        d.wire_bytes.setdefault(workload, []).append((d.veth_bytes() - wire0) / payload)

    async def large(self, d: Deployment, rnd: int) -> None:
        keys = [f"large-r{rnd}/{i:03d}" for i in range(self.large_objects)]
        server = d.servers[0]

        def body(key: str) -> list[memoryview]:
            return [memoryview(key.encode().ljust(TAG, b"#")), self.large_base[TAG:]]

        def digest(parts: Sequence[bytes | bytearray | memoryview]) -> bytes:
            h = xxhash.xxh3_128()
            for part in parts:
                h.update(part)
            return h.digest()

        expected = {key: digest(body(key)) for key in keys}
        buffers = [bytearray(LARGE_SIZE) for _ in range(LARGE_IN_FLIGHT)]

        async def put(i: int) -> Response:
            resp = await d.client(i).put_object(BUCKET, keys[i], body(keys[i]))
            expect(resp, (200,), server, f"PUT /{BUCKET}/{keys[i]} (64 MiB) via node {i % len(d.clients) + 1}")
            return resp

        async def get(i: int) -> Response:
            into = buffers.pop()
            try:
                resp = await d.client(i + 1).get_object(BUCKET, keys[i], into=into)  # another node than the writer
                expect(resp, (200,), server, f"GET /{BUCKET}/{keys[i]}")
                if len(resp.body) != LARGE_SIZE or digest([resp.body]) != expected[keys[i]]:
                    raise BenchmarkFailure(f"{d.label}: GET /{BUCKET}/{keys[i]} returned other bytes than were PUT")
            finally:
                buffers.append(into)
            return resp

        async def delete(i: int) -> Response:
            resp = await d.client(i).delete_object(BUCKET, keys[i])
            expect(resp, (200, 204), server, f"DELETE /{BUCKET}/{keys[i]}")
            return resp

        for name, op in (("large-put", put), ("large-get", get)):
            async def run(op: Callable[[int], Awaitable[Response]] = op) -> tuple[float, list[float]]:
                return len(keys) * LARGE_SIZE, await in_flight(LARGE_IN_FLIGHT, range(len(keys)), op)
            await self.measure(d, name, run)
        await in_flight(LARGE_IN_FLIGHT, range(len(keys)), delete)

    async def small(self, d: Deployment, rnd: int) -> None:
        server = d.servers[0]
        written: list[int] = []

        def key(i: int) -> str:
            return f"small-r{rnd}/{i:07d}"

        def body(i: int) -> bytes:
            return f"{i:016d}".encode() + self.small_base[16:]

        async def put(i: int) -> Response:
            resp = await d.client(i).put_object(BUCKET, key(i), [body(i)])
            expect(resp, (200,), server, f"PUT /{BUCKET}/{key(i)} (4 KiB)")
            written.append(i)
            return resp

        async def get(i: int) -> Response:
            resp = await d.client(i + 1).get_object(BUCKET, key(i))
            expect(resp, (200,), server, f"GET /{BUCKET}/{key(i)}")
            if resp.body != body(i):
                raise BenchmarkFailure(f"{d.label}: GET /{BUCKET}/{key(i)} returned other bytes than were PUT")
            return resp

        async def run_put() -> tuple[float, list[float]]:
            latencies = await in_flight(SMALL_IN_FLIGHT, itertools.count(), put, self.small_seconds)
            return len(latencies), latencies

        async def run_get() -> tuple[float, list[float]]:
            latencies = await in_flight(SMALL_IN_FLIGHT, itertools.cycle(list(written)), get, self.small_seconds)
            return len(latencies), latencies

        await self.measure(d, "small-put", run_put)
        await self.measure(d, "small-get", run_get)

    async def all(self) -> None:
        for d in self.deployments:
            expect(await d.clients[0].create_bucket(BUCKET), (200,), d.servers[0], f"PUT /{BUCKET}")
            # Warm-up, not measured: the first large transfer pays for allocator and connection growth.
            await self.large(d, 0)
        self.meter.rounds.clear()
        for d in self.deployments:
            d.wire_bytes.clear()
            d.idle_cpu = d.idle_seconds = 0.0
        for group in (self.large, self.small):
            for rnd in range(1, self.rounds + 1):
                for d in self.deployments:
                    await group(d, rnd)
        for d in self.deployments:
            for c in d.clients:
                c.close()

    def report(self, command: str, started: str, elapsed: float, workers: tuple[int, int]) -> str:
        out = [f"Measured {started} UTC in {elapsed / 60:.1f} min by `{command}`: {self.rounds} rounds per "
               f"deployment, medians; {self.large_objects} large objects per round; `--workers` "
               f"{workers[0]} on the single node, {workers[1]} on each cluster node.", ""]
        out += self.meter.table([(d.key, d.label) for d in self.deployments], ("cluster", "single"))
        out += ["", "| workload | " + " | ".join(f"{d.label}: node link bytes (in+out) per payload byte"
                                                  for d in self.deployments) + " |",
                "|---|" + "---|" * len(self.deployments)]
        for w in WORKLOADS:
            out.append(f"| {w.title} | " + " | ".join(
                f"{statistics.median(d.wire_bytes[w.name]):.2f}" if d.wire_bytes.get(w.name) else "-"
                for d in self.deployments) + " |")
        idle = ", ".join(f"{d.label} {d.idle_cpu / d.idle_seconds:.0%}" for d in self.deployments if d.idle_seconds)
        out += ["", f"CPU of each deployment while the other was measured (share of one core): {idle}."]
        return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--large-objects", type=int, default=8, help="64 MiB objects per round")
    parser.add_argument("--small-seconds", type=float, default=2.5)
    parser.add_argument("--single-workers", type=int, default=os.cpu_count() or 1,
                        help="--workers of the single node (default: cores, as `cairn server` would)")
    parser.add_argument("--node-workers", type=int, default=1, help="--workers of each cluster node")
    args = parser.parse_args(argv)
    command = " ".join(["python", "loadtests/cluster_bench.py", *(argv if argv is not None else sys.argv[1:])])
    started, t0 = time.strftime("%Y-%m-%d %H:%M", time.gmtime()), time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="cairn-cluster-bench-"))
    single = Deployment("single", "single node", ClusterLab(root / "single", nodes=1, drives_per_node=16,
                                                            server_args=SERVER_ARGS, distributed=False,
                                                            workers=args.single_workers))
    cluster = Deployment("cluster", "4-node cluster", ClusterLab(root / "cluster", nodes=4, drives_per_node=4,
                                                                 server_args=SERVER_ARGS, workers=args.node_workers))
    opened: list[Deployment] = []
    try:
        for d in (single, cluster):
            d.lab.open()
            opened.append(d)
            for i in d.lab.nodes:
                d.lab.start(i)
        for d in (single, cluster):
            d.lab.wait_cluster_ready()
            d.attach()
            print(f"{d.label} ready: " + ", ".join(c.host_header for c in d.clients), flush=True)
        run = Run([single, cluster], max(1, args.rounds), args.large_objects, args.small_seconds)
        import uvloop

        uvloop.run(run.all())
    except (BenchmarkFailure, ConnectionError, TimeoutError) as exc:
        print(f"\nBENCHMARK ABORTED: {type(exc).__name__}: {exc}", file=sys.stderr)
        for d in opened:
            for i in d.lab.nodes:
                print(d.lab.log_tail(i, 20), file=sys.stderr)
        return 1
    finally:
        for d in reversed(opened):
            d.lab.close()
        shutil.rmtree(root, ignore_errors=True)
    print("\n" + run.report(command, started, time.monotonic() - t0, (args.single_workers, args.node_workers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

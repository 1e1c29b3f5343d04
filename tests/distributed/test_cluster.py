"""Distributed mode (issue 5) end to end: four `cairn server` nodes, each in its own network namespace.

Every node gets the same arguments, `http://10.99.N.1{1...4}:9000<root>/node/d{1...4}` (16 drives),
with `--parity 4` (one erasure set, EC 12+4) or `--set-size 8 --parity 4` (two sets, EC 4+4); the
lab (simulator/netns.py) gives each node private drive folders behind that shared path.
Clients are boto3 in the test process, talking to each node's own address. The checks: what one node
writes every node reads and lists at once; a node killed, paused or cut off does not stop the others;
a node that comes back is healed; a 2|2 partition stops writes on both sides with a 503 instead of
letting the halves diverge; concurrent writers of one key leave one agreed version; a lock whose
holder died frees itself. One cluster serves every test of a class; each test undoes its faults.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from simulator.netns import S3_PORT, ClusterLab
from simulator.process import http_status
from tests.harness import fresh_bucket_name, wait_until

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(180)]

NODES = (1, 2, 3, 4)
# A node that hangs (paused, cut off) costs its peers up to one internode read timeout (30 s) before
# they mark it offline; clients of the healthy nodes wait longer than that.
FAULT_READ_TIMEOUT = 45
LOCK_RELEASE_LIMIT = 45.0
SIZES = [0, 1024, 3 * 1024 * 1024 + 17]  # empty, inline, several erasure blocks


@dataclass(frozen=True)
class Layout:
    name: str
    server_args: tuple[str, ...]


ONE_SET_EC_12_4 = Layout("one set, EC 12+4", ("--parity", "4"))
TWO_SETS_EC_4_4 = Layout("two sets, EC 4+4", ("--set-size", "8", "--parity", "4"))


@pytest.fixture(scope="class")
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterLab]:
    """A running 4-node cluster of the test class's `LAYOUT`, shared by the tests of that class."""
    layout: Layout = request.cls.LAYOUT
    with ClusterLab(tmp_path_factory.mktemp("cluster"), nodes=len(NODES), drives_per_node=4,
                    server_args=layout.server_args) as lab:
        lab.start_all()
        yield lab


@pytest.fixture
def lab(cluster: ClusterLab) -> Iterator[ClusterLab]:
    """The class's cluster; whatever a test broke is repaired afterwards, so the next test starts healthy."""
    yield cluster
    cluster.recover()


@pytest.fixture
def bucket(lab: ClusterLab) -> str:
    name = fresh_bucket_name()
    lab.s3(1).create_bucket(Bucket=name)
    return name


def body_of(size: int) -> bytes:
    return os.urandom(size)


def fetch(lab: ClusterLab, i: int, bucket: str, key: str, **config: Any) -> tuple[bytes, str]:
    """(body, ETag) of `key` read through node i."""
    response = lab.s3(i, **config).get_object(Bucket=bucket, Key=key)
    return bytes(response["Body"].read()), str(response["ETag"])


def keys_listed(lab: ClusterLab, i: int, bucket: str, **config: Any) -> set[str]:
    client = lab.s3(i, **config)
    keys: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys


def status_of(error: BaseException) -> int | None:
    if isinstance(error, ClientError):
        return int(error.response["ResponseMetadata"]["HTTPStatusCode"])
    return None


def bytes_waiting(lab: ClusterLab, at: int, sent_by: int) -> int:
    """Bytes node `sent_by` sent to node `at`'s S3 port that node `at` has not read yet (a paused node's backlog)."""
    listing = lab.net.host(at).run(["ss", "-Htn", "state", "established", "dst", lab.net.ip(sent_by),
                                    "( sport = :9000 )"]).stdout
    return sum(int(line.split()[0]) for line in listing.splitlines() if line.strip())


def eventually(action: Callable[[], Any], timeout: float, message: str) -> Any:
    """`action()` once it stops raising S3 or connection errors, trying again until `timeout`."""
    outcome: list[Any] = []

    def attempt() -> bool:
        try:
            outcome.append(action())
        except (ClientError, BotoCoreError):
            return False
        return True

    wait_until(attempt, timeout, interval=0.5, message=message)
    return outcome[0]


class ClusterBasics:
    """Checks every layout must pass; subclasses set `LAYOUT`."""

    LAYOUT: Layout

    @pytest.mark.parametrize("size", SIZES)
    def test_read_after_write_through_another_node(self, lab: ClusterLab, bucket: str, size: int) -> None:
        for writer in NODES:
            reader = writer % len(NODES) + 1
            body = body_of(size)
            key = f"raw/{writer}-{size}"
            etag = lab.s3(writer).put_object(Bucket=bucket, Key=key, Body=body)["ETag"]
            assert fetch(lab, reader, bucket, key) == (body, etag), f"written via node {writer}, read via {reader}"

    def test_list_after_write_across_nodes(self, lab: ClusterLab, bucket: str) -> None:
        written = {f"list/{writer}/{n}" for writer in NODES for n in range(3)}
        for key in sorted(written):
            lab.s3(int(key.split("/")[1])).put_object(Bucket=bucket, Key=key, Body=key.encode())
        for reader in NODES:
            assert keys_listed(lab, reader, bucket) == written, f"listing via node {reader}"
            assert bucket in {b["Name"] for b in lab.s3(reader).list_buckets()["Buckets"]}

    def test_a_killed_node_stops_nothing(self, lab: ClusterLab, bucket: str) -> None:
        before = {f"before/{size}": body_of(size) for size in SIZES}
        for key, body in before.items():
            lab.s3(4).put_object(Bucket=bucket, Key=key, Body=body)
        lab.kill(4)
        for i in (1, 2, 3):
            body = body_of(SIZES[-1])
            lab.s3(i).put_object(Bucket=bucket, Key=f"during/{i}", Body=body)
            assert fetch(lab, i % 3 + 1, bucket, f"during/{i}")[0] == body
            for key, old in before.items():
                assert fetch(lab, i, bucket, key)[0] == old, f"{key} via node {i} with node 4 dead"


class TestOneSetEc12Plus4(ClusterBasics):
    LAYOUT = ONE_SET_EC_12_4

    def test_a_restarted_node_is_healed(self, lab: ClusterLab, bucket: str) -> None:
        lab.kill(1)
        written = {f"missed/{size}": body_of(size) for size in SIZES}
        for key, body in written.items():
            lab.s3(2).put_object(Bucket=bucket, Key=key, Body=body)
        lab.restart(1)
        heal = lab.cairn(1, "admin", "heal", bucket)
        assert heal.returncode == 0, f"cairn admin heal failed:\n{heal.stdout}\n{heal.stderr}"
        # With node 2 gone too, objects written while node 1 was down are readable only if node 1
        # got its shards back: 12 data shards are needed and nodes 3 and 4 hold 8.
        lab.kill(2)
        for key, body in written.items():
            got = eventually(functools.partial(fetch, lab, 3, bucket, key), 20, f"{key} readable without node 2")
            assert got[0] == body, key

    def test_a_replaced_drive_is_formatted_and_healed_by_its_node(self, lab: ClusterLab, bucket: str) -> None:
        written = {f"kept/{size}": body_of(size) for size in SIZES}
        for key, body in written.items():
            lab.s3(1).put_object(Bucket=bucket, Key=key, Body=body)
        drive = lab.root / "node2" / "d1"  # node 2's first drive, seen from outside its namespace
        for entry in drive.iterdir():  # a blank disk in its place
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        wait_until(lambda: all((drive / bucket / key / "%meta").exists() for key in written), 60,
                   message="node 2 formats the blank drive and heals every object onto it")
        lab.s3(3).put_object(Bucket=bucket, Key="after", Body=b"written by a peer")
        assert (drive / bucket / "after" / "%meta").exists(), "a peer's write did not reach the new drive"
        for i in NODES:
            for key, body in written.items():
                assert fetch(lab, i, bucket, key)[0] == body

    @pytest.mark.parametrize("fault", ["pause", "link cut"])
    def test_a_hung_node_stops_nothing(self, lab: ClusterLab, bucket: str, fault: str) -> None:
        old = body_of(SIZES[-1])
        lab.s3(1).put_object(Bucket=bucket, Key="old", Body=old)
        if fault == "pause":
            lab.pause(4)
        else:
            lab.net.cut(4)
        for i in (1, 2, 3):
            body = body_of(SIZES[i - 1])
            started = time.monotonic()
            lab.s3(i, read_timeout=FAULT_READ_TIMEOUT).put_object(Bucket=bucket, Key=f"new/{i}", Body=body)
            assert fetch(lab, i % 3 + 1, bucket, f"new/{i}", read_timeout=FAULT_READ_TIMEOUT)[0] == body
            assert fetch(lab, i, bucket, "old", read_timeout=FAULT_READ_TIMEOUT)[0] == old
            assert {"old", f"new/{i}"} <= keys_listed(lab, i, bucket, read_timeout=FAULT_READ_TIMEOUT)
            assert time.monotonic() - started < 2 * FAULT_READ_TIMEOUT, f"node {i} too slow with node 4 {fault}"

    def test_concurrent_writers_of_one_key_agree(self, lab: ClusterLab, bucket: str) -> None:
        bodies = {i: body_of(1024 * 1024 + i) for i in NODES}
        start = threading.Barrier(len(NODES))

        def put(i: int) -> str:
            client = lab.s3(i, read_timeout=FAULT_READ_TIMEOUT)
            start.wait()
            return str(client.put_object(Bucket=bucket, Key="contended", Body=bodies[i])["ETag"])

        with ThreadPoolExecutor(len(NODES)) as pool:
            etags = list(pool.map(put, NODES))
        assert len(set(etags)) == len(NODES)
        seen = {fetch(lab, i, bucket, "contended") for i in NODES}
        assert len(seen) == 1, "nodes disagree about the last write"
        (body, etag), = seen
        assert body in bodies.values()
        assert etag.strip('"') == hashlib.md5(body).hexdigest()

    def test_a_dead_lock_holder_frees_the_key(self, lab: ClusterLab, bucket: str) -> None:
        lab.s3(1).put_object(Bucket=bucket, Key="locked", Body=b"first")
        # Node 3 paused: node 2's write gets its lock from the 3 other lock servers, then waits on
        # node 3's drives while holding it, long enough to be killed as the holder.
        lab.pause(3)
        holder = lab.s3(2, read_timeout=FAULT_READ_TIMEOUT)
        with ThreadPoolExecutor(1) as pool:
            stalled = pool.submit(holder.put_object, Bucket=bucket, Key="locked", Body=b"from the dead node")
            wait_until(lambda: bytes_waiting(lab, at=3, sent_by=2) > 0, 10,
                       message="node 2's write waiting on paused node 3")
            killed_at = time.monotonic()
            lab.kill(2)
            lab.resume(3)
            with pytest.raises((BotoCoreError, ClientError)):
                stalled.result()
        eventually(lambda: lab.s3(1, read_timeout=FAULT_READ_TIMEOUT).put_object(
            Bucket=bucket, Key="locked", Body=b"after"), LOCK_RELEASE_LIMIT, "key writable after its holder died")
        assert time.monotonic() - killed_at <= LOCK_RELEASE_LIMIT, "the dead holder's lock outlived its expiry"
        for i in (1, 3, 4):
            assert fetch(lab, i, bucket, "locked")[0] == b"after"


class TestTwoSetsEc4Plus4(ClusterBasics):
    LAYOUT = TWO_SETS_EC_4_4

    def test_heal_status_with_a_hung_peer_does_not_stall_the_node(self, lab: ClusterLab, bucket: str) -> None:
        # Right after node 4 freezes, node 1 still thinks it is online: its next call to node 4 waits for
        # the internode timeout (30 s). Heal status lists the heal queue on every drive; if that ran on
        # node 1's event loop, node 1 would answer nothing else meanwhile.
        lab.pause(4)
        status = threading.Thread(target=lab.cairn, args=(1, "admin", "heal", "status"), kwargs={"timeout": 90},
                                  daemon=True)
        status.start()
        deadline = time.monotonic() + 8
        slowest = 0.0
        while time.monotonic() < deadline:
            started = time.monotonic()
            assert http_status(lab.nodes[1].host.address, S3_PORT, "/minio/health/live", timeout=5.0) == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.2)
        assert slowest < 2.0, f"node 1 took {slowest:.1f} s to answer a liveness probe while heal status ran"
        status.join(90)

    def test_a_two_two_partition_refuses_writes_on_both_sides(self, lab: ClusterLab, bucket: str) -> None:
        # Each EC 4+4 set has 2 drives per node: a half holds 4 of 8 drives, one short of the write
        # quorum (5), and 2 of 4 lock servers, one short of the lock quorum (3).
        lab.s3(1).put_object(Bucket=bucket, Key="agreed", Body=b"before the split")
        lab.net.partition((1, 2), (3, 4))
        sides = {1: "split/left", 3: "split/right"}

        def write(i: int) -> BaseException | None:
            try:
                lab.s3(i, read_timeout=60).put_object(Bucket=bucket, Key=sides[i], Body=b"split brain")
            except (ClientError, BotoCoreError) as error:
                return error
            return None

        with ThreadPoolExecutor(len(sides)) as pool:
            outcomes = dict(zip(sides, pool.map(write, sides), strict=True))
        for i, error in outcomes.items():
            assert error is not None and status_of(error) == 503, f"write via node {i} in a 2|2 split: {error!r}"
        lab.net.heal_all()
        eventually(lambda: lab.s3(1).put_object(Bucket=bucket, Key="healed", Body=b"after"), 60,
                   "writes accepted again after the partition healed")
        for i in NODES:
            # A node sees its peers again within one health probe (2 s) of their first answer.
            healed = eventually(functools.partial(fetch, lab, i, bucket, "healed"), 15, f"node {i} reads again")
            assert healed[0] == b"after"
            assert fetch(lab, i, bucket, "agreed")[0] == b"before the split"
            assert keys_listed(lab, i, bucket) == {"agreed", "healed"}, f"node {i} kept a refused write"

"""How four namespaced nodes come together, refuse a stranger, rejoin after a crash and grow a pool.

Every node gets `http://10.99.N.1{1...4}:9000<root>/node/p1/d{1...2}` (8 drives, one set, EC 4+4);
the expansion restarts every node with `.../p1/d{1...2} .../p2/d{1...2}`. `PoolsLab` is the lab
(simulator/netns.py) with drive arguments chosen per start and, for one odd node, per node. The
checks: a node whose peers are not up answers S3 and /minio/health/ready with 503 and becomes ready
once the others are (all of them on a blank deployment, a majority on a formatted one); a node
started with another drive list stays out, says why in its log and in its 503, while the others
serve; a node killed with SIGKILL and started again rejoins and reads what was written without it;
a second pool keeps the old objects and takes new ones, and leaving a pool out is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from appliance.engine.names import META_NAME, key_to_path
from simulator.netns import S3_PORT, SUBNET_PREFIX, ClusterLab
from simulator.process import http_status
from tests.harness import fresh_bucket_name, wait_until

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(120)]

NODES = (1, 2, 3, 4)
DRIVES = (1, 2)
JOIN_TIMEOUT = 40.0  # a node waits a third of its 30 s peer round before it starts with a majority
SIZES = {"small": 1000, "multi-block": 2 * 1024 * 1024 + 17}  # one block; several


class PoolsLab(ClusterLab):
    """A `ClusterLab` whose nodes get one argument per pool in `pools`; `odd_args[i]` replaces node i's."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, nodes=len(NODES), drives_per_node=len(DRIVES))
        self.pools = ["p1"]
        self.odd_args: dict[int, list[str]] = {}

    def open(self) -> None:
        super().open()
        for i in NODES:
            for pool in ("p1", "p2"):
                for d in DRIVES:
                    (self.nodes[i].private_dir / pool / f"d{d}").mkdir(parents=True, exist_ok=True)

    def pool_arg(self, pool: str, drives: int = len(DRIVES)) -> str:
        return (f"http://{SUBNET_PREFIX}.{self.net.number}.1{{1...{len(NODES)}}}:{S3_PORT}"
                f"{self.shared_dir}/{pool}/d{{1...{drives}}}")

    def drive_args(self) -> list[str]:
        return [self.pool_arg(pool) for pool in self.pools]

    def server_command(self, i: int) -> list[str]:
        command = super().server_command(i)
        if i in self.odd_args:
            command = command[:-len(self.drive_args())] + self.odd_args[i]
        return command

    def holding(self, bucket: str, key: str) -> set[str]:
        """The pools with the key's metadata on some drive of some node."""
        return {pool for pool in ("p1", "p2") for i in NODES for d in DRIVES
                if (self.nodes[i].private_dir / pool / f"d{d}" / bucket / key_to_path(key) / META_NAME).exists()}


def unavailable(lab: ClusterLab, i: int) -> str | None:
    """The message of node i's 503 to an S3 request; None if it served it or did not answer at all."""
    try:
        lab.s3(i).list_buckets()
    except ClientError as exc:
        if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 503:
            return str(exc.response["Error"].get("Message", "")) or "(no message)"
    except BotoCoreError:
        pass
    return None


def ready_status(lab: ClusterLab, i: int) -> int | None:
    return http_status(lab.nodes[i].host.address, S3_PORT, "/minio/health/ready", timeout=2.0)


def waiting_message(lab: ClusterLab, i: int, words: str) -> str:
    """Wait until node i answers S3 with a 503 whose message contains `words`; return the message."""
    def mentioning() -> str:
        message = unavailable(lab, i) or ""
        return message if words in message else ""

    return wait_until(mentioning, 30, interval=0.2, message=f"node {i} answers 503 mentioning {words!r}")


def put_and_read_everywhere(lab: ClusterLab, bucket: str, prefix: str, writer: int, readers: tuple[int, ...]) -> None:
    for name, size in SIZES.items():
        data = (prefix + name).encode() * (size // len(prefix + name) + 1)
        lab.s3(writer).put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=data[:size])
    for reader in readers:
        for name, size in SIZES.items():
            data = (prefix + name).encode() * (size // len(prefix + name) + 1)
            got = lab.s3(reader).get_object(Bucket=bucket, Key=f"{prefix}{name}")["Body"].read()
            assert got == data[:size], f"{prefix}{name} via node {reader}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PoolsLab]:
    cluster = PoolsLab(tmp_path_factory.mktemp("bootstrap"))
    with cluster:
        yield cluster


@pytest.fixture
def cluster(lab: PoolsLab) -> PoolsLab:
    """The module's lab with every node running its ordinary arguments and ready."""
    lab.odd_args.clear()
    for i in NODES:
        if not lab.nodes[i].running():
            lab.start(i)
    lab.wait_cluster_ready()
    return lab


def test_node_waits_for_its_peers_then_joins(lab: PoolsLab) -> None:
    assert not any(lab.nodes[i].starts for i in NODES), "this test needs the blank deployment: it runs first"
    lab.start(1)
    assert "waiting for its peers" in waiting_message(lab, 1, "joining its cluster")
    assert ready_status(lab, 1) == 503
    for i in (2, 3):
        lab.start(i)
    # A blank deployment is formatted only when every drive answers: three nodes of four still wait.
    wait_until(lambda: all(unavailable(lab, i) for i in (1, 2, 3)), 30, message="nodes 1-3 serve the RPC, S3 503")
    assert all(ready_status(lab, i) == 503 for i in (1, 2, 3))
    lab.start(4)
    lab.wait_cluster_ready()
    bucket = fresh_bucket_name()
    lab.s3(1).create_bucket(Bucket=bucket)
    put_and_read_everywhere(lab, bucket, "first/", 1, NODES)

    # Formatted now: a majority (3 of 4) is enough once the grace period is over.
    for i in NODES:
        lab.stop(i)
    lab.start(1)
    waiting_message(lab, 1, "waiting for its peers")
    assert ready_status(lab, 1) == 503
    for i in (2, 3):
        lab.start(i)
    for i in (1, 2, 3):
        lab.wait_ready(i, JOIN_TIMEOUT)
    put_and_read_everywhere(lab, bucket, "majority/", 2, (1, 2, 3))
    assert "starting with 3 of 4 nodes" in lab.nodes[1].log_path.read_text()


def test_node_with_other_arguments_is_refused(cluster: PoolsLab) -> None:
    bucket = fresh_bucket_name()
    cluster.s3(1).create_bucket(Bucket=bucket)
    cluster.stop(4)
    cluster.odd_args[4] = [cluster.pool_arg("p1", drives=3)]
    cluster.start(4)
    message = waiting_message(cluster, 4, "refused to join")
    assert "different endpoint list" in message and "same arguments" in message, message
    assert ready_status(cluster, 4) == 503
    log = cluster.nodes[4].log_path.read_text()
    assert "refusing to join the cluster" in log and "different endpoint list" in log
    assert cluster.nodes[4].running(), "a refused node keeps answering (503) rather than exiting"
    put_and_read_everywhere(cluster, bucket, "while-refused/", 1, (1, 2, 3))
    cluster.stop(4)
    cluster.odd_args.clear()
    cluster.start(4)
    cluster.wait_ready(4, JOIN_TIMEOUT)
    put_and_read_everywhere(cluster, bucket, "after-refusal/", 4, NODES)


def test_node_killed_with_sigkill_rejoins(cluster: PoolsLab) -> None:
    bucket = fresh_bucket_name()
    cluster.s3(3).create_bucket(Bucket=bucket)
    put_and_read_everywhere(cluster, bucket, "before/", 2, NODES)
    cluster.kill(2)
    put_and_read_everywhere(cluster, bucket, "while-down/", 1, (1, 3, 4))
    cluster.start(2)
    cluster.wait_ready(2, JOIN_TIMEOUT)
    for prefix in ("before/", "while-down/"):
        put_and_read_everywhere(cluster, bucket, prefix, 3, (2,))
    cluster.wait_cluster_ready()


def test_second_pool_keeps_old_objects_and_takes_new_ones(cluster: PoolsLab) -> None:
    bucket = fresh_bucket_name()
    cluster.s3(1).create_bucket(Bucket=bucket)
    old = {f"old/{n:02d}": f"old object {n}".encode() * (n + 1) for n in range(8)}
    for n, (key, data) in enumerate(old.items()):
        cluster.s3(n % 4 + 1).put_object(Bucket=bucket, Key=key, Body=data)
    multi_block = b"m" * SIZES["multi-block"]
    cluster.s3(2).put_object(Bucket=bucket, Key="old/multi-block", Body=multi_block)
    for i in NODES:
        cluster.stop(i)
    cluster.pools = ["p1", "p2"]
    try:
        cluster.start_all()
        for i in NODES:
            for key, data in old.items():
                assert cluster.s3(i).get_object(Bucket=bucket, Key=key)["Body"].read() == data, f"{key} via {i}"
            assert cluster.s3(i).get_object(Bucket=bucket, Key="old/multi-block")["Body"].read() == multi_block
        assert all(cluster.holding(bucket, key) == {"p1"} for key in [*old, "old/multi-block"])
        for i in NODES:
            for d in DRIVES:
                assert (cluster.nodes[i].private_dir / "p2" / f"d{d}" / ".cairn.sys" / "buckets" / f"{bucket}.meta").is_file()
        new = [f"new/{n:02d}" for n in range(16)]
        for n, key in enumerate(new):
            cluster.s3(n % 4 + 1).put_object(Bucket=bucket, Key=key, Body=key.encode())
        where = {key: cluster.holding(bucket, key) for key in new}
        assert all(len(pools) == 1 for pools in where.values()), where
        assert {p for pools in where.values() for p in pools} == {"p1", "p2"}, where
        for n, key in enumerate(new):
            assert cluster.s3((n + 1) % 4 + 1).get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
        listed = cluster.s3(3).list_objects_v2(Bucket=bucket, MaxKeys=1000)["Contents"]
        assert [o["Key"] for o in listed] == sorted([*old, "old/multi-block", *new])

        # Leaving the first pool out is refused by every node, loudly: it holds most of the objects.
        for i in NODES:
            cluster.stop(i)
        cluster.pools = ["p2"]
        for i in NODES:
            cluster.start(i)
        for i in NODES:
            assert "missing" in waiting_message(cluster, i, "refused to join")
    finally:
        for i in NODES:
            cluster.stop(i)
        cluster.pools = ["p1", "p2"]
    cluster.start_all()
    assert cluster.s3(4).get_object(Bucket=bucket, Key="old/00")["Body"].read() == old["old/00"]

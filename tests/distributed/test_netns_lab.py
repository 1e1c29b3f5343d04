"""The network-namespace lab itself, proven with two ordinary single-node servers (no distributed mode).

Each host runs `cairn server` on its own address with its own drive folders behind the same path;
boto3 in the test process reaches both through the bridge; a fault on one host's link or firewall
stops only that host, and undoing it brings the host back; closing a lab leaves nothing behind.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from botocore.exceptions import BotoCoreError

from simulator.netns import ClusterLab, LabError, NetLab
from tests.harness import fresh_bucket_name, wait_until


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterLab]:
    with ClusterLab(tmp_path_factory.mktemp("netns-lab"), nodes=2, distributed=False) as cluster:
        cluster.start_all()
        yield cluster


def put_and_get(cluster: ClusterLab, i: int, bucket: str, body: bytes) -> bytes:
    client = cluster.s3(i)
    client.put_object(Bucket=bucket, Key="k", Body=body)
    return bytes(client.get_object(Bucket=bucket, Key="k")["Body"].read())


def test_each_host_serves_its_own_server(lab: ClusterLab) -> None:
    for i in (1, 2):
        bucket = fresh_bucket_name()
        lab.s3(i).create_bucket(Bucket=bucket)
        assert put_and_get(lab, i, bucket, f"hello from node {i}".encode()) == f"hello from node {i}".encode()
        assert {b["Name"] for b in lab.s3(3 - i).list_buckets()["Buckets"]}.isdisjoint({bucket})


Fault = Callable[[ClusterLab], None]

FAULTS: list[tuple[str, Fault, Fault, float]] = [
    # name, break host 1, repair host 1, most seconds a request to host 1 may take to fail
    ("link cut", lambda c: c.net.cut(1), lambda c: c.net.heal_link(1), 12.0),
    ("iptables drop", lambda c: c.net.drop(1, c.net.gateway), lambda c: c.net.undrop(1), 12.0),
    ("iptables tcp-reset", lambda c: c.net.drop(1, c.net.gateway, reset=True), lambda c: c.net.undrop(1), 1.5),
]


@pytest.mark.parametrize(("name", "inject", "repair", "fail_within"), FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_on_one_host_leaves_the_other_working(lab: ClusterLab, name: str, inject: Fault, repair: Fault,
                                                    fail_within: float) -> None:
    buckets = {i: fresh_bucket_name() for i in (1, 2)}
    for i, bucket in buckets.items():
        lab.s3(i).create_bucket(Bucket=bucket)
    inject(lab)
    try:
        started = time.monotonic()
        with pytest.raises(BotoCoreError):
            lab.s3(1).list_objects_v2(Bucket=buckets[1])
        assert time.monotonic() - started < fail_within, f"{name}: the failure took too long"
        assert put_and_get(lab, 2, buckets[2], b"still here") == b"still here"
    finally:
        repair(lab)
    wait_until(lambda: lab.ready(1), 15, interval=0.2, message=f"host 1 reachable again after {name}")
    assert put_and_get(lab, 1, buckets[1], b"back") == b"back"


def test_drive_folders_are_private_to_each_node(lab: ClusterLab) -> None:
    bucket = fresh_bucket_name()
    lab.s3(1).create_bucket(Bucket=bucket)
    lab.s3(1).put_object(Bucket=bucket, Key="k", Body=b"node 1 only")
    same_path = str(lab.shared_dir / "d1" / bucket)
    assert lab.in_node(1, ["test", "-d", same_path]).returncode == 0
    assert lab.in_node(2, ["test", "-e", same_path]).returncode == 1
    assert (lab.root / "node1" / "d1" / bucket).is_dir()
    assert not (lab.root / "node2" / "d1" / bucket).exists()
    assert not (lab.shared_dir / "d1").exists(), "the bind mounts leaked into the root namespace"


def link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout


def test_close_removes_exactly_what_the_lab_created(tmp_path: Path) -> None:
    net = NetLab()
    with net:
        host = net.add_host(1)
        assert host.run(["ip", "-4", "-o", "addr", "show", "eth0"]).stdout.count(net.ip(1) + "/24") == 1
        sleeper = host.popen(["sleep", "600"])
        net.drop(1, net.gateway)
        with pytest.raises(LabError):
            net.add_host(1)
        assert link_exists(net.bridge) and host.namespace in namespaces()
    assert not link_exists(net.bridge)
    assert not link_exists(host.host_veth)
    assert host.namespace not in namespaces()
    assert sleeper.poll() is not None

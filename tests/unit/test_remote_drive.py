"""RemoteDrive against LocalDrive: same results, same exceptions, over a real uvicorn RPC server.

A module-wide uvicorn process (two workers, so no call may rely on the worker that served the one
before) serves `tests/rpc_app.py` over a drive folder. Each contract row runs the same calls on a
LocalDrive in this process and on a RemoteDrive reaching the served folder, and compares every
outcome (value, or exception class). The wire format (auth, error mapping) is checked as tables
without a server.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from appliance.cluster import rpc
from appliance.cluster.remote_drive import RemoteDrive
from appliance.cluster.rpc import PeerClient, RpcAuthRejected, check_auth, derive_key, make_auth
from appliance.engine import errors
from appliance.engine.drive import Drive, LocalDrive
from appliance.engine.errors import DriveOffline, FileCorrupt, FileNotFoundOnDrive, VolumeNotFound
from tests.harness import free_port, wait_until

ROOT_USER = "rpc-test-root"
ROOT_PASSWORD = "rpc-test-secret"
KEY = derive_key(ROOT_USER, ROOT_PASSWORD)
REPO = Path(__file__).resolve().parents[2]


class RpcNode:
    """One `uvicorn --factory tests.rpc_app:create_app` process group on a fixed loopback port."""

    def __init__(self, root: Path, drives: list[Path]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "rpc.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "MINIO_"))}
        self.env.update(CAIRN_ROOT_USER=ROOT_USER, CAIRN_ROOT_PASSWORD=ROOT_PASSWORD,
                        CAIRN_TEST_RPC_DRIVES=os.pathsep.join(map(str, drives)))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [str(Path(sys.executable).parent / "uvicorn"), "--factory", "tests.rpc_app:create_app",
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", "2",
                   "--lifespan", "off", "--log-level", "warning"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=REPO, env=self.env, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        probe = PeerClient(self.url, KEY)
        wait_until(probe.probe, 30, interval=0.1, message=f"rpc server ready; log {self.log_path}")
        probe.close()

    def kill(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None


def _formatted(path: Path) -> LocalDrive:
    drive = LocalDrive(str(path))
    path.mkdir()
    drive.write_format(b"{}")
    drive.clean_temp()
    return drive


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RpcNode, Path, Path]]:
    root = tmp_path_factory.mktemp("rpc")
    local, served = root / "local", root / "served"
    _formatted(local)
    _formatted(served)
    rpc_node = RpcNode(root, [served])
    rpc_node.start()
    try:
        yield rpc_node, local, served
    finally:
        rpc_node.kill()


@pytest.fixture(scope="module")
def peer(node: tuple[RpcNode, Path, Path]) -> Iterator[PeerClient]:
    client = PeerClient(node[0].url, KEY)
    yield client
    client.close()


@pytest.fixture
def pair(node: tuple[RpcNode, Path, Path], peer: PeerClient) -> tuple[LocalDrive, RemoteDrive]:
    _, local, served = node
    return LocalDrive(str(local)), RemoteDrive(peer, str(served), f"{peer.base_url}{served}")


# --- the contract table ----------------------------------------------------------------------------

Outcome = tuple[str, Any]
Step = Callable[[Drive, str, dict[str, Any]], Any]


def run_steps(drive: Drive, bucket: str, steps: list[Step]) -> list[Outcome]:
    """Each step's value, or the class name of what it raised; `state` carries writers between steps."""
    state: dict[str, Any] = {}
    out: list[Outcome] = []
    for step in steps:
        try:
            out.append(("ok", step(drive, bucket, state)))
        except Exception as exc:
            out.append(("raised", type(exc).__name__))
    return out


def _writer(d: Drive, b: str, s: dict[str, Any], name: str, part: int = 1) -> None:
    s[name] = d.create_shard_writer(f"{b}-{name.split('.')[0]}", part)


VOLUMES: list[Step] = [
    lambda d, b, s: d.make_volume(b, b"v1"),
    lambda d, b, s: d.make_volume(b, b""),
    lambda d, b, s: d.stat_volume(b),
    lambda d, b, s: d.write_volume_meta(b, b"v2"),
    lambda d, b, s: d.stat_volume(b),
    lambda d, b, s: [v for v in d.list_volumes() if v[0] == b],
    lambda d, b, s: d.delete_volume(b),
    lambda d, b, s: d.stat_volume(b),
    lambda d, b, s: d.write_volume_meta(b, b"v3"),
    lambda d, b, s: d.delete_volume(b),
]

META: list[Step] = [
    lambda d, b, s: d.make_volume(b, b""),
    lambda d, b, s: d.write_meta(b, "dir/ünï key", b"m1"),
    lambda d, b, s: d.read_meta(b, "dir/ünï key"),
    lambda d, b, s: d.commit(b, "dir/ünï key", b"m2", None, None),
    lambda d, b, s: d.read_meta(b, "dir/ünï key"),
    lambda d, b, s: d.read_meta(b, "missing"),
    lambda d, b, s: d.read_meta(b + "-nobucket", "k"),
    lambda d, b, s: d.write_meta(b + "-nobucket", "k", b"m"),
    lambda d, b, s: d.write_meta(b, "", b"m"),
    lambda d, b, s: d.write_meta(b, "k" * 1100, b"m"),
    lambda d, b, s: d.write_meta(b, "L" * 300 + "/x", b"long"),
    lambda d, b, s: d.read_meta(b, "L" * 300 + "/x"),
    lambda d, b, s: d.delete_meta(b, "dir/ünï key"),
    lambda d, b, s: d.delete_meta(b, "dir/ünï key"),
    lambda d, b, s: d.read_meta(b, "dir/ünï key"),
]

SHARDS: list[Step] = [
    lambda d, b, s: d.make_volume(b, b""),
    lambda d, b, s: _writer(d, b, s, "t1"),
    lambda d, b, s: s["t1"].write([b"abc", b"def"]),
    lambda d, b, s: s["t1"].write([b"g"]),
    lambda d, b, s: s["t1"].close(),
    lambda d, b, s: s["t1"].close(),
    lambda d, b, s: _writer(d, b, s, "t1.2", 2),
    lambda d, b, s: s["t1.2"].write([b"second part"]),
    lambda d, b, s: s["t1.2"].close(),
    lambda d, b, s: _writer(d, b, s, "t1"),  # the temp directory exists already
    lambda d, b, s: d.commit(b, "obj", b"meta", f"{b}-t1", "%d.one"),
    lambda d, b, s: d.open_shard(b, "obj", "%d.one").read_at(2, 3),
    lambda d, b, s: d.open_shard(b, "obj", "%d.one").read_at(5, 100),
    lambda d, b, s: d.open_shard(b, "obj", "%d.one", 2).read_at(0, 6),
    lambda d, b, s: d.open_shard(b, "obj", "%d.two").read_at(0, 1),
    lambda d, b, s: d.open_shard(b, "nothing", "%d.one").read_at(0, 1),
    lambda d, b, s: d.list_data_dirs(b, "obj"),
    lambda d, b, s: d.list_data_dirs(b, "nothing"),
    lambda d, b, s: _writer(d, b, s, "t2"),
    lambda d, b, s: d.abort_temp(f"{b}-t2"),
    lambda d, b, s: _writer(d, b, s, "t2.2", 2),  # its temp directory is gone
    lambda d, b, s: d.abort_temp(f"{b}-never"),
    lambda d, b, s: d.delete_meta(b, "obj"),
    lambda d, b, s: d.remove_data_dirs(b, "obj", ["%d.one"]),
    lambda d, b, s: d.list_data_dirs(b, "obj"),
]

SYSTEM: list[Step] = [
    lambda d, b, s: d.sys_write(f"{b}/a", b"1"),
    lambda d, b, s: d.sys_read(f"{b}/a"),
    lambda d, b, s: d.sys_list(b),
    lambda d, b, s: d.sys_link(f"{b}/a", f"{b}/b"),
    lambda d, b, s: d.sys_move(f"{b}/b", f"{b}-u/c"),
    lambda d, b, s: d.sys_list(f"{b}-u"),
    lambda d, b, s: d.sys_read(f"{b}/b"),
    lambda d, b, s: d.sys_link(f"{b}/none", f"{b}/x"),
    lambda d, b, s: d.sys_remove_empty_dir(b),
    lambda d, b, s: d.sys_delete(f"{b}/a"),
    lambda d, b, s: d.sys_delete(f"{b}/a"),
    lambda d, b, s: d.sys_remove_empty_dir(b),
    lambda d, b, s: d.sys_list(b),
    lambda d, b, s: d.sys_delete_tree(f"{b}-u"),
    lambda d, b, s: d.sys_delete_tree(f"{b}-u"),
    lambda d, b, s: d.sys_read(f"{b}-u/c"),
]

IDENTITY: list[Step] = [
    lambda d, b, s: d.read_format(),
    lambda d, b, s: d.make_volume(b, b""),
    lambda d, b, s: d.is_blank(),
    lambda d, b, s: (type(d.disk_info()).__name__, d.disk_info().total > 0),
    lambda d, b, s: d.clean_temp(),
    lambda d, b, s: d.walk(b + "-nobucket", "", "", True).__next__(),
    lambda d, b, s: list(d.walk(b, "", "", True)),
]


@pytest.mark.parametrize("steps", [VOLUMES, META, SHARDS, SYSTEM, IDENTITY],
                         ids=["volumes", "meta", "shards", "system", "identity"])
def test_remote_drive_matches_local(pair: tuple[LocalDrive, RemoteDrive], steps: list[Step]) -> None:
    local, remote = pair
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    want = run_steps(local, bucket, steps)
    got = run_steps(remote, bucket, steps)
    assert got == want
    assert any(kind == "raised" for kind, _ in want), "each row checks failures too"


# --- walking in pages ----------------------------------------------------------------------------

TRICKY_KEYS = ["a", "a-c", "a/b", "a/b/c", "a/", "a//x", "a0", "b", "ünï", "z/", ".hidden", "%pct", "x y", "+",
               "deep/er/and/deeper/key", "deep/er/x", "a/b-", "a/b/", "a/b0", "L" * 300, "a/" + "é" * 400 + "/x"]
BULK_KEYS = [f"p{i % 3}/s{i % 7}/k{i:04d}" for i in range(700)] + [f"flat{i:04d}" for i in range(1100)]


@pytest.fixture(scope="module")
def walk_bucket(node: tuple[RpcNode, Path, Path]) -> str:
    served = LocalDrive(str(node[2]))
    served.make_volume("walk", b"")
    with ThreadPoolExecutor(32) as pool:  # concurrent commits share group commits: fast to fill
        list(pool.map(lambda key: served.commit("walk", key, key.encode(), None, None), TRICKY_KEYS + BULK_KEYS))
    return "walk"


@pytest.mark.parametrize(("page", "prefix", "marker", "recursive"), [
    (1000, "", "", True),
    (1000, "", "", False),
    (1000, "", "flat0500", False),
    (1000, "p1/", "", True),
    (7, "a", "", True),
    (7, "a", "", False),
    (7, "a/", "", False),
    (1, "a/b", "", False),
    (3, "", "a/b", False),
    (3, "", "a/", True),
    (5, "deep/", "deep/er/and", False),
    (5, "p0/", "p0/s3", False),
    (2, "q", "", True),
])
def test_walk_pages_match_local(node: tuple[RpcNode, Path, Path], peer: PeerClient, walk_bucket: str,
                                page: int, prefix: str, marker: str, recursive: bool) -> None:
    served = str(node[2])
    remote = RemoteDrive(peer, served, served, walk_page=page)
    want = list(LocalDrive(served).walk(walk_bucket, prefix, marker, recursive))
    assert list(remote.walk(walk_bucket, prefix, marker, recursive)) == want
    if page == 1000 and not prefix and recursive:
        assert len(want) > 1000


# --- service routing, auth and failures ---------------------------------------------------------------


def test_services_and_rejections(node: tuple[RpcNode, Path, Path], peer: PeerClient) -> None:
    served = str(node[2])
    assert peer.call("node", "info", {})["version"] == "test"
    assert peer.call("lock", "echo", {"n": 1}) == {"method": "echo", "args": {"n": 1}}
    for service, method in [("lock", "nope"), ("drive", "nope"), ("nope", "info")]:
        with pytest.raises(DriveOffline, match="does not serve"):
            peer.call(service, method, {"drive": served})
    with pytest.raises(DriveOffline, match="no drive"):
        RemoteDrive(peer, "/not/served", "x").read_format()
    intruder = PeerClient(peer.base_url, derive_key(ROOT_USER, "wrong"))
    with pytest.raises(RpcAuthRejected) as caught:
        RemoteDrive(intruder, served, served).read_format()
    assert "wrong" not in str(caught.value) and intruder.online
    intruder.close()
    assert peer.online


def test_append_at_a_wrong_offset_is_refused(pair: tuple[LocalDrive, RemoteDrive], peer: PeerClient) -> None:
    _, remote = pair
    temp_id = f"t-{uuid.uuid4().hex}"
    writer = remote.create_shard_writer(temp_id)
    writer.write([b"12345"])
    writer.close()  # sends the buffered frames
    append = {"drive": remote.path, "temp_id": temp_id, "part": 1}
    with pytest.raises(FileCorrupt):  # a repeated append would shift every later frame
        peer.call("drive", "shard_append", {**append, "offset": 0}, body=b"12345")
    peer.call("drive", "shard_append", {**append, "offset": 5}, body=b"678")
    with open(os.path.join(remote.path, ".cairn.sys", "tmp", temp_id, "part.1"), "rb") as f:
        assert f.read() == b"12345678"
    remote.abort_temp(temp_id)


def _raw_post(url_port: int, path: str, headers: dict[str, str], method: str = "POST") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", url_port, timeout=5)
    try:
        conn.putrequest(method, path)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.parametrize(("method", "auth", "length", "status"), [
    ("POST", None, "0", 401),
    ("POST", "garbage", "0", 401),
    ("POST", "valid", str(65 * 1024 * 1024), 413),
    ("GET", "valid", "0", 405),
])
def test_raw_requests_are_refused(node: tuple[RpcNode, Path, Path], method: str, auth: str | None,
                                  length: str, status: int) -> None:
    path = rpc.PREFIX + "drive/read_format"
    headers = {"content-length": length}
    if auth is not None:
        headers[rpc.AUTH_HEADER] = make_auth(KEY, "POST", path) if auth == "valid" else auth
    assert _raw_post(node[0].port, path, headers, method) == status


def test_killed_peer_fails_fast_then_comes_back(node: tuple[RpcNode, Path, Path]) -> None:
    rpc_node, _, served = node
    peer = PeerClient(rpc_node.url, KEY)
    drive = RemoteDrive(peer, str(served), str(served))
    drive.read_format()
    rpc_node.kill()
    for _ in range(3):
        started = time.monotonic()
        with pytest.raises(DriveOffline):
            drive.read_format()
        assert time.monotonic() - started < 3
    assert not peer.online
    rpc_node.start()
    # No explicit probe: a call made 2 s after the last probe probes by itself.
    assert wait_until(lambda: _succeeds(drive.read_format), 20, interval=0.2)
    assert peer.online
    with pytest.raises(FileNotFoundOnDrive):
        drive.read_meta("walk", "no such key")
    with pytest.raises(VolumeNotFound):
        drive.read_meta("no-such-bucket", "k")
    peer.close()


def test_stopped_peer_times_out_then_fails_fast(node: tuple[RpcNode, Path, Path]) -> None:
    rpc_node, _, served = node
    assert rpc_node.process is not None
    peer = PeerClient(rpc_node.url, KEY, read_timeout=1.0)
    drive = RemoteDrive(peer, str(served), str(served))
    drive.read_format()
    os.killpg(rpc_node.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(DriveOffline):
            drive.read_format()
        with pytest.raises(DriveOffline):
            drive.read_format()
        assert time.monotonic() - started < 3
        assert not peer.online and not peer.probe()
    finally:
        os.killpg(rpc_node.process.pid, signal.SIGCONT)
    assert wait_until(peer.probe, 10, interval=0.1)
    drive.read_format()
    peer.close()


def _succeeds(call: Callable[[], Any]) -> bool:
    try:
        call()
    except DriveOffline:
        return False
    return True


# --- the wire format, without a server --------------------------------------------------------------

NOW = 1_800_000_000.0


@pytest.mark.parametrize(("header", "path", "now", "accepted"), [
    (make_auth(KEY, "POST", "/p", NOW), "/p", NOW, True),
    (make_auth(KEY, "post", "/p", NOW), "/p", NOW + 899, True),
    (make_auth(KEY, "POST", "/p", NOW), "/p", NOW - 899, True),
    (make_auth(KEY, "POST", "/p", NOW), "/p", NOW + 901, False),
    (make_auth(KEY, "POST", "/p", NOW), "/p", NOW - 901, False),
    (make_auth(KEY, "POST", "/p", NOW), "/q", NOW, False),
    (make_auth(derive_key(ROOT_USER, "other"), "POST", "/p", NOW), "/p", NOW, False),
    (make_auth(KEY, "GET", "/p", NOW), "/p", NOW, False),
    ("", "/p", NOW, False),
    ("1800000000", "/p", NOW, False),
    ("x:" + "0" * 64, "/p", NOW, False),
])
def test_check_auth(header: str, path: str, now: float, accepted: bool) -> None:
    assert check_auth(KEY, "POST", path, header, now=now) is accepted


DRIVE_ERRORS = [cls for cls in vars(errors).values()
                if isinstance(cls, type) and issubclass(cls, errors.DriveError)]


@pytest.mark.parametrize("cls", DRIVE_ERRORS + [errors.InvalidObjectName, errors.KeyTooLong],
                         ids=lambda c: c.__name__)
def test_errors_cross_the_wire_by_class(cls: type[Exception]) -> None:
    decoded = rpc.decode_error(rpc.encode_error(cls("/srv/d1: something")))
    assert type(decoded) is cls and str(decoded) == "/srv/d1: something"


@pytest.mark.parametrize("body", [rpc.encode_error(ValueError("boom")), b"\xc1garbage"])
def test_unknown_errors_become_drive_offline(body: bytes) -> None:
    assert type(rpc.decode_error(body)) is DriveOffline


@pytest.mark.parametrize(("frame", "reads"), [
    (1000, [(0, 3000), (3000, 3000), (6000, 500_000), (506_000, 1_000_000), (1_506_000, 10)]),  # sequential
    (70_000, [(0, 70_000), (70_000, 70_000), (5, 10), (2_000_000, 70_000), (140_000, 70_000)]),  # jumps back and forth
    (4096, [(2_900_000, 400_000), (0, 1)]),  # past the end: short, as a local read
])
def test_batched_appends_and_read_ahead_keep_every_byte(
    pair: tuple[LocalDrive, RemoteDrive], frame: int, reads: list[tuple[int, int]]
) -> None:
    remote = pair[1]
    local = LocalDrive(remote.path)  # the served folder itself, read without the RPC
    payload = os.urandom(3 * 1024 * 1024 + 123)
    temp_id = f"t-{uuid.uuid4().hex}"
    writer = remote.create_shard_writer(temp_id)
    for at in range(0, len(payload), frame * 3):
        writer.write([payload[at : at + frame], payload[at + frame : at + 2 * frame], payload[at + 2 * frame : at + 3 * frame]])
    writer.close()
    bucket = f"b{uuid.uuid4().hex[:8]}"
    remote.make_volume(bucket, b"{}")
    remote.commit(bucket, "k", b"meta", temp_id, "%d.x")
    reader = remote.open_shard(bucket, "k", "%d.x")
    local_reader = local.open_shard(bucket, "k", "%d.x")
    for offset, length in reads:
        assert reader.read_at(offset, length) == local_reader.read_at(offset, length) == payload[offset : offset + length]
    local_reader.close()
    reader.close()

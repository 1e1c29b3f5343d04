"""LocalDrive: durable commits, listing order, and how failures are reported."""

import os
from pathlib import Path

import pytest

from appliance.engine.drive import LocalDrive
from appliance.engine.errors import (
    DriveOffline,
    FileNotFoundOnDrive,
    UnformattedDrive,
    VolumeExists,
    VolumeNotFound,
)

KEYS = [
    "a", "a-c", "a/b", "a/b/c", "a/", "a//x", "a0", "b", "ünï", "z/", "z/z", ".hidden", "%pct", "x y", "+",
    "deep/er/and/deeper/key", "deep/er/x", "A", "a.b", "a/b-", "a/b/", "a/b0",
    "L" * 300, "L" * 299 + "M", "a/" + "é" * 400, "a/" + "é" * 400 + "/x", "m" * 1024,
]


@pytest.fixture
def drive(tmp_path: Path) -> LocalDrive:
    d = LocalDrive(str(tmp_path / "d1"))
    os.makedirs(d.root)
    d.write_format(b"{}")
    d.clean_temp()
    d.make_volume("bucket", b"meta")
    return d


def put(d: LocalDrive, key: str, meta: bytes = b"m") -> None:
    d.commit("bucket", key, meta, None, None)


def test_read_format_of_blank_and_missing(tmp_path: Path) -> None:
    blank = LocalDrive(str(tmp_path / "blank"))
    os.makedirs(blank.root)
    with pytest.raises(UnformattedDrive):
        blank.read_format()
    assert blank.is_blank()
    with pytest.raises(DriveOffline):
        LocalDrive(str(tmp_path / "nope")).read_format()


def test_commit_and_read_meta(drive: LocalDrive) -> None:
    for key in KEYS:
        put(drive, key, key.encode())
    for key in KEYS:
        assert drive.read_meta("bucket", key) == key.encode()
    with pytest.raises(FileNotFoundOnDrive):
        drive.read_meta("bucket", "missing")
    with pytest.raises(VolumeNotFound):
        drive.read_meta("nobucket", "a")


def test_commit_with_data_dir(drive: LocalDrive) -> None:
    w = drive.create_shard_writer("t1")
    w.write([b"abc", b"def"])
    w.close()
    drive.commit("bucket", "obj", b"meta", "t1", "%d.one")
    r = drive.open_shard("bucket", "obj", "%d.one")
    assert r.read_at(2, 3) == b"cde"
    r.close()
    assert drive.list_data_dirs("bucket", "obj") == ["%d.one"]
    drive.delete_meta("bucket", "obj")
    drive.remove_data_dirs("bucket", "obj", ["%d.one"])
    assert not os.path.exists(os.path.join(drive.root, "bucket", "obj"))


def test_walk_recursive_is_sorted_by_utf8(drive: LocalDrive) -> None:
    for key in KEYS:
        put(drive, key)
    keys = [e.key for e in drive.walk("bucket", "", "", True)]
    assert keys == sorted(KEYS, key=lambda k: k.encode())


@pytest.mark.parametrize(
    ("prefix", "marker"),
    [("a", ""), ("a/", ""), ("a/b", ""), ("", "a/b"), ("a", "a/"), ("", "b"), ("deep/", "deep/er/and"), ("q", "")],
)
def test_walk_prefix_and_marker(drive: LocalDrive, prefix: str, marker: str) -> None:
    for key in KEYS:
        put(drive, key)
    got = [e.key for e in drive.walk("bucket", prefix, marker, True)]
    want = sorted((k for k in KEYS if k.startswith(prefix) and k.encode() > marker.encode()), key=lambda k: k.encode())
    assert got == want


def test_walk_non_recursive_gives_prefixes(drive: LocalDrive) -> None:
    for key in KEYS:
        put(drive, key)
    got = [(e.key, e.meta is None) for e in drive.walk("bucket", "", "", False)]
    # Top level: keys without '/', plus one common prefix per first segment that has children.
    want = {(k, False) for k in KEYS if "/" not in k} | {(k.split("/")[0] + "/", True) for k in KEYS if "/" in k}
    assert got == sorted(want, key=lambda e: e[0].encode())
    assert ("a/", True) in got and ("deep/", True) in got and ("z/", True) in got


def test_deleted_objects_leave_no_prefix(drive: LocalDrive) -> None:
    put(drive, "p/q/r")
    drive.delete_meta("bucket", "p/q/r")
    assert list(drive.walk("bucket", "", "", False)) == []
    assert not os.path.exists(os.path.join(drive.root, "bucket", "p"))
    put(drive, "q/" + "é" * 300)
    drive.delete_meta("bucket", "q/" + "é" * 300)
    assert os.listdir(os.path.join(drive.root, "bucket")) == []


def test_volumes(drive: LocalDrive) -> None:
    with pytest.raises(VolumeExists):
        drive.make_volume("bucket", b"")
    drive.make_volume("other", b"x")
    assert [n for n, _ in drive.list_volumes()] == ["bucket", "other"]
    assert drive.stat_volume("other") == b"x"
    drive.delete_volume("other")
    with pytest.raises(VolumeNotFound):
        drive.stat_volume("other")


def test_missing_drive_reports_offline_not_absent(drive: LocalDrive, tmp_path: Path) -> None:
    put(drive, "k")
    os.rename(drive.root, str(tmp_path / "moved"))
    for call in (lambda: drive.read_meta("bucket", "k"), lambda: drive.stat_volume("bucket"),
                 lambda: drive.list_volumes(), lambda: put(drive, "k2")):
        with pytest.raises(DriveOffline):
            call()


def test_clean_temp_removes_leftovers(drive: LocalDrive) -> None:
    w = drive.create_shard_writer("leftover")
    w.write([b"x"])
    w.close()
    drive.clean_temp()
    assert os.listdir(os.path.join(drive.root, ".cairn.sys", "tmp")) == []

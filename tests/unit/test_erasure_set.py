"""The erasure set against real folders, with drives failing and corrupting through FaultyDrive.

Each row of a fault table names which drives misbehave and how; every acknowledged object must
read back byte-identical while within parity, and fail with a clean error (never wrong bytes)
beyond it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from appliance.engine.drive import LocalDrive
from appliance.engine.erasure_set import ErasureSet
from appliance.engine.errors import (
    BucketNotFound,
    DriveOffline,
    ObjectNotFound,
    ReadQuorumUnavailable,
    WriteQuorumUnavailable,
)
from appliance.engine.faulty import FaultPlan, FaultyDrive
from appliance.engine.healing import heal_bucket, heal_object
from appliance.engine.locks import NamespaceLocker
from appliance.engine.objects import PutOptions

SIZES = [0, 1, 4095, 200_000, 1024 * 1024 - 1, 1024 * 1024, 1024 * 1024 + 1, 3 * 1024 * 1024 + 17]


def payload(size: int, seed: int = 0) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(size))


async def chunks(data: bytes, step: int = 65536) -> AsyncIterator[bytes]:
    for i in range(0, len(data), step):
        yield data[i : i + step]


class Harness:
    def __init__(self, tmp: Path, n: int = 4, parity: int = 2) -> None:
        self.faulty = []
        for i in range(n):
            d = LocalDrive(str(tmp / f"d{i}"))
            os.makedirs(d.root)
            d.write_format(b"{}")
            d.clean_temp()
            d.make_volume("b", b"{}")
            self.faulty.append(FaultyDrive(d))
        self.degraded: list[tuple[str, str]] = []
        self.eset = ErasureSet(
            0, list(self.faulty), default_parity=parity, executor=ThreadPoolExecutor(16),
            locker=NamespaceLocker(str(tmp / "locks")), on_degraded=lambda b, k: self.degraded.append((b, k)),
        )

    async def put(self, key: str, data: bytes) -> None:
        await self.eset.put_object("b", key, chunks(data), PutOptions())

    async def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        view = await self.eset.read_view("b", key)
        last = view.version.size - 1 if end is None else end
        return b"".join([c async for c in self.eset.stream("b", key, view, start, last)])

    def fail(self, drives: list[int], **plan: object) -> None:
        for i in drives:
            self.faulty[i].plan = FaultPlan(**plan)  # type: ignore[arg-type]

    def heal_all(self) -> None:
        for d in self.faulty:
            d.plan = FaultPlan()


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(tmp_path: Path, size: int) -> None:
    h = Harness(tmp_path)
    data = payload(size)

    async def go() -> None:
        await h.put("k", data)
        assert await h.get("k") == data
        info = await h.eset.get_object_info("b", "k")
        assert info.size == size
        if size > 10:
            assert await h.get("k", 3, size - 5) == data[3 : size - 4]

    run(go())


FAULTS = [
    # drives, plan, readable
    ([0], {"fail": {"*"}}, True),
    ([1, 3], {"fail": {"*"}}, True),
    ([0, 1], {"corrupt_reads": True}, True),
    ([2], {"fail": {"open_shard"}}, True),
    ([0, 1, 2], {"fail": {"*"}}, False),
    ([1, 2, 3], {"corrupt_reads": True}, False),
]


@pytest.mark.parametrize(("drives", "plan", "readable"), FAULTS)
@pytest.mark.parametrize("size", [5, 200_000, 2 * 1024 * 1024 + 3])
def test_reads_under_faults(tmp_path: Path, drives: list[int], plan: dict, readable: bool, size: int) -> None:
    h = Harness(tmp_path)
    data = payload(size, seed=7)

    async def go() -> None:
        await h.put("obj", data)
        h.fail(drives, **plan)
        if readable:
            assert await h.get("obj") == data
        else:
            with pytest.raises((ReadQuorumUnavailable, ObjectNotFound)):
                await h.get("obj")

    run(go())


def test_write_below_quorum_leaves_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> None:
        await h.put("k", b"old")
        h.fail([0, 1], fail={"*"})
        with pytest.raises(WriteQuorumUnavailable):
            await h.put("k", payload(2 * 1024 * 1024))
        h.heal_all()
        assert await h.get("k") == b"old"
        for d in h.faulty:
            tmp = os.path.join(d.endpoint, ".cairn.sys", "tmp")
            assert [n for n in os.listdir(tmp) if not n.startswith("deleted")] == []

    run(go())


def test_commit_failure_rolls_back(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> None:
        h.fail([2, 3], fail={"commit"})
        with pytest.raises(WriteQuorumUnavailable):
            await h.put("new", payload(300_000))
        h.heal_all()
        with pytest.raises(ObjectNotFound):
            await h.get("new")

    run(go())


def test_missing_bucket(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> None:
        with pytest.raises(BucketNotFound):
            await h.eset.put_object("nobucket", "k", chunks(b"x"), PutOptions())

    run(go())


def test_heal_rebuilds_then_other_drives_can_die(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    objects = {f"o{size}": payload(size, seed=size % 13) for size in SIZES}

    async def go() -> None:
        for key, data in objects.items():
            await h.put(key, data)
        # Wipe two drives' data, heal, then lose the *other* two: only healed shards can serve.
        for i in (0, 1):
            bucket = os.path.join(h.faulty[i].endpoint, "b")
            for name in os.listdir(bucket):
                shutil.rmtree(os.path.join(bucket, name))
        for key in objects:
            result = await heal_object(h.eset, "b", key)
            assert result.status in ("healed", "ok"), result
        h.fail([2, 3], fail={"*"})
        for key, data in objects.items():
            assert await h.get(key) == data

    run(go())


def _shard_of(drive_root: str, key: str) -> Path:
    return next((Path(drive_root) / "b" / key).rglob("part.1"))


def _flip_first_byte(path: Path) -> None:
    with open(path, "r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 0xFF]))


@pytest.mark.parametrize(("damage", "deep", "rebuilt"), [
    ("truncate", False, True),     # a short shard fails the quick check of its last frame
    ("truncate", True, True),
    ("delete", False, True),
    ("bitrot-first-frame", True, True),
    ("bitrot-first-frame", False, False),  # quick: left for the scanner's deep pass
])
def test_quick_and_deep_heal(tmp_path: Path, damage: str, deep: bool, rebuilt: bool) -> None:
    h = Harness(tmp_path)
    data = payload(3 * 1024 * 1024 + 17, seed=5)

    async def go() -> None:
        await h.put("o", data)
        shard = _shard_of(h.faulty[1].endpoint, "o")
        if damage == "truncate":
            os.truncate(shard, shard.stat().st_size - 1)
        elif damage == "delete":
            shard.unlink()
        else:
            _flip_first_byte(shard)
        result = await heal_object(h.eset, "b", "o", deep=deep)
        assert result.status == ("healed" if rebuilt else "ok"), result
        # Rebuilt or not, the healthy drives still serve the exact bytes; after a rebuild drive 1 serves too.
        h.fail([0, 2] if rebuilt else [1], fail={"*"})
        assert await h.get("o") == data

    run(go())


def test_heal_purges_dangling(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> None:
        await h.put("gone", b"data")
        h.fail([3], fail={"*"})
        await h.eset.delete_object("b", "gone")
        h.heal_all()
        with pytest.raises(ObjectNotFound):
            await h.get("gone")
        result = await heal_object(h.eset, "b", "gone")
        assert result.status == "purged"
        assert not os.path.exists(os.path.join(h.faulty[3].endpoint, "b", "gone"))

    run(go())


def test_listing_ignores_minority_copies(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> None:
        for key in ("a", "b/c", "d"):
            await h.put(key, key.encode())
        h.fail([3], fail={"*"})
        await h.eset.delete_object("b", "d")
        h.heal_all()
        keys = [e.key for e in h.eset.iter_entries("b", "", "", True)]
        assert keys == ["a", "b/c"]
        h.fail([0, 1], fail={"*"})
        keys = [e.key for e in h.eset.iter_entries("b", "", "", False)]
        assert keys == ["a", "b/"]
        h.fail([0, 1, 2], fail={"*"})
        with pytest.raises(ReadQuorumUnavailable):
            list(h.eset.iter_entries("b", "", "", True))

    run(go())


def test_degraded_reads_are_queued(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> None:
        await h.put("k", payload(2_000_000))
        h.fail([1], corrupt_reads=True)
        assert await h.get("k") == payload(2_000_000)
        assert ("b", "k") in h.degraded

    run(go())


def test_offline_drive_is_not_queued_as_degraded_meta(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> None:
        await h.put("k", b"small")
        h.fail([0], fail={"*"}, error=DriveOffline)
        h.degraded.clear()
        await h.eset.get_object_info("b", "k")
        assert h.degraded == []

    run(go())


def test_heal_bucket_recreates_and_updates_configuration(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    current = b'{"created_ns": 1, "updated_ns": 5, "versioning": "Enabled"}'

    async def go() -> None:
        for d in h.faulty[:2]:
            d.write_volume_meta("b", current)
        shutil.rmtree(os.path.join(h.faulty[3].endpoint, "b"))
        repaired = await heal_bucket(h.eset, "b", current)
        assert repaired == 2  # drive 2's stale copy rewritten, drive 3's bucket recreated
        for d in h.faulty:
            assert d.stat_volume("b") == current

    run(go())

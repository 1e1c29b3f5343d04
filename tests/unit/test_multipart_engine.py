"""Multipart uploads over one erasure set, against real folders with FaultyDrive.

Parts of odd sizes are completed and read back whole and across part boundaries, with drives
failed or corrupted; completes with bad part lists are refused; a multipart object is healed.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from appliance.engine.drive import LocalDrive
from appliance.engine.erasure_set import ErasureSet, block_plan
from appliance.engine.errors import ObjectNotFound, ReadQuorumUnavailable, WriteQuorumUnavailable
from appliance.engine.faulty import FaultPlan, FaultyDrive
from appliance.engine.healing import heal_object
from appliance.engine.locks import NamespaceLocker
from appliance.engine.multipart import (
    MIN_PART_SIZE,
    InvalidPart,
    MultipartSet,
    PartTooSmall,
    Upload,
    UploadJanitor,
    UploadNotFound,
    multipart_etag,
)
from appliance.engine.objects import PutOptions

MIB = 1024 * 1024


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def chunks(data: bytes, step: int = 300_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), step):
        yield data[i : i + step]


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


class Harness:
    def __init__(self, tmp: Path, n: int = 4, parity: int = 2) -> None:
        self.faulty = []
        self.roots = []
        for i in range(n):
            d = LocalDrive(str(tmp / f"d{i}"))
            os.makedirs(d.root)
            d.write_format(b"{}")
            d.clean_temp()
            d.make_volume("b", b"{}")
            self.faulty.append(FaultyDrive(d))
            self.roots.append(d.root)
        self.eset = ErasureSet(0, list(self.faulty), default_parity=parity, executor=ThreadPoolExecutor(16),
                               locker=NamespaceLocker(str(tmp / "locks")))
        self.mp = MultipartSet(self.eset)

    async def upload(self, key: str, parts: list[bytes]) -> tuple[Upload, list[tuple[int, str]]]:
        upload = await self.mp.create("b", key, PutOptions(content_type="text/x"))
        done = []
        for number, data in enumerate(parts, start=1):
            info = await self.mp.put_part(upload, number, chunks(data))
            done.append((number, info.etag))
        return upload, done

    async def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        view = await self.eset.read_view("b", key)
        last = view.version.size - 1 if end is None else end
        return b"".join([c async for c in self.eset.stream("b", key, view, start, last)])

    def fail(self, drives: list[int], **plan: Any) -> None:
        for i in drives:
            self.faulty[i].plan = FaultPlan(**plan)

    def clear(self) -> None:
        for d in self.faulty:
            d.plan = FaultPlan()


PART_SIZES = [
    pytest.param([0], id="one-empty-part"),
    pytest.param([17], id="one-tiny-part"),
    pytest.param([MIN_PART_SIZE, 1], id="min-then-1-byte"),
    pytest.param([MIN_PART_SIZE + 3, MIN_PART_SIZE, MIB + 1], id="odd-sizes"),
    pytest.param([MIN_PART_SIZE, 0], id="empty-last-part"),
]


@pytest.mark.parametrize("sizes", PART_SIZES)
def test_parts_of_odd_sizes_read_back(tmp_path: Path, sizes: list[int]) -> None:
    h = Harness(tmp_path)
    parts = [payload(s, seed) for seed, s in enumerate(sizes)]
    whole = b"".join(parts)

    async def go() -> None:
        upload, done = await h.upload("dir/obj", parts)
        info = await h.mp.complete(upload, done, PutOptions())
        assert info.etag == multipart_etag([e for _, e in done])
        assert info.etag.endswith(f"-{len(sizes)}") and info.size == len(whole)
        assert info.parts_count == len(sizes)
        assert await h.get("dir/obj") == whole
        view = await h.eset.read_view("b", "dir/obj")
        assert view.version.content_type == "text/x"
        assert not h.mp.scan_uploads("b")

    run(go())


RANGES = [
    pytest.param(MIN_PART_SIZE - 10, MIN_PART_SIZE + 10, id="across-first-boundary"),
    pytest.param(MIN_PART_SIZE - 1, MIN_PART_SIZE - 1, id="last-byte-of-part-1"),
    pytest.param(MIN_PART_SIZE + 3, 2 * MIN_PART_SIZE + 5, id="whole-part-2-and-more"),
    pytest.param(MIB - 1, 2 * MIN_PART_SIZE + 100, id="across-everything"),
]


@pytest.mark.parametrize(("start", "end"), RANGES)
@pytest.mark.parametrize("fault", [
    pytest.param({}, id="healthy"),
    pytest.param({"drives": [0, 3], "fail": {"*"}}, id="two-drives-offline"),
    pytest.param({"drives": [1, 2], "corrupt_reads": True}, id="two-drives-bitrot"),
])
def test_ranges_across_part_boundaries(tmp_path: Path, start: int, end: int, fault: dict[str, Any]) -> None:
    h = Harness(tmp_path)
    parts = [payload(MIN_PART_SIZE, 1), payload(MIN_PART_SIZE + 3, 2), payload(MIB + 7, 3)]
    whole = b"".join(parts)

    async def go() -> None:
        upload, done = await h.upload("k", parts)
        await h.mp.complete(upload, done, PutOptions())
        if fault:
            plan = dict(fault)
            h.fail(plan.pop("drives"), **plan)
        assert await h.get("k", start, end) == whole[start : end + 1]

    run(go())


def test_read_fails_cleanly_beyond_parity(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> None:
        upload, done = await h.upload("k", [payload(MIN_PART_SIZE, 1), payload(100, 2)])
        await h.mp.complete(upload, done, PutOptions())
        h.fail([0, 1, 2], fail={"open_shard"})
        with pytest.raises(ReadQuorumUnavailable):
            await h.get("k")

    run(go())


def test_reuploaded_part_replaces_the_old_one(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    first, second = payload(1000, 1), payload(2000, 2)

    async def go() -> None:
        upload = await h.mp.create("b", "k", PutOptions())
        old = await h.mp.put_part(upload, 1, chunks(first))
        new = await h.mp.put_part(upload, 1, chunks(second))
        parts = await h.mp.list_parts(upload)
        assert [(q.info.number, q.info.etag, q.info.size) for q in parts] == [(1, new.etag, 2000)]
        with pytest.raises(InvalidPart):
            await h.mp.complete(upload, [(1, old.etag)], PutOptions())
        await h.mp.complete(upload, [(1, new.etag)], PutOptions())
        assert await h.get("k") == second

    run(go())
    for root in h.roots:  # the upload is gone, with the replaced part's data file; nothing is left behind
        assert os.listdir(os.path.join(root, ".cairn.sys", "multipart")) == []
        assert os.listdir(os.path.join(root, ".cairn.sys", "tmp")) == []


BAD_COMPLETES = [
    pytest.param([(1, "e1"), (2, "00" * 16)], InvalidPart, id="etag-mismatch"),
    pytest.param([(1, "e1"), (3, "e2")], InvalidPart, id="unknown-part"),
    pytest.param([(2, "e2"), (3, "e3")], PartTooSmall, id="small-part-not-last"),
]


@pytest.mark.parametrize(("request_parts", "error"), BAD_COMPLETES)
def test_complete_refuses_bad_part_lists(tmp_path: Path, request_parts: list[tuple[int, str]], error: type) -> None:
    h = Harness(tmp_path)

    async def go() -> None:
        upload, done = await h.upload("k", [payload(MIN_PART_SIZE, 1), payload(10, 2), payload(10, 3)])
        etags = {f"e{n}": e for n, e in done}
        wanted = [(n, etags.get(e, e)) for n, e in request_parts]
        with pytest.raises(error):
            await h.mp.complete(upload, wanted, PutOptions())
        with pytest.raises(ObjectNotFound):
            await h.eset.read_view("b", "k")
        assert await h.mp.get_upload("b", "k", upload.upload_id) == upload

    run(go())


def test_abort_and_complete_twice(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> None:
        upload, done = await h.upload("k", [payload(10, 1)])
        await h.mp.complete(upload, done, PutOptions())
        with pytest.raises(UploadNotFound):
            await h.mp.get_upload("b", "k", upload.upload_id)
        other, _ = await h.upload("k2", [payload(10, 1)])
        await h.mp.abort("b", "k2", other.upload_id)
        for bad in (other.upload_id, "not-an-id", "../../etc"):
            with pytest.raises(UploadNotFound):
                await h.mp.abort("b", "k2", bad)
        with pytest.raises(UploadNotFound):
            await h.mp.put_part(other, 1, chunks(b"x"))

    run(go())


def test_complete_missing_quorum_leaves_nothing_and_can_retry(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    data = payload(3 * MIB, 9)

    async def go() -> None:
        upload, done = await h.upload("k", [data])
        h.fail([0, 1], fail={"commit"})
        with pytest.raises(WriteQuorumUnavailable):
            await h.mp.complete(upload, done, PutOptions())
        h.clear()
        with pytest.raises(ObjectNotFound):
            await h.eset.read_view("b", "k")
        await h.mp.complete(upload, done, PutOptions())
        assert await h.get("k") == data

    run(go())


def test_part_missed_by_one_drive_is_healed_after_complete(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    parts = [payload(MIN_PART_SIZE, 1), payload(2 * MIB + 5, 2)]

    async def go() -> None:
        upload = await h.mp.create("b", "k", PutOptions())
        e1 = await h.mp.put_part(upload, 1, chunks(parts[0]))
        h.fail([2], fail={"create_shard_writer"})
        e2 = await h.mp.put_part(upload, 2, chunks(parts[1]))
        h.clear()
        await h.mp.complete(upload, [(1, e1.etag), (2, e2.etag)], PutOptions())
        view = await h.eset.read_view("b", "k")
        assert view.holders[2] is None
        result = await heal_object(h.eset, "b", "k")
        assert result.status == "healed"
        h.fail([0, 1], fail={"*"})
        assert await h.get("k") == b"".join(parts)

    run(go())


def test_heal_rebuilds_every_part_file(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    parts = [payload(MIN_PART_SIZE, 1), payload(MIN_PART_SIZE + 1, 2), payload(33, 3)]

    async def go() -> None:
        upload, done = await h.upload("a/b", parts)
        await h.mp.complete(upload, done, PutOptions())
        for root in h.roots[:2]:  # wipe two drives' copies of the object entirely
            shutil.rmtree(os.path.join(root, "b", "a"))
        result = await heal_object(h.eset, "b", "a/b")
        assert result.status == "healed" and result.drives_healed == 2
        h.fail([2, 3], fail={"*"})
        assert await h.get("a/b") == b"".join(parts)
        h.clear()
        assert (await heal_object(h.eset, "b", "a/b")).status == "ok"

    run(go())


def test_scan_and_expire_uploads(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> None:
        a, _ = await h.upload("x/2", [payload(5, 1)])
        b, _ = await h.upload("x/1", [])
        c, _ = await h.upload("x/1", [])
        assert [(u.key, u.upload_id) for u in h.mp.scan_uploads("b")] == [
            ("x/1", b.upload_id), ("x/1", c.upload_id), ("x/2", a.upload_id)]
        assert h.mp.scan_uploads("other") == []
        assert await UploadJanitor([h.eset], expiry_s=3600).run_once() == 0
        # A stray part left by an upload aborted while the part was written: expired by its id's time.
        stray = os.path.join(h.roots[1], ".cairn.sys", "multipart", "0" * 32, "1" * 32)
        os.makedirs(stray)
        Path(stray, "part.1.x").write_bytes(b"orphan")
        assert await UploadJanitor([h.eset], expiry_s=0).run_once() == 4
        assert h.mp.scan_uploads("b") == []
        for root in h.roots:
            assert os.listdir(os.path.join(root, ".cairn.sys", "multipart")) == []

    run(go())


BLOCK_PLANS = [
    pytest.param([10], 4, 0, 9, [(1, 0, 10, 0, 4), (1, 1, 10, 0, 4), (1, 2, 10, 0, 2)], id="one-part"),
    pytest.param([5, 0, 3], 4, 3, 6, [(1, 0, 5, 3, 4), (1, 1, 5, 0, 1), (3, 0, 3, 0, 2)], id="skip-empty-part"),
    pytest.param([4, 4], 4, 4, 4, [(2, 0, 4, 0, 1)], id="one-byte-of-part-2"),
]


@pytest.mark.parametrize(("sizes", "bs", "start", "end", "expected"), BLOCK_PLANS)
def test_block_plan(sizes: list[int], bs: int, start: int, end: int, expected: list[tuple[int, ...]]) -> None:
    assert list(block_plan(sizes, bs, start, end)) == expected


SYS_OPS = [
    pytest.param(lambda d: d.sys_link("a/f", "b/c/g"), {"a/f": b"x", "b/c/g": b"x"}, id="link-keeps-source"),
    pytest.param(lambda d: d.sys_move("a/f", "b/g"), {"b/g": b"x"}, id="move"),
    pytest.param(lambda d: d.sys_delete_tree("a"), {}, id="delete-tree"),
    pytest.param(lambda d: d.sys_delete_tree("missing"), {"a/f": b"x"}, id="delete-missing-tree"),
    pytest.param(lambda d: d.sys_remove_empty_dir("a"), {"a/f": b"x"}, id="non-empty-dir-stays"),
]


@pytest.mark.parametrize(("op", "expected"), SYS_OPS)
def test_system_area_file_operations(tmp_path: Path, op: Any, expected: dict[str, bytes]) -> None:
    d = LocalDrive(str(tmp_path / "d"))
    os.makedirs(d.root)
    d.write_format(b"{}")
    d.clean_temp()
    d.sys_write("a/f", b"x")
    op(d)
    sys_root = Path(d.root, ".cairn.sys")
    found = {str(p.relative_to(sys_root)): p.read_bytes() for p in sys_root.rglob("*")
             if p.is_file() and p.parts[len(sys_root.parts)] not in ("tmp", "format.json")}
    assert found == expected
    assert list((sys_root / "tmp").iterdir()) == []

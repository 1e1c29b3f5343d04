"""Versions in the engine over real folders: the version stack, delete markers, delete by version,
the "null" version rules, listing every version, metadata-only updates, and bucket configuration,
with drives failing through FaultyDrive.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from appliance.cluster.bucket_meta import BucketConfig, BucketMetaStore, newest
from appliance.cluster.pools import ObjectLayer
from appliance.engine import metadata
from appliance.engine.drive import LocalDrive
from appliance.engine.erasure_set import ErasureSet, LatestIsDeleteMarker
from appliance.engine.errors import BucketNotFound, VersionNotFound, WriteQuorumUnavailable
from appliance.engine.faulty import FaultPlan, FaultyDrive
from appliance.engine.healing import heal_object
from appliance.engine.locks import NamespaceLocker
from appliance.engine.metadata import NULL_VERSION
from appliance.engine.objects import ObjectInfo, PutOptions

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


class Harness:
    def __init__(self, tmp: Path, n: int = 4) -> None:
        self.faulty: list[FaultyDrive] = []
        for i in range(n):
            d = LocalDrive(str(tmp / f"d{i}"))
            os.makedirs(d.root)
            d.write_format(b"{}")
            d.clean_temp()
            d.make_volume("b", b'{"created_ns": 7}')
            self.faulty.append(FaultyDrive(d))
        self.eset = ErasureSet(0, list(self.faulty), default_parity=n // 2, executor=ThreadPoolExecutor(8),
                               locker=NamespaceLocker(str(tmp / "locks")))
        self.layer = ObjectLayer([self.eset], "deployment")

    async def put(self, key: str, data: bytes, *, versioned: bool = True) -> ObjectInfo:
        return await self.eset.put_object("b", key, chunks(data), PutOptions(), versioned=versioned)

    async def read(self, key: str, version_id: str | None = None) -> bytes:
        view = await self.eset.read_view("b", key, version_id)
        end = view.version.size - 1
        return b"".join([c async for c in self.eset.stream("b", key, view, 0, end)])

    async def versions(self, key: str) -> list[tuple[str, bool, bool]]:
        return [(v.version_id, v.delete_marker, v.is_latest) for v in await self.eset.key_versions("b", key)]

    def fail(self, drives: list[int]) -> None:
        for i in drives:
            self.faulty[i].plan = FaultPlan(fail={"*"})


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_versions_stack_newest_first(h: Harness) -> None:
    async def scenario() -> None:
        ids = [(await h.put("k", f"v{i}".encode())).version_id for i in range(3)]
        assert len(set(ids)) == 3 and NULL_VERSION not in ids
        assert await h.read("k") == b"v2"
        for i, vid in enumerate(ids):
            assert await h.read("k", vid) == f"v{i}".encode()
        assert await h.versions("k") == [(ids[2], False, True), (ids[1], False, False), (ids[0], False, False)]

    run(scenario())


def test_delete_marker_hides_and_removing_it_restores(h: Harness) -> None:
    async def scenario() -> None:
        v = await h.put("k", b"data")
        marker = await h.eset.add_delete_marker("b", "k", versioned=True)
        assert marker.delete_marker and marker.version_id != v.version_id
        with pytest.raises(LatestIsDeleteMarker) as info:
            await h.read("k")
        assert info.value.version_id == marker.version_id
        assert (await h.eset.get_object_info("b", "k", marker.version_id)).delete_marker
        assert list(h.eset.iter_entries("b", "", "", True)) == []
        removed = await h.eset.delete_object("b", "k", marker.version_id)
        assert removed is not None and removed.delete_marker
        assert await h.read("k") == b"data"

    run(scenario())


def test_delete_by_version_is_permanent(h: Harness) -> None:
    async def scenario() -> None:
        v1 = await h.put("k", b"one" * 100_000)  # large enough for shard files
        v2 = await h.put("k", b"two")
        removed = await h.eset.delete_object("b", "k", v1.version_id)
        assert removed is not None and removed.version_id == v1.version_id
        with pytest.raises(VersionNotFound):
            await h.read("k", v1.version_id)
        assert await h.versions("k") == [(v2.version_id, False, True)]
        assert await h.eset.delete_object("b", "k", v1.version_id) is None

    run(scenario())


@pytest.mark.parametrize(("steps", "expected"), [
    # (operation, versioned) rows, then the expected (is null, is marker) stack newest first
    ([("put", False), ("put", False)], [(True, False)]),
    ([("put", True), ("put", False), ("put", False)], [(True, False), (False, False)]),
    ([("put", False), ("put", True), ("delete", False)], [(True, True), (False, False)]),
    ([("put", False), ("delete", True)], [(False, True), (True, False)]),
    ([("delete", False), ("delete", False)], [(True, True)]),
])
def test_null_version_rules(h: Harness, steps: list[tuple[str, bool]], expected: list[tuple[bool, bool]]) -> None:
    async def scenario() -> None:
        for op, versioned in steps:
            if op == "put":
                await h.put("k", b"x", versioned=versioned)
            else:
                await h.eset.add_delete_marker("b", "k", versioned=versioned)
        stack = [(vid == NULL_VERSION, marker) for vid, marker, _ in await h.versions("k")]
        assert stack == expected

    run(scenario())


def test_null_marker_frees_replaced_data(h: Harness) -> None:
    async def scenario() -> None:
        await h.put("k", b"z" * 1_000_000, versioned=False)
        drive = h.faulty[0].inner
        assert drive.list_data_dirs("b", "k")
        await h.eset.add_delete_marker("b", "k", versioned=False)
        assert drive.list_data_dirs("b", "k") == []

    run(scenario())


@pytest.mark.parametrize(("prefix", "recursive", "expected"), [
    ("", True, ["a", "d/e"]),
    ("d/", True, ["d/e"]),
    ("", False, ["a", "d/"]),
])
def test_iter_versions(h: Harness, prefix: str, recursive: bool, expected: list[str]) -> None:
    async def scenario() -> None:
        await h.put("a", b"1")
        await h.put("a", b"2")
        await h.put("d/e", b"3")
        await h.eset.add_delete_marker("b", "d/e", versioned=True)
        rows = list(h.eset.iter_versions("b", prefix, "", recursive))
        assert [r.key for r in rows] == expected
        for row in rows:
            if row.versions is None:
                continue
            assert [v.is_latest for v in row.versions] == [True] + [False] * (len(row.versions) - 1)
            assert len(row.versions) == 2

    run(scenario())


def test_layer_list_versions_pages(h: Harness) -> None:
    async def scenario() -> None:
        expected = []
        for key in ("a", "b", "c"):
            ids = [(await h.put(key, b"x")).version_id for _ in range(2)]
            expected += [(key, vid) for vid in reversed(ids)]
        got: list[tuple[str, str]] = []
        key_marker, vid_marker = "", ""
        while True:
            page = await h.layer.list_versions("b", prefix="", delimiter="", key_marker=key_marker,
                                               version_id_marker=vid_marker, max_keys=1)
            got += [(v.key, v.version_id) for v in page.versions]
            if not page.is_truncated:
                break
            key_marker, vid_marker = page.next_key_marker or "", page.next_version_id_marker or ""
        assert got == expected

    run(scenario())


def test_versions_read_with_failed_drives(h: Harness) -> None:
    async def scenario() -> None:
        v1 = await h.put("k", b"first" * 50_000)
        v2 = await h.put("k", b"second")
        marker = await h.eset.add_delete_marker("b", "k", versioned=True)
        h.fail([0, 3])
        assert await h.read("k", v1.version_id) == b"first" * 50_000
        assert await h.read("k", v2.version_id) == b"second"
        assert [v for v, _, _ in await h.versions("k")] == [marker.version_id, v2.version_id, v1.version_id]

    run(scenario())


def test_marker_needs_write_quorum(h: Harness) -> None:
    async def scenario() -> None:
        await h.put("k", b"x")
        h.fail([0, 1])
        with pytest.raises(WriteQuorumUnavailable):
            await h.eset.add_delete_marker("b", "k", versioned=True)
        for d in h.faulty:
            d.plan = FaultPlan()
        assert await h.read("k") == b"x"

    run(scenario())


def test_update_version_changes_metadata_only(h: Harness) -> None:
    async def scenario() -> None:
        v1 = await h.put("k", b"payload" * 40_000)
        await h.put("k", b"newer")
        dirs = h.faulty[1].inner.list_data_dirs("b", "k")

        def tag(v: object) -> None:
            v.system_meta["x-amz-tagging"] = "a=1"  # type: ignore[attr-defined]

        updated = await h.eset.update_version("b", "k", v1.version_id, tag)
        assert updated.system_meta["x-amz-tagging"] == "a=1"
        assert (await h.eset.get_object_info("b", "k", v1.version_id)).system_meta["x-amz-tagging"] == "a=1"
        assert "x-amz-tagging" not in (await h.eset.get_object_info("b", "k")).system_meta
        assert h.faulty[1].inner.list_data_dirs("b", "k") == dirs
        assert await h.read("k", v1.version_id) == b"payload" * 40_000
        h.fail([0, 1])
        with pytest.raises(WriteQuorumUnavailable):
            await h.eset.update_version("b", "k", v1.version_id, tag)

    run(scenario())


# --- bucket configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(("copies", "versioning", "created"), [
    ([b'{"created_ns": 5}'], None, 5),
    ([b"", b"not json"], None, 0),
    ([b'{"created_ns": 5, "updated_ns": 2, "versioning": "Enabled"}',
      b'{"created_ns": 5, "updated_ns": 9, "versioning": "Suspended"}', b'{"created_ns": 5}'], "Suspended", 5),
])
def test_newest_copy_wins(copies: list[bytes], versioning: str | None, created: int) -> None:
    config = newest(copies)
    assert (config.versioning, config.created_ns) == (versioning, created)


def test_bucket_config_round_trip_keeps_unknown_keys() -> None:
    config = BucketConfig.decode(b'{"created_ns": 1, "policy": {"x": 1}, "tags": {"a": "b"}}')
    assert config.other == {"policy": {"x": 1}} and config.tags == {"a": "b"}
    assert BucketConfig.decode(config.encode()) == config


def test_bucket_config_store(h: Harness) -> None:
    async def scenario() -> None:
        store = BucketMetaStore([h.eset], cache_seconds=0)
        assert (await store.get("b")).created_ns == 7
        await store.update("b", lambda c: dataclasses.replace(c, versioning="Enabled"))
        h.fail([3])
        other = BucketMetaStore([h.eset], cache_seconds=0)
        got = await other.get("b")
        assert (got.versioning, got.created_ns) == ("Enabled", 7)
        h.fail([2])
        with pytest.raises(WriteQuorumUnavailable):
            await store.update("b", lambda c: dataclasses.replace(c, versioning="Suspended"))
        for d in h.faulty:
            d.plan = FaultPlan()
        assert (await other.get("b")).versioning == "Enabled"
        with pytest.raises(BucketNotFound):
            await store.get("missing")

    run(scenario())


def test_heal_brings_back_markers_and_versions(h: Harness) -> None:
    async def scenario() -> None:
        h.fail([3])
        v1 = await h.put("k", b"first" * 50_000)
        marker = await h.eset.add_delete_marker("b", "k", versioned=True)
        h.faulty[3].plan = FaultPlan()
        result = await heal_object(h.eset, "b", "k")
        assert result.status == "healed"
        copy = metadata.decode(h.faulty[3].inner.read_meta("b", "k"))
        assert [(v.version_id, v.deleted) for v in copy.versions] == [(marker.version_id, True),
                                                                       (v1.version_id, False)]
        h.fail([0, 1])
        assert await h.read("k", v1.version_id) == b"first" * 50_000

    run(scenario())

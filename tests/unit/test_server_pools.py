"""Server pools over real folders: two pools of one 4-drive set each (EC 2+2).

New keys go to a pool weighted by free space; each pool's drives are LocalDrives whose reported free
space a test may set (`Pools.only_room_in`), standing for pools of different sizes on one file
system. Every write to a key that exists must stay in the key's pool; reads, versions, multipart
uploads, listings and bucket deletion must see both pools as one namespace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from appliance.cluster.bucket_meta import VERSIONING_ENABLED
from appliance.cluster.pools import ObjectLayer
from appliance.cluster.server_pools import PooledReadView, ServerPools, draw_pool
from appliance.engine.drive import DiskInfo, LocalDrive
from appliance.engine.erasure_set import ErasureSet, LatestIsDeleteMarker
from appliance.engine.errors import BucketNotEmpty, BucketNotFound, ObjectNotFound, UploadNotFound
from appliance.engine.locks import NamespaceLocker
from appliance.engine.metadata import ObjectVersion
from appliance.engine.multipart import MIN_PART_SIZE, MultipartSet
from appliance.engine.objects import ObjectInfo, PutOptions

T = TypeVar("T")
BUCKET = "b"


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


class SizedDrive(LocalDrive):
    """A LocalDrive that reports `free` bytes of free space when it is set."""

    free: int | None = None

    def disk_info(self) -> DiskInfo:
        info = super().disk_info()
        return info if self.free is None else DiskInfo(info.total, self.free, info.used)


class Pools:
    def __init__(self, tmp: Path, pools: int = 2) -> None:
        executor = ThreadPoolExecutor(16)
        locker = NamespaceLocker(str(tmp / "locks"))
        self.drives: list[list[SizedDrive]] = []
        layers = []
        for p in range(pools):
            drives = []
            for i in range(4):
                d = SizedDrive(str(tmp / f"pool{p}" / f"d{i}"))
                os.makedirs(d.root)
                d.write_format(b"{}")
                d.clean_temp()
                drives.append(d)
            self.drives.append(drives)
            eset = ErasureSet(p, list(drives), default_parity=2, executor=executor, locker=locker)
            layers.append(ObjectLayer([eset], "deployment"))
        self.layer = ServerPools(layers, free_space_seconds=0.0)

    def only_room_in(self, pool: int | None) -> None:
        """New keys go to `pool` (every other pool reports no free space); None: real free space."""
        for p, drives in enumerate(self.drives):
            for d in drives:
                d.free = None if pool is None else (10**12 if p == pool else 0)

    async def put(self, key: str, data: bytes = b"data", *, versioned: bool = False) -> ObjectInfo:
        return await self.layer.put_object(BUCKET, key, body(data), PutOptions(), versioned=versioned)

    async def get(self, key: str, version_id: str | None = None) -> bytes:
        info, view = await self.layer.open_object(BUCKET, key, version_id)
        chunks = self.layer.stream_object(BUCKET, key, view, 0, info.size - 1) if info.size else body(b"")
        return b"".join([c async for c in chunks])

    async def holders(self, key: str) -> list[int]:
        """The pools holding any version of `key`."""
        found = [await p.set_for(key).key_versions(BUCKET, key) for p in self.layer.pools]
        return [i for i, versions in enumerate(found) if versions]

    async def multipart_put(self, key: str, parts: list[bytes], *, reopen_with: int | None = None) -> str:
        """Upload `parts` as one multipart object; `reopen_with` moves the free space before the parts."""
        upload = await self.layer.multipart(key).create(BUCKET, key, PutOptions())
        if reopen_with is not None:
            self.only_room_in(reopen_with)
        upload = await self.layer.multipart(key).get_upload(BUCKET, key, upload.upload_id)
        requested = []
        for number, data in enumerate(parts, start=1):
            part = await self.layer.multipart(key).put_part(upload, number, body(data))
            requested.append((number, part.etag))
        listed = await self.layer.multipart(key).list_parts(upload)
        assert [q.info.number for q in listed] == list(range(1, len(parts) + 1))
        await self.layer.multipart(key).complete(upload, requested, PutOptions())
        return upload.upload_id


@pytest.fixture
def h(tmp_path: Path) -> Pools:
    pools = Pools(tmp_path)
    run(pools.layer.make_bucket(BUCKET))
    return pools


BIG_PART = bytes(range(256)) * (MIN_PART_SIZE // 256)


def test_new_keys_spread_over_both_pools_and_read_back(h: Pools) -> None:
    keys = [f"k{i:02d}" for i in range(24)]

    async def scenario() -> None:
        for key in keys:
            await h.put(key, key.encode() * 3)
        placed = [await h.holders(key) for key in keys]
        assert all(len(p) == 1 for p in placed)
        assert {p[0] for p in placed} == {0, 1}
        for key in keys:
            assert await h.get(key) == key.encode() * 3
        page = await h.layer.list_objects(BUCKET, prefix="", delimiter="", marker="", max_keys=1000)
        assert [e.key for e in page.entries] == keys

    run(scenario())


async def _overwrite(h: Pools, key: str) -> None:
    await h.put(key, b"new")


async def _copy_onto(h: Pools, key: str) -> None:
    await h.put("source", b"copied")  # lands in pool 1: only it has room now
    info, view = await h.layer.open_object(BUCKET, "source")
    await h.layer.put_object(BUCKET, key, h.layer.stream_object(BUCKET, "source", view, 0, info.size - 1),
                             PutOptions())


async def _tag(h: Pools, key: str) -> None:
    def change(v: ObjectVersion) -> None:
        v.user_meta["tagged"] = "yes"

    await h.layer.update_version(BUCKET, key, None, change)


async def _delete_marker(h: Pools, key: str) -> None:
    await h.layer.delete_object(BUCKET, key, versioning=VERSIONING_ENABLED)


async def _multipart(h: Pools, key: str) -> None:
    await h.multipart_put(key, [BIG_PART, b"tail"])


WRITES_TO_AN_EXISTING_KEY = [
    ("overwrite", _overwrite, b"new"),
    ("copy onto it", _copy_onto, b"copied"),
    ("tag it", _tag, b"data"),
    ("delete marker", _delete_marker, None),
    ("complete a multipart upload", _multipart, BIG_PART + b"tail"),
]


@pytest.mark.parametrize(("write", "expected"), [row[1:] for row in WRITES_TO_AN_EXISTING_KEY],
                         ids=[row[0] for row in WRITES_TO_AN_EXISTING_KEY])
def test_writes_to_an_existing_key_stay_in_its_pool(
    h: Pools, write: Callable[[Pools, str], Awaitable[None]], expected: bytes | None
) -> None:
    async def scenario() -> None:
        h.only_room_in(0)
        await h.put("k", b"data", versioned=True)
        h.only_room_in(1)  # the other pool gains all the free space
        assert await h.get("k") == b"data"
        await write(h, "k")
        assert await h.holders("k") == [0]
        if expected is None:
            with pytest.raises(LatestIsDeleteMarker):
                await h.get("k")
        else:
            assert await h.get("k") == expected
        await h.put("fresh")
        assert await h.holders("fresh") == [1]

    run(scenario())


def test_tagging_reaches_the_version_in_its_pool(h: Pools) -> None:
    async def scenario() -> None:
        h.only_room_in(1)
        await h.put("k")
        h.only_room_in(0)
        await _tag(h, "k")
        assert (await h.layer.get_object_info(BUCKET, "k")).user_meta == {"tagged": "yes"}

    run(scenario())


def test_versions_and_delete_markers_across_pools(h: Pools) -> None:
    async def scenario() -> None:
        ids: dict[str, list[str]] = {}
        for pool, key in [(0, "a"), (1, "b")]:
            h.only_room_in(pool)
            ids[key] = [(await h.put(key, f"{key}{n}".encode(), versioned=True)).version_id for n in (1, 2)]
        h.only_room_in(0)
        marker = await h.layer.delete_object(BUCKET, "b", versioning=VERSIONING_ENABLED)
        assert marker is not None and marker.delete_marker
        assert await h.holders("b") == [1]
        with pytest.raises(LatestIsDeleteMarker):
            await h.get("b")
        assert await h.get("b", ids["b"][0]) == b"b1"
        expected = [("a", ids["a"][1], False, True), ("a", ids["a"][0], False, False),
                    ("b", marker.version_id, True, True), ("b", ids["b"][1], False, False),
                    ("b", ids["b"][0], False, False)]
        for max_keys in (1, 2, 3, 100):
            seen, key_marker, vid_marker = [], "", ""
            while True:
                page = await h.layer.list_versions(BUCKET, prefix="", delimiter="", key_marker=key_marker,
                                                   version_id_marker=vid_marker, max_keys=max_keys)
                seen += [(v.key, v.version_id, v.delete_marker, v.is_latest) for v in page.versions]
                if not page.is_truncated:
                    break
                key_marker, vid_marker = page.next_key_marker or "", page.next_version_id_marker or ""
            assert seen == expected, max_keys
        await h.layer.delete_object(BUCKET, "b", marker.version_id, versioning=VERSIONING_ENABLED)
        assert await h.get("b") == b"b2"
        await h.layer.delete_object(BUCKET, "a", ids["a"][1], versioning=VERSIONING_ENABLED)
        assert await h.get("a") == b"a1"

    run(scenario())


@pytest.mark.parametrize("pool", [0, 1])
def test_multipart_upload_lives_in_the_pool_chosen_at_create(h: Pools, pool: int) -> None:
    async def scenario() -> None:
        h.only_room_in(pool)
        upload_id = await h.multipart_put("mp", [BIG_PART, b"end"], reopen_with=1 - pool)
        assert upload_id.endswith(".1") == (pool == 1)
        assert await h.holders("mp") == [pool]
        assert await h.get("mp") == BIG_PART + b"end"
        h.only_room_in(pool)
        upload = await h.layer.multipart("gone").create(BUCKET, "gone", PutOptions())
        await h.layer.multipart("gone").abort(BUCKET, "gone", upload.upload_id)
        with pytest.raises(UploadNotFound):
            await h.layer.multipart("gone").get_upload(BUCKET, "gone", upload.upload_id)

    run(scenario())


@pytest.mark.parametrize("upload_id", ["0" * 32 + ".2", "0" * 32 + ".1", "0" * 32 + ".01", ".1", "nonsense"])
def test_upload_ids_naming_no_upload_are_not_found(h: Pools, upload_id: str) -> None:
    with pytest.raises(UploadNotFound):
        run(h.layer.multipart("k").get_upload(BUCKET, "k", upload_id))


def test_list_multipart_uploads_merges_pools(h: Pools) -> None:
    async def scenario() -> None:
        created = {}
        for pool, key in [(0, "a/1"), (1, "a/2"), (1, "b"), (0, "a/3"), (1, "a/1")]:
            h.only_room_in(pool)
            upload = await h.layer.multipart(key).create(BUCKET, key, PutOptions())
            created[upload.upload_id] = key
        listed = await h.layer.list_multipart_uploads(BUCKET, "")
        assert sorted((u.key, u.upload_id) for u in listed) == [(u.key, u.upload_id) for u in listed]
        assert {u.upload_id: u.key for u in listed} == created
        assert [u.key for u in await h.layer.list_multipart_uploads(BUCKET, "a/")] == ["a/1", "a/1", "a/2", "a/3"]
        for u in listed:
            again = await h.layer.multipart(u.key).get_upload(BUCKET, u.key, u.upload_id)
            assert (again.key, again.upload_id) == (u.key, u.upload_id)

    run(scenario())


LISTED_KEYS = ["a/1", "a/2", "a/b/1", "a/b/2", "b", "c/1", "c/2", "c/3", "d", "e/x/y", "e/z"]


def expected_listing(prefix: str, delimiter: str) -> list[str]:
    out: list[str] = []
    for key in sorted(k for k in LISTED_KEYS if k.startswith(prefix)):
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        name = key[: cut + len(delimiter)] if cut >= 0 else key
        if name not in out:
            out.append(name)
    return out


LISTINGS = [
    ("", "/", 1), ("", "/", 2), ("", "/", 100), ("", "", 3), ("a/", "/", 1), ("a/", "/", 100),
    ("e/", "/", 1), ("", "b", 2), ("c", "/", 1),
]


@pytest.fixture
def spread(h: Pools) -> Pools:
    """LISTED_KEYS alternating between the pools, so both pools hold keys under a/, c/ and e/."""
    async def fill() -> None:
        for i, key in enumerate(LISTED_KEYS):
            h.only_room_in(i % 2)
            await h.put(key, versioned=True)
            await h.put(key, versioned=True)
        for prefix in ("a/", "c/", "e/"):
            held = {p for key in LISTED_KEYS if key.startswith(prefix) for p in await h.holders(key)}
            assert held == {0, 1}

    run(fill())
    return h


@pytest.mark.parametrize(("prefix", "delimiter", "max_keys"), LISTINGS)
def test_object_listing_pages_across_pools(spread: Pools, prefix: str, delimiter: str, max_keys: int) -> None:
    async def scenario() -> list[str]:
        seen: list[str] = []
        marker, skip = "", ""
        while True:
            page = await spread.layer.list_objects(BUCKET, prefix=prefix, delimiter=delimiter, marker=marker,
                                                   max_keys=max_keys, skip_prefix=skip)
            seen += [e.key for e in page.entries]
            assert len(page.entries) <= max_keys
            if not page.is_truncated:
                return seen
            marker = page.next_marker or ""
            skip = marker if page.entries[-1].info is None else ""

    assert run(scenario()) == expected_listing(prefix, delimiter)


@pytest.mark.parametrize(("prefix", "delimiter", "max_keys"), LISTINGS)
def test_version_listing_pages_across_pools(spread: Pools, prefix: str, delimiter: str, max_keys: int) -> None:
    async def scenario() -> list[str]:
        seen: list[str] = []
        key_marker, vid_marker = "", ""
        while True:
            page = await spread.layer.list_versions(BUCKET, prefix=prefix, delimiter=delimiter,
                                                    key_marker=key_marker, version_id_marker=vid_marker,
                                                    max_keys=max_keys)
            seen += [v.key for v in page.versions] + page.prefixes
            if not page.is_truncated:
                return seen
            key_marker, vid_marker = page.next_key_marker or "", page.next_version_id_marker or ""

    # Every key has two versions; a common prefix is listed once.
    expected = [name for name in expected_listing(prefix, delimiter)
                for _ in range(1 if delimiter and name.endswith(delimiter) else 2)]
    assert sorted(run(scenario())) == sorted(expected)


async def _plain_object(h: Pools) -> None:
    await h.put("left")


async def _versioned_object(h: Pools) -> None:
    await h.put("left", versioned=True)


async def _only_a_delete_marker(h: Pools) -> None:
    await h.layer.delete_object(BUCKET, "left", versioning=VERSIONING_ENABLED)


@pytest.mark.parametrize("pool", [0, 1])
@pytest.mark.parametrize("leave", [_plain_object, _versioned_object, _only_a_delete_marker])
def test_bucket_delete_refused_while_a_pool_holds_anything(
    h: Pools, pool: int, leave: Callable[[Pools], Awaitable[None]]
) -> None:
    async def scenario() -> None:
        h.only_room_in(pool)
        await leave(h)
        assert await h.holders("left") == [pool]
        with pytest.raises(BucketNotEmpty):
            await h.layer.delete_bucket(BUCKET)
        for v in await h.layer.pools[pool].set_for("left").key_versions(BUCKET, "left"):
            await h.layer.delete_object(BUCKET, "left", v.version_id)
        await h.layer.delete_bucket(BUCKET)
        heads = [h.layer.head_bucket] + [p.head_bucket for p in h.layer.pools]
        for head in heads:
            with pytest.raises(BucketNotFound):
                await head(BUCKET)

    run(scenario())


def test_a_key_left_in_two_pools_by_a_race_reads_newest(h: Pools) -> None:
    async def scenario() -> None:
        for pool, data in [(0, b"older"), (1, b"newer")]:
            await h.layer.pools[pool].put_object(BUCKET, "raced", body(data), PutOptions(), versioned=True)
        assert await h.holders("raced") == [0, 1]
        assert await h.get("raced") == b"newer"
        page = await h.layer.list_objects(BUCKET, prefix="", delimiter="", marker="", max_keys=10)
        assert [(e.key, e.info.size if e.info else None) for e in page.entries] == [("raced", 5)]
        versions = await h.layer.list_versions(BUCKET, prefix="", delimiter="", key_marker="",
                                               version_id_marker="", max_keys=10)
        assert [(v.size, v.is_latest) for v in versions.versions] == [(5, True), (5, False)]
        assert [v.mod_time_ns for v in versions.versions] == sorted(
            (v.mod_time_ns for v in versions.versions), reverse=True)

    run(scenario())


def test_an_unversioned_delete_removes_the_key_from_every_pool(h: Pools) -> None:
    async def scenario() -> None:
        for pool in (0, 1):
            await h.layer.pools[pool].put_object(BUCKET, "raced", body(b"x"), PutOptions())
        await h.layer.delete_object(BUCKET, "raced")
        assert await h.holders("raced") == []
        with pytest.raises(ObjectNotFound):
            await h.get("raced")

    run(scenario())


def test_missing_keys_and_buckets_answer_as_one_pool_would(h: Pools) -> None:
    async def scenario() -> None:
        with pytest.raises(ObjectNotFound):
            await h.layer.get_object_info(BUCKET, "absent")
        with pytest.raises(BucketNotFound):
            await h.layer.get_object_info("nobucket", "k")
        assert await h.layer.delete_object(BUCKET, "absent") is None
        assert [b.name for b in await h.layer.list_buckets()] == [BUCKET]

    run(scenario())


def test_one_pool_goes_straight_to_it(tmp_path: Path) -> None:
    one = Pools(tmp_path, pools=1)
    layer = one.layer

    async def scenario() -> None:
        await layer.make_bucket(BUCKET)
        await one.put("k", b"v")
        _, view = await layer.open_object(BUCKET, "k")
        assert not isinstance(view, PooledReadView)
        assert await one.get("k") == b"v"

    run(scenario())
    assert isinstance(layer.multipart("k"), MultipartSet)
    assert layer.bucket_meta is layer.pools[0].bucket_meta
    assert layer.sets == layer.pools[0].sets


@pytest.mark.parametrize(("free", "share_of_pool_0"), [
    ([10, 0], 1.0), ([0, 10], 0.0), ([1, 1], 0.5), ([1, 3], 0.25), ([0, 0], 0.5), ([5, 5, 0], 0.5),
])
def test_new_keys_are_drawn_by_free_space(free: list[int], share_of_pool_0: float) -> None:
    names = [f"key-{i}" for i in range(4000)]
    drawn = [draw_pool(BUCKET, name, free) for name in names]
    assert drawn == [draw_pool(BUCKET, name, free) for name in names]  # one name, one pool
    assert all(0 <= d < len(free) and (free[d] or not any(free)) for d in drawn)
    assert drawn.count(0) / len(drawn) == pytest.approx(share_of_pool_0, abs=0.03)


def test_a_pool_added_later_gets_the_buckets_and_new_keys(tmp_path: Path) -> None:
    h = Pools(tmp_path)
    old = h.layer.pools[0]

    async def scenario() -> None:
        await old.make_bucket(BUCKET)
        await old.bucket_meta.update(BUCKET, lambda c: dataclasses.replace(c, versioning=VERSIONING_ENABLED))
        await old.put_object(BUCKET, "before", body(b"old"), PutOptions(), versioned=True)
        with pytest.raises(BucketNotFound):
            await h.layer.pools[1].head_bucket(BUCKET)
        assert await h.layer.spread_buckets() == 4  # the new pool's four drives
        assert await h.layer.spread_buckets() == 0
        assert (await h.layer.bucket_meta.get(BUCKET)).versioning == VERSIONING_ENABLED
        h.only_room_in(1)
        await h.put("after", b"new", versioned=True)
        assert (await h.holders("before"), await h.holders("after")) == ([0], [1])
        page = await h.layer.list_objects(BUCKET, prefix="", delimiter="", marker="", max_keys=10)
        assert [e.key for e in page.entries] == ["after", "before"]

    run(scenario())

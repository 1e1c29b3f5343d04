"""Server pools: several object layers (one per pool of erasure sets) as one S3 namespace.

Contract: `ServerPools` offers the interface the HTTP, admin and console layers use on `ObjectLayer`.
Adding a pool grows capacity; objects already stored stay in their pool and are found there.

- Buckets exist in every pool: created, deleted (refused while any pool holds a version or delete
  marker) and configured on every set of every pool; head and list ask the pools in order and take
  the first answer. `spread_buckets` brings the existing buckets to a pool just added.
- An object lives in one pool. Writes (put, copy, delete, delete marker, tagging) go to the pool that
  already holds the key (any version or delete marker; every pool is asked in parallel); a new key
  goes to a pool drawn with probability proportional to its free space (measured at most every
  `FREE_SPACE_SECONDS`) by a hash of the name, so concurrent first writes of one key from several
  workers or nodes draw the same pool. Reads go to the pool holding the key or version asked for;
  when a race still left a key in two pools, the newest modification wins.
- A multipart upload lives in the pool chosen when it is created, and its id says which: pool 0
  keeps the engine's id (so uploads begun before a pool was added stay valid), pool p >= 1 appends
  ".p". ListMultipartUploads merges every pool.
- Listings merge the sorted streams of every set of every pool through the same grouping as one
  pool (`pools.list_page`, `pools.versions_page`); a key held by two pools is listed once (the newest
  object; for versions, one stack of both).
- With one pool every call goes straight to it: no lookups, no extra I/O.
- Healing, scanning and the upload janitor work per set, over `sets` (every set of every pool).
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import xxhash

from appliance.cluster.bucket_meta import VERSIONING_ENABLED, VERSIONING_SUSPENDED
from appliance.cluster.pools import (
    BucketInfo,
    ListPage,
    ObjectLayer,
    VersionsPage,
    list_page,
    versions_after,
    versions_page,
)
from appliance.engine.drive import DiskInfo
from appliance.engine.erasure_set import KeyVersions, ReadView
from appliance.engine.errors import DriveError, ReadQuorumUnavailable, UploadNotFound
from appliance.engine.healing import heal_bucket
from appliance.engine.metadata import NULL_VERSION, ObjectVersion, PartInfo
from appliance.engine.multipart import MultipartSet, QuorumPart, Upload, UploadJanitor
from appliance.engine.objects import BodyDigest, ListEntry, ObjectInfo, PutOptions

FREE_SPACE_SECONDS = 5.0
_POOL_SUFFIX = re.compile(r"^(.+)\.([1-9][0-9]*)$")

T = TypeVar("T")
K = TypeVar("K", ListEntry, KeyVersions)


@dataclass
class PooledReadView(ReadView):
    """A read view that remembers its pool, so the bytes are streamed from where the metadata was read."""

    pool: int = 0


def _newest_holder(holdings: Sequence[list[ObjectInfo]], version_id: str | None) -> int | None:
    """The pool holding the key's latest version (or `version_id`); of two, the one modified last."""
    best, best_time = None, -1
    for index, versions in enumerate(holdings):
        found = versions[:1] if version_id is None else [v for v in versions if v.version_id == version_id]
        if found and found[0].mod_time_ns > best_time:
            best, best_time = index, found[0].mod_time_ns
    return best


def _one_stack(stacks: Iterable[list[ObjectInfo]]) -> list[ObjectInfo]:
    """One key's versions from several pools as one stack, newest first; only the first is latest."""
    held = [s for s in stacks if s]
    if len(held) <= 1:
        return held[0] if held else []
    merged = sorted((v for s in held for v in s), key=lambda v: -v.mod_time_ns)
    return [dataclasses.replace(v, is_latest=i == 0) for i, v in enumerate(merged)]


def _newest_entry(same: list[ListEntry]) -> ListEntry:
    prefixes = [e for e in same if e.info is None]
    if prefixes:
        return prefixes[0]
    return max(same, key=lambda e: e.info.mod_time_ns if e.info else 0)


def _all_versions(same: list[KeyVersions]) -> KeyVersions:
    prefixes = [e for e in same if e.versions is None]
    if prefixes:
        return prefixes[0]
    return KeyVersions(same[0].key, _one_stack(e.versions or [] for e in same))


def _one_per_key(streams: list[Iterator[K]], pick: Callable[[list[K]], K]) -> Iterator[K]:
    """Merge sorted streams, yielding each key once: `pick` chooses among the entries sharing a key."""
    merged = heapq.merge(*streams, key=lambda e: e.key.encode())
    for _, same in itertools.groupby(merged, key=lambda e: e.key):
        group = list(same)
        yield group[0] if len(group) == 1 else pick(group)


def draw_pool(bucket: str, key: str, free: list[int]) -> int:
    """A pool index drawn by a hash of the name, each pool as likely as its share of `free`."""
    point = xxhash.xxh64_intdigest(f"{bucket}/{key}".encode())
    total = sum(free)
    if total == 0:  # no pool reports free space (all full or unreachable): any fails the write alike
        return point % len(free)
    point = point * total >> 64
    for index, weight in enumerate(free):
        if point < weight:
            return index
        point -= weight
    raise AssertionError("a point below the total falls in some pool")


def _with_pool(upload: Upload, pool: int) -> Upload:
    """The upload as clients see it: its id names its pool (pool 0's ids are the engine's)."""
    return upload if pool == 0 else dataclasses.replace(upload, upload_id=f"{upload.upload_id}.{pool}")


def _split_upload_id(upload_id: str) -> tuple[int, str]:
    """(pool, the engine's upload id) of an id made by `_with_pool`."""
    match = _POOL_SUFFIX.match(upload_id)
    return (int(match[2]), match[1]) if match else (0, upload_id)


class ServerPools:
    def __init__(self, pools: list[ObjectLayer], *, free_space_seconds: float = FREE_SPACE_SECONDS) -> None:
        if not pools:
            raise ValueError("a deployment needs at least one pool")
        self.pools = pools
        self.sets = [s for p in pools for s in p.sets]
        self.deployment_id = pools[0].deployment_id
        # Bucket-wide work (create, delete, configuration, janitor, capacity) must reach every set of
        # every pool: ObjectLayer's bucket code over the union of the sets does exactly that. Nothing
        # reaches its object placement, which would be wrong across pools.
        self._every_set = pools[0] if len(pools) == 1 else ObjectLayer(self.sets, self.deployment_id)
        self.bucket_meta = self._every_set.bucket_meta
        self.free_space_seconds = free_space_seconds
        self._free: tuple[float, list[int]] | None = None

    # --- choosing a pool ------------------------------------------------------------------------

    async def _holdings(self, bucket: str, key: str) -> list[list[ObjectInfo]]:
        """Every pool's quorum-agreed versions of `key` (newest first), read in parallel."""
        return list(await asyncio.gather(*(p.set_for(key).key_versions(bucket, key) for p in self.pools)))

    async def _free_space(self) -> list[int]:
        now = time.monotonic()
        if self._free is None or now - self._free[0] >= self.free_space_seconds:
            per_pool = await asyncio.gather(*(p.disk_info() for p in self.pools))
            free = [sum(i.free for infos in sets for i in infos if isinstance(i, DiskInfo)) for sets in per_pool]
            self._free = (now, free)
        return self._free[1]


    async def pool_for_write(self, bucket: str, key: str) -> int:
        """The pool holding `key` (any version or delete marker), else one drawn by free space."""
        if len(self.pools) == 1:
            return 0
        holder = _newest_holder(await self._holdings(bucket, key), None)
        return holder if holder is not None else draw_pool(bucket, key, await self._free_space())

    async def _pool_for_read(self, bucket: str, key: str, version_id: str | None) -> int:
        if len(self.pools) == 1:
            return 0
        holder = _newest_holder(await self._holdings(bucket, key), version_id)
        # Held nowhere: pool 0 gives the precise answer (no such key, version or bucket).
        return 0 if holder is None else holder

    async def _first_answer(self, call: Callable[[ObjectLayer], Awaitable[T]]) -> T:
        """The first pool's answer; a pool that cannot answer (quorum lost) hands the question on."""
        for pool in self.pools[:-1]:
            try:
                return await call(pool)
            except (ReadQuorumUnavailable, DriveError):
                continue
        return await call(self.pools[-1])

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.sets[0].executor, fn)

    # --- buckets --------------------------------------------------------------------------------

    async def make_bucket(self, bucket: str) -> None:
        await self._every_set.make_bucket(bucket)

    async def head_bucket(self, bucket: str) -> BucketInfo:
        return await self._first_answer(lambda p: p.head_bucket(bucket))

    async def delete_bucket(self, bucket: str) -> None:
        await self._every_set.delete_bucket(bucket)

    async def list_buckets(self) -> list[BucketInfo]:
        return await self._first_answer(lambda p: p.list_buckets())

    async def bucket_configs(self, only: str | None = None) -> list[tuple[str, bytes]]:
        return await self._every_set.bucket_configs(only)

    async def spread_buckets(self) -> int:
        """Create pool 0's buckets, with their configuration, on every set that lacks them (a pool just
        added) and refresh older copies; returns how many drives were repaired. Run it before serving:
        until then a bucket missing from a pool fails listings and configuration reads."""
        if len(self.pools) == 1:
            return 0
        repaired = 0
        for bucket, meta in await self.pools[0].bucket_configs():
            repaired += sum(await asyncio.gather(*(heal_bucket(eset, bucket, meta) for eset in self.sets)))
        return repaired

    # --- objects --------------------------------------------------------------------------------

    async def put_object(
        self, bucket: str, key: str, body: AsyncIterator[bytes], opts: PutOptions, *, versioned: bool = False
    ) -> ObjectInfo:
        pool = self.pools[await self.pool_for_write(bucket, key)]
        return await pool.put_object(bucket, key, body, opts, versioned=versioned)

    async def get_object_info(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo:
        pool = self.pools[await self._pool_for_read(bucket, key, version_id)]
        return await pool.get_object_info(bucket, key, version_id)

    async def open_object(self, bucket: str, key: str, version_id: str | None = None) -> tuple[ObjectInfo, ReadView]:
        index = await self._pool_for_read(bucket, key, version_id)
        info, view = await self.pools[index].open_object(bucket, key, version_id)
        if len(self.pools) == 1:
            return info, view
        return info, PooledReadView(view.version, view.holders, view.degraded, index)

    def stream_object(self, bucket: str, key: str, view: ReadView, start: int, end: int) -> AsyncIterator[bytes]:
        pool = self.pools[view.pool if isinstance(view, PooledReadView) else 0]
        return pool.stream_object(bucket, key, view, start, end)

    async def delete_object(
        self, bucket: str, key: str, version_id: str | None = None, *, versioning: str | None = None
    ) -> ObjectInfo | None:
        """`ObjectLayer.delete_object` over pools: a delete marker goes where the key is (or where a new
        key would go); a removal reaches every pool holding that version (two after a race)."""
        if len(self.pools) == 1:
            return await self.pools[0].delete_object(bucket, key, version_id, versioning=versioning)
        holdings = await self._holdings(bucket, key)
        if version_id is None and versioning in (VERSIONING_ENABLED, VERSIONING_SUSPENDED):
            holder = _newest_holder(holdings, None)
            index = holder if holder is not None else draw_pool(bucket, key, await self._free_space())
            return await self.pools[index].delete_object(bucket, key, None, versioning=versioning)
        target = NULL_VERSION if version_id is None else version_id
        holders = [i for i, versions in enumerate(holdings) if any(v.version_id == target for v in versions)]
        removed = await asyncio.gather(
            *(self.pools[i].delete_object(bucket, key, version_id, versioning=versioning) for i in holders or [0])
        )
        return max((r for r in removed if r is not None), key=lambda r: r.mod_time_ns, default=None)

    async def update_version(
        self, bucket: str, key: str, version_id: str | None, change: Callable[[ObjectVersion], None]
    ) -> ObjectInfo:
        pool = self.pools[await self._pool_for_read(bucket, key, version_id)]
        return await pool.update_version(bucket, key, version_id, change)

    # --- listing --------------------------------------------------------------------------------

    async def list_objects(
        self, bucket: str, *, prefix: str, delimiter: str, marker: str, max_keys: int, skip_prefix: str = ""
    ) -> ListPage:
        """`ObjectLayer.list_objects` over the merged streams of every pool."""
        if len(self.pools) == 1 or max_keys <= 0:
            return await self.pools[0].list_objects(bucket, prefix=prefix, delimiter=delimiter, marker=marker,
                                                    max_keys=max_keys, skip_prefix=skip_prefix)

        def page() -> ListPage:
            streams = [s for p in self.pools for s in p.entry_streams(bucket, prefix, delimiter, marker)]
            merged = _one_per_key(streams, _newest_entry)
            return list_page([merged], prefix, delimiter, marker, max_keys, skip_prefix)

        return await self._run(page)

    async def list_versions(
        self, bucket: str, *, prefix: str, delimiter: str, key_marker: str, version_id_marker: str, max_keys: int
    ) -> VersionsPage:
        """`ObjectLayer.list_versions` over the merged streams of every pool."""
        if len(self.pools) == 1 or max_keys <= 0:
            return await self.pools[0].list_versions(bucket, prefix=prefix, delimiter=delimiter,
                                                     key_marker=key_marker, version_id_marker=version_id_marker,
                                                     max_keys=max_keys)
        first: list[ObjectInfo] = []
        if key_marker and version_id_marker and key_marker.startswith(prefix):
            first = versions_after(_one_stack(await self._holdings(bucket, key_marker)), version_id_marker)

        def page() -> VersionsPage:
            streams = [s for p in self.pools for s in p.version_streams(bucket, prefix, delimiter, key_marker)]
            merged = _one_per_key(streams, _all_versions)
            return versions_page(first, [merged], prefix, delimiter, key_marker, max_keys)

        return await self._run(page)

    # --- multipart uploads ------------------------------------------------------------------------

    def multipart(self, key: str) -> MultipartSet | PooledMultipart:
        """The multipart uploads of `key`: each in the pool chosen when it was created."""
        return self.pools[0].multipart(key) if len(self.pools) == 1 else PooledMultipart(self)

    async def list_multipart_uploads(self, bucket: str, prefix: str) -> list[Upload]:
        """Every upload in progress in `bucket` under `prefix` in any pool, sorted by key, then upload id."""
        if len(self.pools) == 1:
            return await self.pools[0].list_multipart_uploads(bucket, prefix)
        found = await asyncio.gather(*(p.list_multipart_uploads(bucket, prefix) for p in self.pools))
        uploads = [_with_pool(u, index) for index, group in enumerate(found) for u in group]
        return sorted(uploads, key=lambda u: (u.key.encode(), u.upload_id))

    def upload_janitor(self, expiry_s: float, interval: float) -> UploadJanitor:
        return self._every_set.upload_janitor(expiry_s, interval)

    # --- capacity -------------------------------------------------------------------------------

    async def disk_info(self) -> list[list[DiskInfo | BaseException]]:
        """Per set (in `sets` order), every drive's capacity or error."""
        return await self._every_set.disk_info()


class PooledMultipart:
    """`MultipartSet`'s interface for one key over several pools; the upload id names the pool."""

    def __init__(self, pools: ServerPools) -> None:
        self._pools = pools

    def _locate(self, bucket: str, key: str, upload_id: str) -> tuple[MultipartSet, str]:
        """The pool's multipart uploads of `key` and the engine's id of `upload_id`."""
        index, engine_id = _split_upload_id(upload_id)
        if index >= len(self._pools.pools):
            raise UploadNotFound(bucket, key, upload_id)
        return self._pools.pools[index].multipart(key), engine_id

    def _engine_upload(self, upload: Upload) -> tuple[MultipartSet, Upload]:
        uploads, engine_id = self._locate(upload.bucket, upload.key, upload.upload_id)
        return uploads, dataclasses.replace(upload, upload_id=engine_id)

    async def create(
        self, bucket: str, key: str, opts: PutOptions, *, checksum_algorithm: str | None = None,
        checksum_type: str | None = None, owner: str = "",
    ) -> Upload:
        index = await self._pools.pool_for_write(bucket, key)
        upload = await self._pools.pools[index].multipart(key).create(
            bucket, key, opts, checksum_algorithm=checksum_algorithm, checksum_type=checksum_type, owner=owner)
        return _with_pool(upload, index)

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> Upload:
        uploads, engine_id = self._locate(bucket, key, upload_id)
        return dataclasses.replace(await uploads.get_upload(bucket, key, engine_id), upload_id=upload_id)

    async def abort(self, bucket: str, key: str, upload_id: str) -> None:
        uploads, engine_id = self._locate(bucket, key, upload_id)
        await uploads.abort(bucket, key, engine_id)

    async def put_part(
        self, upload: Upload, number: int, body: AsyncIterator[bytes],
        verify: Callable[[BodyDigest], dict[str, str]] | None = None,
    ) -> PartInfo:
        uploads, engine_upload = self._engine_upload(upload)
        return await uploads.put_part(engine_upload, number, body, verify)

    async def list_parts(self, upload: Upload) -> list[QuorumPart]:
        uploads, engine_upload = self._engine_upload(upload)
        return await uploads.list_parts(engine_upload)

    async def complete(
        self, upload: Upload, requested: Sequence[tuple[int, str]], opts: PutOptions,
        checksums: Callable[[list[PartInfo]], dict[str, str]] | None = None, *, versioned: bool = False,
    ) -> ObjectInfo:
        uploads, engine_upload = self._engine_upload(upload)
        return await uploads.complete(engine_upload, requested, opts, checksums, versioned=versioned)

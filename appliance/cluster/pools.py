"""The object layer: one S3 namespace over every erasure set of the deployment.

Contract: callers (the S3 handlers, the healer, the admin API) see buckets and objects, never
drives. Each object lives in exactly one set, chosen by `placement.set_index`; a bucket exists as a
directory on every drive of every set. Bucket operations reach a write (or read) quorum in every
set, or fail with a domain error. Listings merge the sorted, quorum-agreed streams of all sets and
apply the delimiter, so memory stays bounded by one page whatever the bucket's size.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from appliance.cluster.placement import set_index
from appliance.engine.drive import DiskInfo
from appliance.engine.erasure_set import ErasureSet, ReadView
from appliance.engine.errors import (
    BucketExists,
    BucketNotEmpty,
    BucketNotFound,
    InvalidBucketName,
    VolumeExists,
    VolumeNotFound,
)
from appliance.engine.objects import ListEntry, ObjectInfo, PutOptions
from appliance.engine.quorum import reduce_quorum_errors


@dataclass(frozen=True, slots=True)
class BucketInfo:
    name: str
    created_ns: int

    @property
    def created(self) -> datetime:
        return datetime.fromtimestamp(self.created_ns / 1e9, tz=UTC)


@dataclass(frozen=True, slots=True)
class ListPage:
    entries: list[ListEntry]
    is_truncated: bool
    next_marker: str | None  # the last key or common prefix returned, when truncated


def _bucket_meta(data: bytes) -> int:
    try:
        return int(json.loads(data)["created_ns"])
    except (ValueError, KeyError, TypeError):
        return 0


def _check_bucket_name(bucket: str) -> None:
    if not bucket or "/" in bucket or bucket.startswith(".") or bucket in ("..", "."):
        raise InvalidBucketName(bucket)


class ObjectLayer:
    def __init__(self, sets: list[ErasureSet], deployment_id: str) -> None:
        self.sets = sets
        self.deployment_id = deployment_id

    def set_for(self, key: str) -> ErasureSet:
        return self.sets[set_index(key, self.deployment_id, len(self.sets))]

    # --- buckets --------------------------------------------------------------------------------

    async def make_bucket(self, bucket: str) -> None:
        _check_bucket_name(bucket)
        meta = json.dumps({"created_ns": time.time_ns()}).encode()
        results = await asyncio.gather(*(s.fanout(lambda d: d.make_volume(bucket, meta)) for s in self.sets))
        try:
            for eset, res in zip(self.sets, results, strict=True):
                reduce_quorum_errors(res, eset.quorums()[1], for_write=True)
        except VolumeExists:
            raise BucketExists(bucket) from None
        except BaseException:
            # Undo the directories this call created, so a failed create leaves nothing behind.
            await asyncio.gather(
                *(
                    s.fanout(lambda d: d.delete_volume(bucket), [d for d, r in zip(s.drives, res, strict=False) if r is None])
                    for s, res in zip(self.sets, results, strict=True)
                )
            )
            raise

    async def head_bucket(self, bucket: str) -> BucketInfo:
        _check_bucket_name(bucket)
        results = await asyncio.gather(*(s.fanout(lambda d: d.stat_volume(bucket)) for s in self.sets))
        created = 0
        try:
            for eset, res in zip(self.sets, results, strict=True):
                reduce_quorum_errors(res, eset.quorums()[0], for_write=False)
                created = max([created] + [_bucket_meta(r) for r in res if isinstance(r, bytes)])
        except VolumeNotFound:
            raise BucketNotFound(bucket) from None
        return BucketInfo(bucket, created)

    async def delete_bucket(self, bucket: str) -> None:
        await self.head_bucket(bucket)
        page = await self.list_objects(bucket, prefix="", delimiter="", marker="", max_keys=1)
        if page.entries:
            raise BucketNotEmpty(bucket)
        results = await asyncio.gather(*(s.fanout(lambda d: d.delete_volume(bucket)) for s in self.sets))
        for eset, res in zip(self.sets, results, strict=True):
            res = [None if isinstance(r, VolumeNotFound) else r for r in res]
            reduce_quorum_errors(res, eset.quorums()[1], for_write=True)

    async def list_buckets(self) -> list[BucketInfo]:
        first = self.sets[0]
        results = await first.fanout(lambda d: d.list_volumes())
        reduce_quorum_errors(results, first.quorums()[0], for_write=False)
        seen: dict[str, list[int]] = {}
        for res in results:
            if isinstance(res, BaseException):
                continue
            for name, meta in res:
                seen.setdefault(name, []).append(_bucket_meta(meta))
        quorum = first.quorums()[0]
        return [BucketInfo(name, max(times)) for name, times in sorted(seen.items()) if len(times) >= quorum]

    # --- objects --------------------------------------------------------------------------------

    async def put_object(self, bucket: str, key: str, body: AsyncIterator[bytes], opts: PutOptions) -> ObjectInfo:
        return await self.set_for(key).put_object(bucket, key, body, opts)

    async def get_object_info(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo:
        return await self.set_for(key).get_object_info(bucket, key, version_id)

    async def open_object(self, bucket: str, key: str, version_id: str | None = None) -> tuple[ObjectInfo, ReadView]:
        view = await self.set_for(key).read_view(bucket, key, version_id)
        return ObjectInfo.from_version(bucket, key, view.version), view

    def stream_object(self, bucket: str, key: str, view: ReadView, start: int, end: int) -> AsyncIterator[bytes]:
        return self.set_for(key).stream(bucket, key, view, start, end)

    async def delete_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo | None:
        return await self.set_for(key).delete_object(bucket, key, version_id)

    # --- listing --------------------------------------------------------------------------------

    async def list_objects(
        self, bucket: str, *, prefix: str, delimiter: str, marker: str, max_keys: int, skip_prefix: str = ""
    ) -> ListPage:
        """One page of at most `max_keys` entries (objects and common prefixes) after `marker`.

        `skip_prefix` (a common prefix returned on the previous page) skips every key under it.
        """
        if max_keys <= 0:
            await self.head_bucket(bucket)
            return ListPage([], False, None)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.sets[0].executor, self._list_page, bucket, prefix, delimiter, marker, max_keys, skip_prefix
        )

    def _list_page(
        self, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int, skip_prefix: str
    ) -> ListPage:
        entries: list[ListEntry] = []
        truncated = False
        for entry in self._iter_grouped(bucket, prefix, delimiter, marker, skip_prefix):
            if len(entries) == max_keys:
                truncated = True
                break
            entries.append(entry)
        return ListPage(entries, truncated, entries[-1].key if truncated else None)

    def _iter_grouped(
        self, bucket: str, prefix: str, delimiter: str, marker: str, skip_prefix: str
    ) -> Iterator[ListEntry]:
        recursive = delimiter != "/"
        streams = [s.iter_entries(bucket, prefix, marker, recursive) for s in self.sets]
        merged = heapq.merge(*streams, key=lambda e: e.key.encode()) if len(streams) > 1 else streams[0]
        last = None
        for entry in merged:
            key = entry.key
            if key == last or (skip_prefix and key.startswith(skip_prefix)):
                continue
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    skip_prefix = common
                    if common != last and common.encode() > marker.encode():
                        last = common
                        yield ListEntry(common, None)
                    continue
            last = key
            yield entry

    # --- capacity -------------------------------------------------------------------------------

    async def disk_info(self) -> list[list[DiskInfo | BaseException]]:
        return list(await asyncio.gather(*(s.disk_info() for s in self.sets)))

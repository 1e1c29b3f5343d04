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
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from appliance.cluster.bucket_meta import VERSIONING_ENABLED, VERSIONING_SUSPENDED, BucketMetaStore
from appliance.cluster.placement import set_index
from appliance.engine.drive import DiskInfo
from appliance.engine.erasure_set import ErasureSet, KeyVersions, ReadView
from appliance.engine.errors import (
    BucketExists,
    BucketNotEmpty,
    BucketNotFound,
    InvalidBucketName,
    VolumeExists,
    VolumeNotFound,
)
from appliance.engine.metadata import ObjectVersion
from appliance.engine.multipart import MultipartSet, Upload, UploadJanitor
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


@dataclass(frozen=True, slots=True)
class VersionsPage:
    """One page of ListObjectVersions: versions and delete markers (key order, newest first) and
    common prefixes, at most max-keys of them together."""

    versions: list[ObjectInfo]
    prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    next_version_id_marker: str | None


def _bucket_meta(data: bytes) -> int:
    try:
        return int(json.loads(data)["created_ns"])
    except (ValueError, KeyError, TypeError):
        return 0


def _check_bucket_name(bucket: str) -> None:
    if not bucket or "/" in bucket or bucket.startswith(".") or bucket in ("..", "."):
        raise InvalidBucketName(bucket)


K = TypeVar("K", ListEntry, KeyVersions)


def group_by_delimiter(
    streams: list[Iterator[K]], prefix: str, delimiter: str, marker: str, skip_prefix: str
) -> Iterator[K | str]:
    """Merge the sets' sorted streams and fold keys that hold `delimiter` after `prefix` into one
    common prefix (a str), skipping everything under `skip_prefix` (the previous page's last prefix)."""
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
                    yield common
                continue
        last = key
        yield entry


def _walks_recursively(delimiter: str) -> bool:
    """Drives walk "/" as directories; any other delimiter needs every key, grouped afterwards."""
    return delimiter != "/"


def list_page(
    streams: list[Iterator[ListEntry]], prefix: str, delimiter: str, marker: str, max_keys: int, skip_prefix: str
) -> ListPage:
    """One page of at most `max_keys` entries (objects and common prefixes) of the merged `streams`."""
    entries: list[ListEntry] = []
    truncated = False
    for entry in group_by_delimiter(streams, prefix, delimiter, marker, skip_prefix):
        if len(entries) == max_keys:
            truncated = True
            break
        entries.append(ListEntry(entry, None) if isinstance(entry, str) else entry)
    return ListPage(entries, truncated, entries[-1].key if truncated else None)


def versions_after(versions: list[ObjectInfo], version_id_marker: str) -> list[ObjectInfo]:
    """The versions of the marker key that follow `version_id_marker` (newest first), if it is one of them."""
    ids = [v.version_id for v in versions]
    return versions[ids.index(version_id_marker) + 1 :] if version_id_marker in ids else []


def _each_version(grouped: Iterator[KeyVersions | str]) -> Iterator[ObjectInfo | str]:
    for entry in grouped:
        if isinstance(entry, str):
            yield entry
        else:
            yield from entry.versions or ()


def versions_page(
    first: list[ObjectInfo], streams: list[Iterator[KeyVersions]], prefix: str, delimiter: str, key_marker: str,
    max_keys: int,
) -> VersionsPage:
    """One page of versions: `first` (the rest of the marker key), then every version (newest first per
    key) and common prefix of the merged `streams`, in key order."""
    skip_prefix = key_marker if delimiter and key_marker.endswith(delimiter) else ""
    grouped = group_by_delimiter(streams, prefix, delimiter, key_marker, skip_prefix)
    items = itertools.chain(first, _each_version(grouped))
    versions: list[ObjectInfo] = []
    prefixes: list[str] = []
    last: ObjectInfo | str | None = None
    truncated = False
    for count, item in enumerate(items):
        if count == max_keys:
            truncated = True
            break
        if isinstance(item, str):
            prefixes.append(item)
        else:
            versions.append(item)
        last = item
    if not truncated or last is None:
        return VersionsPage(versions, prefixes, truncated, None, None)
    if isinstance(last, str):
        return VersionsPage(versions, prefixes, True, last, None)
    return VersionsPage(versions, prefixes, True, last.key, last.version_id)


class ObjectLayer:
    def __init__(self, sets: list[ErasureSet], deployment_id: str) -> None:
        self.sets = sets
        self.deployment_id = deployment_id
        self.bucket_meta = BucketMetaStore(sets)

    def set_for(self, key: str) -> ErasureSet:
        return self.sets[set_index(key, self.deployment_id, len(self.sets))]

    # --- buckets --------------------------------------------------------------------------------

    async def make_bucket(self, bucket: str) -> None:
        _check_bucket_name(bucket)
        self.bucket_meta.forget(bucket)
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
        # Versions and delete markers count too: a versioned bucket is empty only when none is left.
        page = await self.list_versions(bucket, prefix="", delimiter="", key_marker="", version_id_marker="",
                                        max_keys=1)
        if page.versions:
            raise BucketNotEmpty(bucket)
        self.bucket_meta.forget(bucket)
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

    async def put_object(
        self, bucket: str, key: str, body: AsyncIterator[bytes], opts: PutOptions, *, versioned: bool = False
    ) -> ObjectInfo:
        return await self.set_for(key).put_object(bucket, key, body, opts, versioned=versioned)

    async def get_object_info(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo:
        return await self.set_for(key).get_object_info(bucket, key, version_id)

    async def open_object(self, bucket: str, key: str, version_id: str | None = None) -> tuple[ObjectInfo, ReadView]:
        view = await self.set_for(key).read_view(bucket, key, version_id)
        return ObjectInfo.from_version(bucket, key, view.version), view

    def stream_object(self, bucket: str, key: str, view: ReadView, start: int, end: int) -> AsyncIterator[bytes]:
        return self.set_for(key).stream(bucket, key, view, start, end)

    async def delete_object(
        self, bucket: str, key: str, version_id: str | None = None, *, versioning: str | None = None
    ) -> ObjectInfo | None:
        """Delete as S3 does for the bucket's versioning state (None: never versioned).

        With a version id: that version (object or delete marker) is removed for good. Without one:
        an unversioned bucket loses the object; an Enabled bucket gets a new delete marker, a
        Suspended one a "null" delete marker (replacing the null version). Returns the version
        removed or the marker added (None when there was nothing to remove).
        """
        eset = self.set_for(key)
        if version_id is None and versioning in (VERSIONING_ENABLED, VERSIONING_SUSPENDED):
            return await eset.add_delete_marker(bucket, key, versioned=versioning == VERSIONING_ENABLED)
        return await eset.delete_object(bucket, key, version_id)

    async def update_version(
        self, bucket: str, key: str, version_id: str | None, change: Callable[[ObjectVersion], None]
    ) -> ObjectInfo:
        return await self.set_for(key).update_version(bucket, key, version_id, change)

    # --- versions -------------------------------------------------------------------------------

    async def list_versions(
        self, bucket: str, *, prefix: str, delimiter: str, key_marker: str, version_id_marker: str, max_keys: int
    ) -> VersionsPage:
        """One page of versions after (key_marker, version_id_marker), S3's ListObjectVersions order."""
        if max_keys <= 0:
            await self.head_bucket(bucket)
            return VersionsPage([], [], False, None, None)
        first: list[ObjectInfo] = []
        if key_marker and version_id_marker and key_marker.startswith(prefix):
            first = versions_after(await self.set_for(key_marker).key_versions(bucket, key_marker), version_id_marker)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.sets[0].executor,
            lambda: versions_page(first, self.version_streams(bucket, prefix, delimiter, key_marker), prefix, delimiter,
                                  key_marker, max_keys),
        )

    def version_streams(self, bucket: str, prefix: str, delimiter: str, marker: str) -> list[Iterator[KeyVersions]]:
        """Each set's sorted keys with their versions after `marker` (lazy: iterate on a worker thread)."""
        return [s.iter_versions(bucket, prefix, marker, _walks_recursively(delimiter)) for s in self.sets]

    # --- multipart uploads ------------------------------------------------------------------------

    def multipart(self, key: str) -> MultipartSet:
        """The multipart uploads of `key` live in the key's set, like the object they become."""
        return MultipartSet(self.set_for(key))

    async def list_multipart_uploads(self, bucket: str, prefix: str) -> list[Upload]:
        """Every upload in progress in `bucket` under `prefix`, sorted by key, then upload id."""
        await self.head_bucket(bucket)
        loop = asyncio.get_running_loop()
        found = await asyncio.gather(
            *(loop.run_in_executor(s.executor, MultipartSet(s).scan_uploads, bucket) for s in self.sets)
        )
        uploads = [u for group in found for u in group if u.key.startswith(prefix)]
        return sorted(uploads, key=lambda u: (u.key.encode(), u.upload_id))

    async def bucket_configs(self, only: str | None = None) -> list[tuple[str, bytes]]:
        """(name, current configuration bytes) of every bucket, or of `only`: what healing copies."""
        names = [only] if only else [b.name for b in await self.list_buckets()]
        return [(name, (await self.bucket_meta.get(name)).encode()) for name in names]

    def upload_janitor(self, expiry_s: float, interval: float) -> UploadJanitor:
        return UploadJanitor(self.sets, expiry_s, interval)

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
            self.sets[0].executor,
            lambda: list_page(self.entry_streams(bucket, prefix, delimiter, marker), prefix, delimiter, marker,
                              max_keys, skip_prefix),
        )

    def entry_streams(self, bucket: str, prefix: str, delimiter: str, marker: str) -> list[Iterator[ListEntry]]:
        """Each set's sorted listing entries after `marker` (lazy: iterate on a worker thread)."""
        return [s.iter_entries(bucket, prefix, marker, _walks_recursively(delimiter)) for s in self.sets]

    # --- capacity -------------------------------------------------------------------------------

    async def disk_info(self) -> list[list[DiskInfo | BaseException]]:
        return list(await asyncio.gather(*(s.disk_info() for s in self.sets)))

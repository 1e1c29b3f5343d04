"""Object operations over one erasure set: put, read, delete and list, with quorum on every step.

Contract: an `ErasureSet` owns n drives (some may be offline: `OfflineDrive` stands in for them) and
stores each object as k data + m parity fragments per 1 MiB block, fragment `distribution[i]` on
drive i. It answers only with data a read quorum agrees on, acknowledges a write only after a write
quorum committed it, and undoes a write that missed the quorum, so a failed PUT leaves nothing
visible. Drive calls are blocking; they run on the shared thread pool, never on the event loop.
Objects it finds degraded (a missing, stale or corrupt copy) are reported through `on_degraded` so
the healer can repair them; it never repairs inline on the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import heapq
import itertools
import time
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from appliance.engine import bitrot, metadata
from appliance.engine.codec import BLOCK_SIZE, codec_for
from appliance.engine.drive import DiskInfo, Drive, ShardReader, ShardWriter, WalkEntry
from appliance.engine.errors import (
    BucketNotFound,
    DriveError,
    DriveOffline,
    EngineError,
    FileCorrupt,
    FileNotFoundOnDrive,
    ObjectNotFound,
    ReadQuorumUnavailable,
    VersionNotFound,
    VolumeNotFound,
)
from appliance.engine.locks import Locker
from appliance.engine.metadata import NULL_VERSION, ErasureInfo, ObjectMeta, ObjectVersion, PartInfo
from appliance.engine.names import DATA_DIR_PREFIX, key_to_path
from appliance.engine.objects import BodyDigest, ListEntry, ObjectInfo, PutOptions
from appliance.engine.quorum import read_quorum, reduce_quorum_errors, write_quorum

R = TypeVar("R")


class OfflineDrive:
    """Stands in for a drive that could not be used at start: every call fails with DriveOffline."""

    def __init__(self, endpoint: str, reason: str) -> None:
        self._endpoint = endpoint
        self._reason = reason

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def __getattr__(self, name: str) -> Callable[..., object]:
        def fail(*args: object, **kwargs: object) -> object:
            raise DriveOffline(f"{self._endpoint}: {self._reason}")

        return fail


def _guard(fn: Callable[[Drive], R], drive: Drive) -> R | BaseException:
    try:
        return fn(drive)
    except Exception as exc:  # one drive's failure is a result, reduced against the quorum later
        return exc


class LatestIsDeleteMarker(ObjectNotFound):
    """The key's latest version is a delete marker (S3: 404 NoSuchKey carrying the marker's headers)."""

    def __init__(self, bucket: str, key: str, version_id: str) -> None:
        super().__init__(bucket, key)
        self.version_id = version_id


@dataclass
class ReadView:
    """The quorum-agreed version of an object, and which drives hold it intact (by metadata)."""

    version: ObjectVersion
    holders: list[ObjectVersion | None]  # per drive: that drive's copy of the version, or None
    degraded: bool


def choose_version(
    metas: Sequence[ObjectMeta | BaseException], version_id: str | None, quorum: int, bucket: str, key: str
) -> ReadView:
    """Pick the version (the latest, or `version_id`) that at least `quorum` drives agree on.

    Raises ObjectNotFound / VersionNotFound when too few drives hold it for it to have ever been
    written with quorum, and ReadQuorumUnavailable when failures hide the answer.
    """
    candidates: list[ObjectVersion | None] = []
    for meta in metas:
        if isinstance(meta, BaseException):
            candidates.append(None)
        elif version_id is None:
            candidates.append(meta.latest())
        else:
            candidates.append(meta.find(version_id))
    signatures = [metadata.version_signature(v) if v is not None else None for v in candidates]
    counts = Counter(s for s in signatures if s is not None)
    n = len(metas)
    if counts:
        best = max(
            counts,
            key=lambda s: (counts[s], next(v.mod_time_ns for v, sig in zip(candidates, signatures, strict=False) if sig == s and v)),
        )
        if counts[best] >= quorum:
            holders = [v if sig == best else None for v, sig in zip(candidates, signatures, strict=False)]
            chosen = next(v for v in holders if v is not None)
            # Offline drives cannot be repaired now; a copy missing or stale on a drive that answered can.
            degraded = any(h is None and not isinstance(m, DriveOffline) for h, m in zip(holders, metas, strict=False))
            return ReadView(chosen, holders, degraded=degraded)
    absent = sum(
        1
        for meta, cand in zip(metas, candidates, strict=False)
        if isinstance(meta, FileNotFoundOnDrive) or (not isinstance(meta, BaseException) and cand is None)
    )
    if absent > n - quorum:
        if version_id is None:
            raise ObjectNotFound(bucket, key)
        raise VersionNotFound(bucket, key, version_id)
    if all(isinstance(m, VolumeNotFound) for m in metas if isinstance(m, BaseException)) and sum(
        isinstance(m, VolumeNotFound) for m in metas
    ) > n - quorum:
        raise BucketNotFound(bucket)
    raise ReadQuorumUnavailable(f"{bucket}/{key}: {max(counts.values(), default=0)} of {n} drives agree, {quorum} needed")


def decode_metas(results: Sequence[bytes | BaseException]) -> list[ObjectMeta | BaseException]:
    out: list[ObjectMeta | BaseException] = []
    for r in results:
        if isinstance(r, BaseException):
            out.append(r)
            continue
        try:
            out.append(metadata.decode(r))
        except FileCorrupt as exc:
            out.append(exc)
    return out


class ErasureSet:
    def __init__(
        self,
        index: int,
        drives: list[Drive],
        *,
        default_parity: int,
        executor: Executor,
        locker: Locker,
        on_degraded: Callable[[str, str], None] = lambda bucket, key: None,
    ) -> None:
        self.index = index
        self.drives = drives
        self.n = len(drives)
        self.default_parity = default_parity
        self.executor = executor
        self.locker = locker
        self.on_degraded = on_degraded

    # --- plumbing -------------------------------------------------------------------------------

    async def run(self, fn: Callable[[], R]) -> R:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    async def fanout(
        self, fn: Callable[[Drive], R], drives: Sequence[Drive] | None = None
    ) -> list[R | BaseException]:
        """Call `fn` on every drive in parallel; each result is a value or the drive's exception."""
        loop = asyncio.get_running_loop()
        targets = self.drives if drives is None else drives
        return list(await asyncio.gather(*(loop.run_in_executor(self.executor, _guard, fn, d) for d in targets)))

    def layout(self, parity: int | None) -> tuple[int, int]:
        m = self.default_parity if parity is None else parity
        if self.n == 1:
            return 1, 0
        if m < 0 or m > self.n // 2:
            raise EngineError(f"parity {m} is not possible on a set of {self.n} drives")
        return self.n - m, m

    def quorums(self, parity: int | None = None) -> tuple[int, int]:
        k, m = self.layout(parity)
        return read_quorum(k, m), write_quorum(k, m)

    def read_metas_sync(self, bucket: str, key: str) -> list[ObjectMeta | BaseException]:
        """Every drive's decoded metadata of `key`, one drive after another (for worker threads)."""
        raw: list[bytes | BaseException] = []
        for d in self.drives:
            try:
                raw.append(d.read_meta(bucket, key))
            except Exception as exc:
                raw.append(exc)
        return decode_metas(raw)

    async def read_metas(self, bucket: str, key: str) -> list[ObjectMeta | BaseException]:
        return decode_metas(await self.fanout(lambda d: d.read_meta(bucket, key)))

    async def disk_info(self) -> list[DiskInfo | BaseException]:
        return await self.fanout(lambda d: d.disk_info())

    # --- write ------------------------------------------------------------------------------------

    async def put_object(
        self, bucket: str, key: str, body: AsyncIterator[bytes], opts: PutOptions, *, versioned: bool = False
    ) -> ObjectInfo:
        """Store a new version: a fresh UUID version id when `versioned`, else the "null" version (replaced)."""
        key_to_path(key)  # refuse unstorable names before reading the body
        k, m = self.layout(opts.parity)
        wq = write_quorum(k, m)
        upload = _ShardUpload(self, k, m, shard_distribution(key, self.n), wq)
        try:
            buf = bytearray()
            async for chunk in body:
                buf += chunk
                while len(buf) >= BLOCK_SIZE:
                    block = bytes(buf[:BLOCK_SIZE])
                    del buf[:BLOCK_SIZE]
                    await upload.add_block(block)
            inline = await upload.finish(bytes(buf))
            del buf
            if opts.verify is not None:
                opts.verify(BodyDigest(size=upload.size, md5=upload.md5.digest()))
            etag = upload.md5.hexdigest()
            data_dir = None if inline is not None else DATA_DIR_PREFIX + uuid.uuid4().hex
            version = ObjectVersion(
                version_id=str(uuid.uuid4()) if versioned else NULL_VERSION,
                deleted=False,
                mod_time_ns=time.time_ns(),
                size=upload.size,
                etag=etag,
                content_type=opts.content_type,
                user_meta=dict(opts.user_meta),
                system_meta=dict(opts.system_meta),
                parts=[PartInfo(number=1, size=upload.size, etag=etag)],
                erasure=ErasureInfo(k=k, m=m, block_size=BLOCK_SIZE, index=0, distribution=upload.dist,
                                    algorithm=bitrot.DEFAULT_ALGORITHM),
                data_dir=data_dir,
                inline=None,
            )
            await self.commit_version(bucket, key, version, inline, upload.temp_id if data_dir else None,
                               upload.failures(), wq, opts)
            return ObjectInfo.from_version(bucket, key, version)
        except BaseException:
            await upload.abort()
            raise

    async def commit_version(
        self,
        bucket: str,
        key: str,
        version: ObjectVersion,
        inline: list[bytes] | None,
        temp_id: str | None,
        failed: list[BaseException | None],
        wq: int,
        opts: PutOptions,
    ) -> None:
        k = version.erasure.k if version.erasure else 1
        async with self.locker.lock(bucket, key):
            old_raw = await self.fanout(lambda d: d.read_meta(bucket, key))
            old = decode_metas(old_raw)
            if opts.precondition is not None:
                opts.precondition(_current_info(old, bucket, key, k))
            blobs: list[bytes | None] = []
            replaced: list[list[str]] = []
            for i in range(self.n):
                base = old[i] if isinstance(old[i], ObjectMeta) else ObjectMeta(versions=[])
                assert isinstance(base, ObjectMeta)
                mine = version_for_drive(version, i, inline[i] if inline is not None else None)
                gone = base.add_version(mine)
                replaced.append([v.data_dir for v in gone if v.data_dir])
                blobs.append(metadata.encode(base))

            def commit_one(i: int) -> Callable[[Drive], None]:
                def run(d: Drive) -> None:
                    err = failed[i]
                    if err is not None:
                        raise err
                    blob = blobs[i]
                    assert blob is not None
                    d.commit(bucket, key, blob, temp_id, version.data_dir)

                return run

            results = await asyncio.gather(
                *(self.run(lambda i=i: _guard(commit_one(i), self.drives[i])) for i in range(self.n))  # type: ignore[misc]
            )
            try:
                reduce_quorum_errors(results, wq, for_write=True)
            except VolumeNotFound:
                await self._rollback(bucket, key, results, old_raw, version.data_dir)
                raise BucketNotFound(bucket) from None
            except BaseException:
                await self._rollback(bucket, key, results, old_raw, version.data_dir)
                raise
            cleanup = [(i, names) for i, names in enumerate(replaced) if names and not isinstance(results[i], BaseException)]
            if cleanup:
                await asyncio.gather(
                    *(self.run(lambda i=i, names=names: _guard(  # type: ignore[misc]
                        lambda d: d.remove_data_dirs(bucket, key, names), self.drives[i])) for i, names in cleanup)
                )
            if any(isinstance(r, BaseException) for r in results):
                self.on_degraded(bucket, key)

    async def _rollback(
        self, bucket: str, key: str, results: Sequence[object], old_raw: Sequence[bytes | BaseException], data_dir: str | None
    ) -> None:
        """Undo a commit on the drives that took it, after the write missed its quorum."""

        def undo(i: int) -> Callable[[Drive], None]:
            def run(d: Drive) -> None:
                previous = old_raw[i]
                if isinstance(previous, bytes):
                    d.write_meta(bucket, key, previous)
                else:
                    d.delete_meta(bucket, key)
                if data_dir:
                    d.remove_data_dirs(bucket, key, [data_dir])

            return run

        done = [i for i, r in enumerate(results) if not isinstance(r, BaseException)]
        await asyncio.gather(*(self.run(lambda i=i: _guard(undo(i), self.drives[i])) for i in done))  # type: ignore[misc]

    # --- read -----------------------------------------------------------------------------------

    async def read_view(self, bucket: str, key: str, version_id: str | None = None) -> ReadView:
        key_to_path(key)
        metas = await self.read_metas(bucket, key)
        # The read quorum is the data-shard count of the version itself; start from the most
        # permissive layout and re-check once the version (and so its k) is known.
        view = choose_version(metas, version_id, 1 if self.n == 1 else self.n - self.n // 2, bucket, key)
        k = view.version.erasure.k if view.version.erasure else 1
        held = sum(1 for h in view.holders if h is not None)
        if held < k:
            raise ReadQuorumUnavailable(f"{bucket}/{key}: {held} drives hold it, {k} needed")
        if view.version.deleted and version_id is None:
            raise LatestIsDeleteMarker(bucket, key, view.version.version_id)
        if view.degraded:
            self.on_degraded(bucket, key)
        return view

    async def get_object_info(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo:
        view = await self.read_view(bucket, key, version_id)
        return ObjectInfo.from_version(bucket, key, view.version)

    def stream(self, bucket: str, key: str, view: ReadView, start: int, end: int) -> AsyncIterator[bytes]:
        """The bytes start..end (inclusive) of the version in `view`; verified, decoded, prefetching one block."""
        return _BlockStream(self, bucket, key, view).iterate(start, end)

    # --- delete ---------------------------------------------------------------------------------

    async def delete_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo | None:
        """Remove a version (the null version by default). Returns what was removed, or None if absent."""
        key_to_path(key)
        target = NULL_VERSION if version_id is None else version_id
        async with self.locker.lock(bucket, key):
            metas = await self.read_metas(bucket, key)
            try:
                view = choose_version(metas, target, 1, bucket, key)
                removed: ObjectInfo | None = ObjectInfo.from_version(bucket, key, view.version)
            except (ObjectNotFound, VersionNotFound, ReadQuorumUnavailable):
                removed = None
            k = 1
            if removed is not None:
                for meta in metas:
                    if isinstance(meta, ObjectMeta):
                        found = meta.find(target)
                        if found is not None and found.erasure is not None:
                            k = found.erasure.k
                            break
            wq = write_quorum(k, self.n - k) if self.n > 1 else 1

            def delete_one(i: int) -> Callable[[Drive], None]:
                def run(d: Drive) -> None:
                    meta = metas[i]
                    if isinstance(meta, FileNotFoundOnDrive):
                        return
                    if isinstance(meta, BaseException):
                        if isinstance(meta, FileCorrupt):
                            d.delete_meta(bucket, key)
                            return
                        raise meta
                    gone = meta.remove_version(target)
                    if gone is None:
                        return
                    if meta.versions:
                        d.write_meta(bucket, key, metadata.encode(meta))
                    else:
                        d.delete_meta(bucket, key)
                    if gone.data_dir:
                        d.remove_data_dirs(bucket, key, [gone.data_dir])

                return run

            results = await asyncio.gather(
                *(self.run(lambda i=i: _guard(delete_one(i), self.drives[i])) for i in range(self.n))  # type: ignore[misc]
            )
            results = [None if isinstance(r, FileNotFoundOnDrive) else r for r in results]
            try:
                reduce_quorum_errors(results, wq, for_write=True)
            except VolumeNotFound:
                raise BucketNotFound(bucket) from None
            if any(isinstance(r, BaseException) for r in results):
                self.on_degraded(bucket, key)
            return removed

    # --- versions -------------------------------------------------------------------------------

    async def add_delete_marker(self, bucket: str, key: str, *, versioned: bool) -> ObjectInfo:
        """Make a delete marker the latest version: a UUID one when `versioned`, else the "null" one
        (which replaces the null version, object or marker, and frees its data)."""
        key_to_path(key)
        marker = ObjectVersion(
            version_id=str(uuid.uuid4()) if versioned else NULL_VERSION, deleted=True, mod_time_ns=time.time_ns()
        )
        await self.commit_version(bucket, key, marker, None, None, [None] * self.n, self.quorums()[1], PutOptions())
        return ObjectInfo.from_version(bucket, key, marker)

    async def update_version(
        self, bucket: str, key: str, version_id: str | None, change: Callable[[ObjectVersion], None]
    ) -> ObjectInfo:
        """Change one version's metadata in place (tags), without rewriting its data.

        `change` mutates a drive's copy of the version (the latest one when `version_id` is None; it
        may be a delete marker, which `change` may refuse by raising) and must be deterministic: it
        runs once per drive holding the quorum copy. The new metadata must reach the version's write
        quorum, else the drives that took it get their old metadata back and the call fails.
        """
        key_to_path(key)
        async with self.locker.lock(bucket, key):
            old_raw = await self.fanout(lambda d: d.read_meta(bucket, key))
            metas = decode_metas(old_raw)
            view = choose_version(metas, version_id, 1 if self.n == 1 else self.n - self.n // 2, bucket, key)
            erasure = view.version.erasure
            wq = write_quorum(erasure.k, erasure.m) if erasure else self.quorums()[1]
            blobs: list[bytes | None] = []
            for meta, holder in zip(metas, view.holders, strict=True):
                if holder is None or not isinstance(meta, ObjectMeta):
                    blobs.append(None)
                    continue
                change(holder)
                blobs.append(metadata.encode(meta))

            def write_one(i: int) -> Callable[[Drive], None]:
                def run(d: Drive) -> None:
                    blob = blobs[i]
                    if blob is None:
                        raise FileNotFoundOnDrive(f"{bucket}/{key}: no current copy of the version")
                    d.write_meta(bucket, key, blob)

                return run

            results = await asyncio.gather(
                *(self.run(lambda i=i: _guard(write_one(i), self.drives[i])) for i in range(self.n))  # type: ignore[misc]
            )
            try:
                reduce_quorum_errors(results, wq, for_write=True)
            except BaseException:
                await self._rollback(bucket, key, results, old_raw, None)
                raise
            if any(isinstance(r, BaseException) for r in results):
                self.on_degraded(bucket, key)
            updated = next(h for h in view.holders if h is not None)
            return ObjectInfo.from_version(bucket, key, updated)

    def iter_versions(self, bucket: str, prefix: str, marker: str, recursive: bool) -> Iterator[KeyVersions]:
        """Sorted keys of this set with every quorum-agreed version, newest first (blocking: run it
        on a worker thread). In a non-recursive walk a common prefix comes with `versions` None."""
        quorum = self.n - self.n // 2 if self.n > 1 else 1
        for key, group in self._walk_groups(bucket, prefix, marker, recursive):
            if group[0].meta is None:
                if len(group) >= quorum:
                    yield KeyVersions(key, None)
                continue
            metas: list[ObjectMeta] = []
            for entry in group:
                with contextlib.suppress(FileCorrupt):
                    metas.append(metadata.decode(entry.meta or b""))
            versions = _resolve_versions(bucket, key, metas, quorum)
            if versions:
                yield KeyVersions(key, versions)

    async def key_versions(self, bucket: str, key: str) -> list[ObjectInfo]:
        """Every quorum-agreed version of one key, newest first (empty when the key has none)."""
        key_to_path(key)
        metas = await self.read_metas(bucket, key)
        quorum = self.n - self.n // 2 if self.n > 1 else 1
        return _resolve_versions(bucket, key, [m for m in metas if isinstance(m, ObjectMeta)], quorum)

    # --- list -----------------------------------------------------------------------------------

    def iter_entries(self, bucket: str, prefix: str, marker: str, recursive: bool) -> Iterator[ListEntry]:
        """Sorted, quorum-agreed listing entries of this set (blocking: run it on a worker thread).

        Every drive's walk is merged; a key is listed when at least a read quorum of drives agree
        on its latest version, a common prefix when at least a read quorum hold something under it.
        """
        quorum = self.n - self.n // 2 if self.n > 1 else 1
        for key, group in self._walk_groups(bucket, prefix, marker, recursive):
            if group[0].meta is None:
                if len(group) >= quorum:
                    yield ListEntry(key, None)
                continue
            entry = _resolve_listing(bucket, key, group, self.n)
            if entry is not None:
                yield entry

    def _walk_groups(
        self, bucket: str, prefix: str, marker: str, recursive: bool
    ) -> Iterator[tuple[str, list[WalkEntry]]]:
        """Every drive's walk merged in key order: each key with the entries of the drives holding it."""
        walks: list[Iterator[WalkEntry]] = []
        errors: list[BaseException] = []
        for drive in self.drives:
            it = tolerant_walk(drive, bucket, prefix, marker, recursive)
            try:
                first = next(it)
            except StopIteration:
                walks.append(iter(()))
                continue
            except DriveError as exc:
                errors.append(exc)
                continue
            walks.append(itertools.chain([first], it))
        quorum = self.n - self.n // 2 if self.n > 1 else 1
        if len(walks) < quorum:
            if sum(isinstance(e, VolumeNotFound) for e in errors) > self.n - quorum:
                raise BucketNotFound(bucket)
            raise ReadQuorumUnavailable(f"only {len(walks)} of {self.n} drives can list {bucket}")
        merged = heapq.merge(*walks, key=lambda e: e.key.encode())
        for key, group_iter in itertools.groupby(merged, key=lambda e: e.key):
            yield key, list(group_iter)


def tolerant_walk(drive: Drive, bucket: str, prefix: str, marker: str, recursive: bool) -> Iterator[WalkEntry]:
    """A drive's walk that ends quietly if the drive fails part-way (its entries just stop counting)."""
    it = drive.walk(bucket, prefix, marker, recursive)
    first = True
    while True:
        try:
            entry = next(it)
        except StopIteration:
            return
        except DriveError:
            if first:
                raise
            return
        first = False
        yield entry


def _close_all(readers: Sequence[ShardReader]) -> None:
    for reader in readers:
        reader.close()


class KeyVersions(NamedTuple):
    """One key of a version listing with its versions newest first, or a common prefix (None)."""

    key: str
    versions: list[ObjectInfo] | None


def _resolve_versions(bucket: str, key: str, metas: Sequence[ObjectMeta], quorum: int) -> list[ObjectInfo]:
    """The versions of a key that enough drives agree on, newest first; the first is the latest.

    A version counts when at least `quorum` drives (and at least its data-shard count) hold
    identical copies; of two copies of one version id (a metadata change that missed a drive) the
    one more drives hold wins.
    """
    counts: Counter[bytes] = Counter()
    sample: dict[bytes, ObjectVersion] = {}
    order: dict[bytes, int] = {}
    for meta in metas:
        for pos, v in enumerate(meta.versions):
            sig = metadata.version_signature(v)
            counts[sig] += 1
            sample.setdefault(sig, v)
            order[sig] = min(order.get(sig, pos), pos)
    best: dict[str, bytes] = {}
    for sig, count in counts.items():
        v = sample[sig]
        if count < max(quorum, v.erasure.k if v.erasure else 1):
            continue
        current = best.get(v.version_id)
        if current is None or counts[current] < count:
            best[v.version_id] = sig
    chosen = sorted(best.values(), key=lambda sig: (-sample[sig].mod_time_ns, order[sig]))
    return [ObjectInfo.from_version(bucket, key, sample[sig], is_latest=i == 0) for i, sig in enumerate(chosen)]


def _resolve_listing(bucket: str, key: str, group: list[WalkEntry], n: int) -> ListEntry | None:
    versions: list[ObjectVersion] = []
    for entry in group:
        try:
            latest = metadata.decode_latest(entry.meta or b"")
        except FileCorrupt:
            continue
        if latest is not None:
            versions.append(latest)
    if not versions:
        return None
    counts = Counter(metadata.version_signature(v) for v in versions)
    best, count = max(counts.items(), key=lambda item: item[1])
    chosen = next(v for v in versions if metadata.version_signature(v) == best)
    k = chosen.erasure.k if chosen.erasure else 1
    if count < k or (n > 1 and count < 1):
        return None
    if chosen.deleted:
        return None
    return ListEntry(key, ObjectInfo.from_version(bucket, key, chosen))


def shard_distribution(key: str, n: int) -> list[int]:
    """Fragment index held by each drive of the set: drive i holds fragment `result[i]`.

    The order is rotated by a CRC32 of the key so parity fragments (and their write load) spread
    over every drive of the set.
    """
    start = zlib.crc32(key.encode()) % n
    return [(i - start) % n for i in range(n)]


def _check_alive(items: Sequence[object], quorum: int) -> None:
    reduce_quorum_errors(list(items), quorum, for_write=True)


def version_for_drive(version: ObjectVersion, i: int, inline: bytes | None) -> ObjectVersion:
    """The copy of `version` that drive i stores: its own fragment index and inline shard."""
    if version.erasure is None:  # a delete marker: every drive holds the same copy
        return version
    erasure = ErasureInfo(
        k=version.erasure.k,
        m=version.erasure.m,
        block_size=version.erasure.block_size,
        index=version.erasure.distribution[i],
        distribution=list(version.erasure.distribution),
        algorithm=version.erasure.algorithm,
    )
    return ObjectVersion(
        version_id=version.version_id,
        deleted=version.deleted,
        mod_time_ns=version.mod_time_ns,
        size=version.size,
        etag=version.etag,
        content_type=version.content_type,
        user_meta=version.user_meta,
        system_meta=version.system_meta,
        parts=version.parts,
        erasure=erasure,
        data_dir=version.data_dir,
        inline=inline,
    )


def _current_info(metas: Sequence[ObjectMeta | BaseException], bucket: str, key: str, k: int) -> ObjectInfo | None:
    try:
        view = choose_version(metas, None, k, bucket, key)
    except (ObjectNotFound, VersionNotFound):
        return None
    if view.version.deleted:
        return None
    return ObjectInfo.from_version(bucket, key, view.version)


class _ShardUpload:
    """The data half of a PUT: hashes, encodes and writes each block to every drive's temp area.

    MD5 (the ETag) of block i runs on one thread while block i is encoded on another (hashlib
    releases the GIL), and the drive writes of block i overlap the receiving and encoding of
    block i+1; at most two blocks are in memory. An object that ends within its first block and
    whose framed fragment fits `INLINE_LIMIT` never touches a shard file, unless `inline_allowed`
    is False (a multipart upload's part always gets its shard files, possibly empty).
    """

    def __init__(
        self, eset: ErasureSet, k: int, m: int, dist: list[int], wq: int, *, inline_allowed: bool = True
    ) -> None:
        self.eset = eset
        self.inline_allowed = inline_allowed
        self.codec = codec_for(k, m)
        self.dist = dist
        self.wq = wq
        self.md5 = hashlib.md5()
        self.size = 0
        self.temp_id = uuid.uuid4().hex
        self.writers: list[ShardWriter | BaseException] | None = None
        self._temp_used = False
        self._hashing: asyncio.Future[None] | None = None
        self._writing: asyncio.Future[None] | None = None

    def failures(self) -> list[BaseException | None]:
        if self.writers is None:
            return [None] * self.eset.n
        return [w if isinstance(w, BaseException) else None for w in self.writers]

    async def _encode(self, block: bytes) -> list[list[bytes]]:
        if self._hashing is not None:
            await self._hashing
        self.size += len(block)
        self._hashing = asyncio.ensure_future(self.eset.run(lambda: self.md5.update(block)))

        def encode() -> list[list[bytes]]:
            fragments = self.codec.encode(block)
            return [bitrot.frame(fragments[self.dist[i]]) for i in range(self.eset.n)]

        return await self.eset.run(encode)

    async def _open(self) -> None:
        self._temp_used = True
        self.writers = await self.eset.fanout(lambda d: d.create_shard_writer(self.temp_id))
        _check_alive(self.writers, self.wq)

    async def _write(self, frames: list[list[bytes]]) -> None:
        live = self.writers
        assert live is not None

        def write_one(i: int) -> None:
            w = live[i]
            if isinstance(w, BaseException):
                return
            try:
                w.write(frames[i])
            except Exception as exc:
                live[i] = exc

        await asyncio.gather(*(self.eset.run(lambda i=i: write_one(i)) for i in range(self.eset.n)))  # type: ignore[misc]
        _check_alive(live, self.wq)

    async def _queue_write(self, frames: list[list[bytes]]) -> None:
        if self._writing is not None:
            await self._writing
        self._writing = asyncio.ensure_future(self._write(frames))

    async def add_block(self, block: bytes) -> None:
        if self.writers is None:
            await self._open()
        await self._queue_write(await self._encode(block))

    async def finish(self, tail: bytes) -> list[bytes] | None:
        """Write the last (partial) block and flush; returns the inline shards of a small object."""
        inline: list[bytes] | None = None
        if self.writers is None and not self.inline_allowed:
            await self._open()
            if tail:
                await self._queue_write(await self._encode(tail))
        elif self.writers is None:
            if not tail:
                inline = [b""] * self.eset.n
            else:
                frames = await self._encode(tail)
                if len(frames[0][0]) + len(frames[0][1]) <= metadata.INLINE_LIMIT:
                    inline = [b"".join(f) for f in frames]
                else:
                    await self._open()
                    await self._queue_write(frames)
        elif tail:
            await self._queue_write(await self._encode(tail))
        if self._hashing is not None:
            await self._hashing
        if self._writing is not None:
            await self._writing
            self._writing = None
        if self.writers is not None:
            await self._close()
        return inline

    async def _close(self) -> None:
        writers = self.writers
        assert writers is not None

        def close_one(i: int) -> None:
            w = writers[i]
            if isinstance(w, BaseException):
                return
            try:
                w.close()
            except Exception as exc:
                writers[i] = exc

        await asyncio.gather(*(self.eset.run(lambda i=i: close_one(i)) for i in range(self.eset.n)))  # type: ignore[misc]
        _check_alive(writers, self.wq)

    async def abort(self) -> None:
        """Release the writers and remove the temp files of an upload that will not be committed."""
        # Let in-flight drive calls finish (a thread cannot be cancelled) before closing their files.
        for task in (self._writing, self._hashing):
            if task is not None:
                with contextlib.suppress(BaseException):
                    await task
        writers = self.writers

        def close_all() -> None:
            for w in writers or []:
                if not isinstance(w, BaseException):
                    with contextlib.suppress(Exception):
                        w.close()

        if writers is not None:
            await self.eset.run(close_all)
        if self._temp_used:
            await self.eset.fanout(lambda d: d.abort_temp(self.temp_id))


def part_sizes(version: ObjectVersion) -> list[int]:
    """Size of each part file of a version, in file order (part.1 first).

    A multipart object has one shard file per part, each cut into its own blocks (so the last block
    of every part may be short); any other object is one part of the whole size.
    """
    sizes = [p.size for p in version.parts]
    if not sizes or sum(sizes) != version.size:
        return [version.size]
    return sizes


def block_plan(sizes: Sequence[int], block_size: int, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """(part number, block index in the part, part size, lo, hi) of every block overlapping
    bytes start..end (inclusive) of the object; lo:hi is the slice of the block to return."""
    base = 0
    for number, size in enumerate(sizes, start=1):
        p_start, p_end = max(start, base), min(end, base + size - 1)
        if size and p_start <= p_end:
            for b in range((p_start - base) // block_size, (p_end - base) // block_size + 1):
                b_base = base + b * block_size
                b_len = min(block_size, size - b * block_size)
                yield number, b, size, max(p_start, b_base) - b_base, min(p_end, b_base + b_len - 1) - b_base + 1
        base += size


class _BlockStream:
    """Reads the blocks of one version from its holders, verifying every frame, using parity on failure."""

    def __init__(self, eset: ErasureSet, bucket: str, key: str, view: ReadView) -> None:
        self.eset = eset
        self.bucket = bucket
        self.key = key
        self.version = view.version
        assert view.version.erasure is not None
        self.erasure: ErasureInfo = view.version.erasure
        self.codec = codec_for(self.erasure.k, self.erasure.m)
        # Holders sorted so data fragments (cheap to decode) are tried first.
        self.order = sorted(
            (i for i, h in enumerate(view.holders) if h is not None),
            key=lambda i: (view.holders[i].erasure.index >= self.erasure.k, i),  # type: ignore[union-attr]
        )
        self.holders = view.holders
        # Readers of one part file per drive; reading the next part closes the previous part's.
        self.readers: dict[int, ShardReader] = {}
        self.reader_part = 0
        self.bad: set[int] = set()
        self.degraded = view.degraded

    async def iterate(self, start: int, end: int) -> AsyncIterator[bytes]:
        size = self.version.size
        if size == 0 or end < start:
            return
        try:
            if self.version.inline is not None or self.version.data_dir is None:
                block = await self.eset.run(self._inline_block)
                yield block[start : end + 1]
                return
            plan = block_plan(part_sizes(self.version), self.erasure.block_size, start, end)
            step = next(plan, None)
            nxt = self._prefetch(step)
            while step is not None and nxt is not None:
                block = await nxt
                lo, hi = step[3], step[4]
                step = next(plan, None)
                nxt = self._prefetch(step)
                yield block[lo:hi] if (lo, hi) != (0, len(block)) else block
        finally:
            if self.readers:
                readers = list(self.readers.values())
                self.readers.clear()
                await self.eset.run(lambda: _close_all(readers))
            if self.degraded or self.bad:
                self.eset.on_degraded(self.bucket, self.key)

    def _inline_block(self) -> bytes:
        fragments: dict[int, bytes] = {}
        for i in self.order:
            holder = self.holders[i]
            assert holder is not None and holder.erasure is not None
            try:
                fragments[holder.erasure.index] = bitrot.unframe(holder.inline or b"", self.erasure.algorithm)
            except FileCorrupt:
                self.bad.add(i)
                continue
            if len(fragments) == self.erasure.k:
                return self.codec.decode(fragments, self.version.size)
        raise ReadQuorumUnavailable(f"{self.bucket}/{self.key}: only {len(fragments)} intact shards")

    def _prefetch(self, step: tuple[int, int, int, int, int] | None) -> asyncio.Future[bytes] | None:
        if step is None:
            return None
        return asyncio.ensure_future(self.eset.run(functools.partial(self._read_block, step[0], step[1], step[2])))

    def _read_block(self, part: int, b: int, size: int) -> bytes:
        """Block `b` of part file `part` (of `size` bytes)."""
        e = self.erasure
        if part != self.reader_part:
            readers = list(self.readers.values())
            self.readers.clear()
            _close_all(readers)
            self.reader_part = part
        offset = bitrot.block_offset(b, e.k, e.m, e.block_size)
        length = bitrot.block_frame_len(b, size, e.k, e.m, e.block_size)
        block_len = min(e.block_size, size - b * e.block_size)
        fragments: dict[int, bytes] = {}
        for i in self.order:
            if i in self.bad:
                continue
            holder = self.holders[i]
            assert holder is not None and holder.erasure is not None and holder.data_dir is not None
            try:
                reader = self.readers.get(i)
                if reader is None:
                    reader = self.eset.drives[i].open_shard(self.bucket, self.key, holder.data_dir, part)
                    self.readers[i] = reader
                framed = reader.read_at(offset, length)
                fragments[holder.erasure.index] = bitrot.unframe(framed, e.algorithm)
            except (DriveError, OSError):
                self.bad.add(i)
                continue
            if len(fragments) == e.k:
                try:
                    return self.codec.decode(fragments, block_len)
                except FileCorrupt:
                    self.bad.update(self.order)
                    break
        raise ReadQuorumUnavailable(
            f"{self.bucket}/{self.key}: block {b} of part {part} has {len(fragments)} intact shards, {e.k} needed"
        )

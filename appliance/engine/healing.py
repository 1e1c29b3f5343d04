"""Healing: rebuild every missing, stale or corrupt copy of an object from a quorum of good ones.

Contract: `heal_object` takes the object's lock, works out for every version which copy a quorum
of drives agrees on, and brings every reachable drive to exactly that state: missing or corrupt
shards are reconstructed from k intact fragments (verified against their bitrot hashes), stale or
missing metadata is rewritten, versions that never reached a quorum (dangling) are removed, and
data directories no version refers to are deleted. It never invents data: a version that cannot
be decided (too many drives unreachable) is left untouched and reported as failed. A deep heal
(the default: queued objects, `cairn admin heal`) verifies every frame of every drive's shards; a
quick one (a blank drive being filled) checks only that each shard's last frame is there and
verifies, which finds missing and truncated shards at a fraction of the reads, and leaves bitrot
inside a shard to the scanner's deep pass. Rebuilt data is verified either way: every fragment a
rebuild reads is checked against its hash, and a bad one is skipped for another drive's.

Triggers: reads and writes that see a degraded object call `HealQueue.add` (persisted in the set's
system area, so it survives restarts); the `Healer` daemon drains that queue and fully heals drives
that were formatted blank into a slot; `heal_tree` serves the operator's `cairn admin heal`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import heapq
import itertools
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import msgpack
import xxhash

from appliance.engine import bitrot, metadata
from appliance.engine.codec import codec_for
from appliance.engine.drive import Drive, ShardReader, WalkEntry
from appliance.engine.erasure_set import (
    ErasureSet,
    ReadView,
    choose_version,
    part_sizes,
    tolerant_walk,
    version_for_drive,
)
from appliance.engine.errors import (
    DriveError,
    DriveOffline,
    FileCorrupt,
    FileNotFoundOnDrive,
    ObjectNotFound,
    ReadQuorumUnavailable,
    VersionNotFound,
    VolumeExists,
    VolumeNotFound,
)
from appliance.engine.metadata import ObjectMeta, ObjectVersion

log = logging.getLogger("cairn.heal")

QUEUE_DIR = "heal/queue"
DRIVE_HEAL_MARKER = "heal/drive-heal.json"
MAX_RETRY_DELAY = 300.0


@dataclass
class HealResult:
    bucket: str
    key: str
    status: str  # "ok" (nothing to do), "healed", "purged" (dangling, removed), "failed"
    drives_healed: int = 0
    bytes_written: int = 0
    detail: str = ""


def _version_quorum(eset: ErasureSet, metas: list[ObjectMeta | BaseException], version_id: str) -> int:
    for meta in metas:
        if isinstance(meta, ObjectMeta):
            v = meta.find(version_id)
            if v is not None and v.erasure is not None:
                return v.erasure.k
    return eset.n // 2 + 1


async def heal_object(eset: ErasureSet, bucket: str, key: str, deep: bool = True) -> HealResult:
    """Bring every reachable drive of the set to the quorum state of the object (see module docstring)."""
    async with eset.locker.lock(bucket, key):
        return await asyncio.get_running_loop().run_in_executor(eset.executor, _heal_locked_sync, eset, bucket, key,
                                                                deep)


def _heal_locked_sync(eset: ErasureSet, bucket: str, key: str, deep: bool) -> HealResult:
    metas = eset.read_metas_sync(bucket, key)
    reachable = [not isinstance(m, DriveOffline) and not (isinstance(m, DriveError) and not isinstance(
        m, (FileNotFoundOnDrive, FileCorrupt, VolumeNotFound))) for m in metas]
    version_ids: dict[str, int] = {}
    for meta in metas:
        if isinstance(meta, ObjectMeta):
            for v in meta.versions:
                version_ids[v.version_id] = max(version_ids.get(v.version_id, 0), v.mod_time_ns)
    kept: list[ReadView] = []
    undecided = []
    for vid in sorted(version_ids, key=lambda v: version_ids[v], reverse=True):
        try:
            kept.append(choose_version(metas, vid, _version_quorum(eset, metas, vid), bucket, key))
        except (ObjectNotFound, VersionNotFound):
            continue  # dangling: never reached a quorum, or deleted while a drive was away
        except ReadQuorumUnavailable:
            undecided.append(vid)
    if undecided:
        return HealResult(bucket, key, "failed", detail=f"cannot decide versions {undecided}: too few drives answer")
    if not version_ids and all(isinstance(m, (FileNotFoundOnDrive, VolumeNotFound)) or not r
                               for m, r in zip(metas, reachable, strict=False)):
        return HealResult(bucket, key, "ok")

    # Which drives need what: a version's data rebuilt, and/or their metadata rewritten.
    rebuild: dict[int, list[int]] = {}  # version position -> drives whose shards must be rebuilt
    for pos, view in enumerate(kept):
        v = view.version
        if v.deleted or v.erasure is None:
            continue
        for i in range(eset.n):
            if not reachable[i]:
                continue
            holder = view.holders[i]
            if holder is None or not shards_intact(eset.drives[i], bucket, key, holder, deep):
                rebuild.setdefault(pos, []).append(i)

    targets: list[ObjectMeta | None] = []
    for i in range(eset.n):
        if not reachable[i]:
            targets.append(None)
            continue
        versions = []
        for view in kept:
            holder = view.holders[i]
            versions.append(holder if holder is not None else version_for_drive(view.version, i, None))
        targets.append(ObjectMeta(versions=versions))

    written = 0
    healed_drives: set[int] = set()
    failures: list[str] = []
    for pos, drives in rebuild.items():
        try:
            written += _rebuild_version(eset, bucket, key, kept[pos], drives, targets)
            healed_drives.update(drives)
        except (DriveError, ReadQuorumUnavailable) as exc:
            failures.append(f"version {kept[pos].version.version_id}: {exc}")
            for i in drives:
                targets[i] = None  # leave that drive's metadata alone: its data could not be rebuilt

    for i, target in enumerate(targets):
        if target is None:
            continue
        current = metas[i]
        try:
            if not target.versions:
                if isinstance(current, (ObjectMeta, FileCorrupt)):
                    eset.drives[i].delete_meta(bucket, key)
                    healed_drives.add(i)
            elif i in healed_drives or not _same_meta(current, target):
                if i not in healed_drives:
                    eset.drives[i].write_meta(bucket, key, metadata.encode(target))
                healed_drives.add(i)
            keep = {v.data_dir for v in target.versions if v.data_dir}
            with contextlib.suppress(FileNotFoundOnDrive):
                extra = [n for n in eset.drives[i].list_data_dirs(bucket, key) if n not in keep]
                if extra:
                    eset.drives[i].remove_data_dirs(bucket, key, extra)
        except DriveError as exc:
            failures.append(f"{eset.drives[i].endpoint}: {exc}")
    offline = [eset.drives[i].endpoint for i in range(eset.n) if not reachable[i]]
    if offline:
        # Those drives may still miss this object: it is not fully redundant until they are checked.
        failures.append(f"not checked on offline drives {', '.join(offline)}")
    if failures:
        return HealResult(bucket, key, "failed", len(healed_drives), written, "; ".join(failures))
    if not kept and healed_drives:
        return HealResult(bucket, key, "purged", len(healed_drives), 0)
    if healed_drives:
        return HealResult(bucket, key, "healed", len(healed_drives), written)
    return HealResult(bucket, key, "ok")


def _same_meta(current: ObjectMeta | BaseException, target: ObjectMeta) -> bool:
    if not isinstance(current, ObjectMeta) or len(current.versions) != len(target.versions):
        return False
    return all(
        metadata.version_signature(a) == metadata.version_signature(b)
        and (a.erasure.index if a.erasure else None) == (b.erasure.index if b.erasure else None)
        for a, b in zip(current.versions, target.versions, strict=False)
    )


def shards_intact(drive: Drive, bucket: str, key: str, v: ObjectVersion, deep: bool = True) -> bool:
    """Every frame (`deep`), or only the last frame of each part (quick: the shard is whole, not
    checked inside), of the drive's shard of `v` is present and matches its hash."""
    e = v.erasure
    assert e is not None
    try:
        if v.data_dir is None:
            if v.size:
                bitrot.unframe(v.inline or b"", e.algorithm)
            return True
        for part, size in enumerate(part_sizes(v), start=1):
            reader = drive.open_shard(bucket, key, v.data_dir, part)
            try:
                blocks = range(-(-size // e.block_size))
                for b in blocks if deep else blocks[-1:]:
                    off = bitrot.block_offset(b, e.k, e.m, e.block_size)
                    length = bitrot.block_frame_len(b, size, e.k, e.m, e.block_size)
                    bitrot.unframe(reader.read_at(off, length), e.algorithm)
            finally:
                reader.close()
        return True
    except (DriveError, OSError):
        return False


def _rebuild_version(
    eset: ErasureSet, bucket: str, key: str, view: ReadView, drives: list[int], targets: list[ObjectMeta | None]
) -> int:
    """Reconstruct the fragments `drives` should hold for one version and commit them; returns bytes written."""
    v = view.version
    e = v.erasure
    assert e is not None
    codec = codec_for(e.k, e.m)
    sources = [i for i in range(eset.n) if i not in drives and view.holders[i] is not None]
    missing = {i: e.distribution[i] for i in drives}
    if v.data_dir is None:
        fragments: dict[int, bytes] = {}
        for i in sources:
            holder = view.holders[i]
            assert holder is not None and holder.erasure is not None
            with contextlib.suppress(FileCorrupt):
                fragments[holder.erasure.index] = bitrot.unframe(holder.inline or b"", e.algorithm)
            if len(fragments) == e.k:
                break
        if v.size and len(fragments) < e.k:
            raise ReadQuorumUnavailable(f"{bucket}/{key}: {len(fragments)} intact inline shards, {e.k} needed")
        rebuilt = codec.reconstruct(fragments, sorted(set(missing.values()))) if v.size else {}
        total = 0
        for i, idx in missing.items():
            inline = b"".join(bitrot.frame(rebuilt[idx], e.algorithm)) if v.size else b""
            total += len(inline)
            _replace_version(targets[i], version_for_drive(v, i, inline))
            meta = targets[i]
            assert meta is not None
            eset.drives[i].write_meta(bucket, key, metadata.encode(meta))
        return total

    temp_id = uuid.uuid4().hex
    readers: dict[int, ShardReader] = {}
    bad: set[int] = set()
    total = 0
    try:
        # One shard file per part (a multipart object has several), each rebuilt block by block.
        for part, size in enumerate(part_sizes(v), start=1):
            writers = {i: eset.drives[i].create_shard_writer(temp_id, part) for i in drives}
            for r in readers.values():
                r.close()
            readers.clear()
            for b in range(-(-size // e.block_size)):
                off = bitrot.block_offset(b, e.k, e.m, e.block_size)
                length = bitrot.block_frame_len(b, size, e.k, e.m, e.block_size)
                fragments = {}
                for i in sources:
                    if i in bad:
                        continue
                    holder = view.holders[i]
                    assert holder is not None and holder.erasure is not None and holder.data_dir is not None
                    try:
                        if i not in readers:
                            readers[i] = eset.drives[i].open_shard(bucket, key, holder.data_dir, part)
                        fragments[holder.erasure.index] = bitrot.unframe(readers[i].read_at(off, length), e.algorithm)
                    except (DriveError, OSError):
                        bad.add(i)
                        continue
                    if len(fragments) == e.k:
                        break
                if len(fragments) < e.k:
                    raise ReadQuorumUnavailable(f"{bucket}/{key}: block {b} of part {part} has {len(fragments)} intact shards")
                rebuilt = codec.reconstruct(fragments, sorted(set(missing.values())))
                for i, w in writers.items():
                    frames = bitrot.frame(rebuilt[missing[i]], e.algorithm)
                    w.write(frames)
                    total += sum(len(f) for f in frames)
            for w in writers.values():
                w.close()
        for i in drives:
            meta = targets[i]
            assert meta is not None
            _replace_version(meta, version_for_drive(v, i, None))
            eset.drives[i].remove_data_dirs(bucket, key, [v.data_dir])
            eset.drives[i].commit(bucket, key, metadata.encode(meta), temp_id, v.data_dir)
        return total
    except BaseException:
        for i in drives:
            eset.drives[i].abort_temp(temp_id)
        raise
    finally:
        for r in readers.values():
            r.close()


def _replace_version(meta: ObjectMeta | None, v: ObjectVersion) -> None:
    assert meta is not None
    for pos, existing in enumerate(meta.versions):
        if existing.version_id == v.version_id:
            meta.versions[pos] = v
            return
    meta.versions.append(v)


# --- buckets ------------------------------------------------------------------------------------


async def heal_bucket(eset: ErasureSet, bucket: str, meta: bytes) -> int:
    """Create the bucket on drives of the set that lack it and bring older copies of its configuration
    (`meta`, the quorum's current one) up to date; returns how many drives were repaired."""
    created = await eset.fanout(lambda d: d.make_volume(bucket, meta))
    holders = [d for d, r in zip(eset.drives, created, strict=True) if isinstance(r, VolumeExists)]
    copies = await eset.fanout(lambda d: d.stat_volume(bucket), holders)
    stale = [d for d, c in zip(holders, copies, strict=True) if isinstance(c, bytes) and _stamp(c) < _stamp(meta)]
    fixed = await eset.fanout(lambda d: d.write_volume_meta(bucket, meta), stale)
    return sum(1 for r in created if r is None) + sum(1 for r in fixed if r is None)


def _stamp(meta: bytes) -> int:
    """The `updated_ns` stamp of a bucket configuration (JSON, owned by cluster.bucket_meta)."""
    try:
        doc = json.loads(meta)
        return int(doc.get("updated_ns", 0))
    except (ValueError, TypeError, AttributeError):
        return -1


# --- queue of objects to heal (most recent failures) -------------------------------------------


def _entry_name(bucket: str, key: str) -> str:
    return xxhash.xxh3_128_hexdigest(f"{bucket}/{key}".encode())


class HealQueue:
    """Objects seen degraded, persisted in the system area of the set's drives until healed."""

    def __init__(self, eset: ErasureSet) -> None:
        self.eset = eset
        self._queued: set[tuple[str, str]] = set()

    def add(self, bucket: str, key: str) -> None:
        """Queue an object (non-blocking: the write happens on the thread pool)."""
        if (bucket, key) in self._queued:
            return
        self._queued.add((bucket, key))
        entry = msgpack.packb([bucket, key])
        name = f"{QUEUE_DIR}/{_entry_name(bucket, key)}"

        def persist() -> None:
            for d in self.eset.drives:
                try:
                    d.sys_write(name, entry)
                    return
                except DriveError:
                    continue

        self.eset.executor.submit(persist)

    def count(self) -> int:
        """How many objects are queued (entry names only: no entry is read). Blocking: drive calls."""
        names: set[str] = set()
        for d in self.eset.drives:
            with contextlib.suppress(DriveError):
                names.update(d.sys_list(QUEUE_DIR))
        return len(names)

    def pending(self) -> list[tuple[str, str]]:
        seen: dict[str, tuple[str, str]] = {}
        for d in self.eset.drives:
            try:
                names = d.sys_list(QUEUE_DIR)
            except DriveError:
                continue
            for name in names:
                if name in seen:
                    continue
                try:
                    bucket, key = msgpack.unpackb(d.sys_read(f"{QUEUE_DIR}/{name}"))
                except (DriveError, ValueError, msgpack.UnpackException):
                    continue
                seen[name] = (bucket, key)
        return list(seen.values())

    def done(self, bucket: str, key: str) -> None:
        self._queued.discard((bucket, key))
        name = f"{QUEUE_DIR}/{_entry_name(bucket, key)}"
        for d in self.eset.drives:
            with contextlib.suppress(DriveError):
                d.sys_delete(name)


# --- walking everything that any drive holds ---------------------------------------------------


def keys_on_any_drive(eset: ErasureSet, bucket: str, prefix: str) -> list[str]:
    """Every key any drive of the set holds under `prefix` (no quorum: healing must see strays)."""
    walks: list[Iterator[WalkEntry]] = []
    for drive in eset.drives:
        it = tolerant_walk(drive, bucket, prefix, "", True)
        try:
            first = next(it)
        except (StopIteration, DriveError):
            continue
        walks.append(itertools.chain([first], it))
    keys: list[str] = []
    for entry in heapq.merge(*walks, key=lambda e: e.key.encode()):
        if not keys or entry.key != keys[-1]:
            keys.append(entry.key)
    return keys


@dataclass
class HealProgress:
    objects_scanned: int = 0
    objects_healed: int = 0
    objects_failed: int = 0
    bytes_written: int = 0
    started: float = field(default_factory=time.time)
    failures: list[str] = field(default_factory=list)


@dataclass
class HealPlan:
    """What a tree heal will visit: per set and bucket, every key any drive holds."""

    work: list[tuple[ErasureSet, str, bytes, list[str]]]

    @property
    def total(self) -> int:
        return sum(len(keys) for _, _, _, keys in self.work)


async def plan_heal(sets: list[ErasureSet], buckets: list[tuple[str, bytes]], prefix: str) -> HealPlan:
    loop = asyncio.get_running_loop()
    work = []
    for bucket, meta in buckets:
        for eset in sets:
            keys = await loop.run_in_executor(eset.executor, keys_on_any_drive, eset, bucket, prefix)
            work.append((eset, bucket, meta, keys))
    return HealPlan(work)


HEAL_CONCURRENCY = 8  # objects healed at once by one tree heal: reads of one overlap writes of another


async def heal_tree(plan: HealPlan, concurrency: int = HEAL_CONCURRENCY, deep: bool = True) -> AsyncIterator[HealResult]:
    """Heal every bucket directory and every object of the plan, `concurrency` objects at a time,
    yielding each object's result as it finishes (each object is healed under its own lock)."""
    pending: set[asyncio.Future[HealResult]] = set()
    try:
        for eset, bucket, meta, keys in plan.work:
            await heal_bucket(eset, bucket, meta)
            for key in keys:
                pending.add(asyncio.ensure_future(heal_object(eset, bucket, key, deep)))
                if len(pending) >= concurrency:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        yield task.result()
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                yield task.result()
    finally:
        for task in pending:  # the consumer stopped early: do not leave heals running unobserved
            task.cancel()


# --- the background healer ----------------------------------------------------------------------


class Healer:
    """Drains the heal queues and fully heals drives formatted blank into a slot.

    Only one worker process of a node heals at a time (a leader flock in the lock directory); the
    others stay idle, ready to take over if it dies. In a cluster every node drains the queues (heal
    locks make that safe), but a node fully heals only the fresh drives it `owns`.
    """

    def __init__(
        self,
        sets: list[ErasureSet],
        queues: list[HealQueue],
        bucket_configs: Callable[[], Awaitable[list[tuple[str, bytes]]]],
        lock_dir: str,
        interval: float = 5.0,
        owns: Callable[[Drive], bool] = lambda drive: True,
        workers: int = HEAL_CONCURRENCY,
    ) -> None:
        self.sets = sets
        self.workers = workers  # objects a tree heal (a blank drive, `cairn admin heal`) works on at once
        self.owns = owns
        self.queues = queues
        self.bucket_configs = bucket_configs
        self.interval = interval
        self._leader_path = os.path.join(lock_dir, "healer.lock")
        self._leader_fd: int | None = None
        self.progress = HealProgress()
        self._retry: dict[tuple[str, str], tuple[float, float]] = {}
        self._members: list[tuple[int, ...]] = [tuple(map(id, e.drives)) for e in sets]

    def _is_leader(self) -> bool:
        if self._leader_fd is None:
            fd = os.open(self._leader_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._leader_fd = fd
        return True

    async def run_once(self) -> int:
        """One pass: heal queued objects and pending drive heals. Returns objects handled."""
        handled = 0
        loop = asyncio.get_running_loop()
        members = [tuple(map(id, e.drives)) for e in self.sets]
        if members != self._members:
            # A drive came back or was replaced: what failed for lack of it may heal now.
            self._members = members
            self._retry.clear()
        for eset, queue in zip(self.sets, self.queues, strict=True):
            now = time.monotonic()
            for bucket, key in await loop.run_in_executor(eset.executor, queue.pending):
                retry = self._retry.get((bucket, key))
                if retry is not None and retry[0] > now:
                    continue
                result = await heal_object(eset, bucket, key)
                handled += 1
                self._count(result)
                if result.status == "failed":
                    # Back off (doubling up to MAX_RETRY_DELAY) so a long-dead drive does not keep the
                    # healer re-reading every queued object every pass.
                    delay = min(MAX_RETRY_DELAY, 2 * retry[1]) if retry else self.interval
                    self._retry[(bucket, key)] = (now + delay, delay)
                else:
                    self._retry.pop((bucket, key), None)
                    queue.done(bucket, key)
            handled += await self._heal_fresh_drives(eset)
        return handled

    def _count(self, result: HealResult) -> None:
        self.progress.objects_scanned += 1
        self.progress.bytes_written += result.bytes_written
        if result.status in ("healed", "purged"):
            self.progress.objects_healed += 1
            log.info("healed %s/%s on %d drives (%d bytes)", result.bucket, result.key, result.drives_healed,
                     result.bytes_written)
        elif result.status == "failed":
            self.progress.objects_failed += 1
            log.warning("could not heal %s/%s: %s", result.bucket, result.key, result.detail)

    async def _heal_fresh_drives(self, eset: ErasureSet) -> int:
        loop = asyncio.get_running_loop()
        fresh = []
        for d in eset.drives:
            if not self.owns(d):
                continue
            try:
                await loop.run_in_executor(eset.executor, d.sys_read, DRIVE_HEAL_MARKER)
                fresh.append(d)
            except DriveError:
                continue
        if not fresh:
            return 0
        buckets = await self.bucket_configs()
        handled = 0
        failed = 0
        # Quick checks: the blank drive needs everything; bitrot elsewhere is the scanner's to find.
        async for result in heal_tree(await plan_heal([eset], buckets, ""), self.workers, deep=False):
            handled += 1
            failed += result.status == "failed"
            self._count(result)
        if not failed:
            for d in fresh:
                with contextlib.suppress(DriveError):
                    await loop.run_in_executor(eset.executor, d.sys_delete, DRIVE_HEAL_MARKER)
                log.info("drive %s is fully healed", d.endpoint)
        return handled

    async def run_forever(self) -> None:
        while True:
            try:
                if self._is_leader():
                    await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("healer pass failed")
            await asyncio.sleep(self.interval)


def mark_for_drive_heal(drive: Drive) -> None:
    """Record on a freshly formatted drive that it must be healed fully (survives restarts)."""
    drive.sys_write(DRIVE_HEAL_MARKER, msgpack.packb({"since": time.time()}))

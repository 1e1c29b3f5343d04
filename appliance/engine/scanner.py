"""Background scanner: finds bitrot and missing copies on objects nobody reads, and reports progress.

Contract: `Scanner.run_once` walks every object of every set (every key any drive holds), reads each
drive's metadata and deep-verifies each drive's shards with `healing.shards_intact` (every frame
against its hash), and queues an object on its set's `HealQueue` when any reachable drive lacks a
copy a peer has, holds a corrupt one, or holds a shard that does not verify. It never repairs: the
`Healer` does. `throttle` seconds are slept between objects (0: as fast as the drives allow), so a
scan costs a bounded share of the drives. The scanner runs only in the worker that leads healing
(the Healer's leader flock), and publishes a status document (its own progress, the healer's, and
the ETA of every drive being healed) in the lock directory, so any worker's admin API can show it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from appliance.engine.drive import DiskInfo
from appliance.engine.erasure_set import ErasureSet
from appliance.engine.errors import FileCorrupt, FileNotFoundOnDrive
from appliance.engine.healing import DRIVE_HEAL_MARKER, Healer, HealQueue, keys_on_any_drive, shards_intact
from appliance.engine.metadata import ObjectMeta

log = logging.getLogger("cairn.scanner")

STATUS_FILE = "heal-status.json"
PUBLISH_EVERY = 1.0  # seconds between status documents: cheap, and fresh enough for a progress bar


@dataclass
class ScanProgress:
    passes: int = 0
    objects_scanned: int = 0
    bytes_scanned: int = 0
    objects_queued: int = 0
    pass_objects: int = 0
    pass_bytes: int = 0
    pass_started: float = field(default_factory=time.time)
    last_pass_seconds: float = 0.0


@dataclass
class ObjectScan:
    """What one object's scan found: bytes of shards verified, and whether it needs healing."""

    bytes_verified: int
    degraded: bool


def scan_object(eset: ErasureSet, bucket: str, key: str) -> ObjectScan:
    """Deep-verify every reachable drive's copy of one object (blocking: run it on the executor)."""
    metas = eset.read_metas_sync(bucket, key)
    present = [m for m in metas if isinstance(m, ObjectMeta)]
    if not present:
        return ObjectScan(0, False)
    signatures = {tuple((v.version_id, v.mod_time_ns) for v in m.versions) for m in present}
    # A drive that answers but lacks the object, holds unreadable metadata, or disagrees on the versions.
    degraded = len(signatures) > 1 or any(isinstance(m, (FileNotFoundOnDrive, FileCorrupt)) for m in metas)
    verified = 0
    for drive, meta in zip(eset.drives, metas, strict=True):
        if not isinstance(meta, ObjectMeta):
            continue
        for v in meta.versions:
            if v.deleted or v.erasure is None:
                continue
            if shards_intact(drive, bucket, key, v):
                verified += -(-v.size // v.erasure.k) if v.erasure.k else 0
            else:
                degraded = True
    return ObjectScan(verified, degraded)


class Scanner:
    """Walks all objects slowly, forever, queueing the degraded ones for the healer (module docstring)."""

    def __init__(
        self,
        sets: list[ErasureSet],
        queues: list[HealQueue],
        healer: Healer,
        list_buckets: Callable[[], Awaitable[list[Any]]],
        lock_dir: str,
        throttle: float = 0.0,
        interval: float = 60.0,
    ) -> None:
        self.sets = sets
        self.queues = queues
        self.healer = healer
        self.list_buckets = list_buckets
        self.throttle = throttle
        self.interval = interval
        self.status_path = os.path.join(lock_dir, STATUS_FILE)
        self.progress = ScanProgress()
        self._published = 0.0
        self._heal_samples: list[tuple[float, int]] = []

    async def run_once(self) -> int:
        """One full pass over every object; returns how many objects it queued for healing."""
        loop = asyncio.get_running_loop()
        p = self.progress
        p.pass_started = time.time()
        p.pass_objects = 0
        p.pass_bytes = 0
        queued = 0
        buckets = [b.name for b in await self.list_buckets()]
        for eset, queue in zip(self.sets, self.queues, strict=True):
            for bucket in buckets:
                keys = await loop.run_in_executor(eset.executor, keys_on_any_drive, eset, bucket, "")
                for key in keys:
                    result = await loop.run_in_executor(eset.executor, scan_object, eset, bucket, key)
                    p.objects_scanned += 1
                    p.pass_objects += 1
                    p.bytes_scanned += result.bytes_verified
                    p.pass_bytes += result.bytes_verified
                    if result.degraded:
                        queue.add(bucket, key)
                        queued += 1
                        p.objects_queued += 1
                        log.debug("scanner queued %s/%s for healing", bucket, key)
                    await self.publish()
                    if self.throttle > 0:
                        await asyncio.sleep(self.throttle)
        p.passes += 1
        p.last_pass_seconds = time.time() - p.pass_started
        if queued:
            log.info("scanner pass %d: %d of %d objects queued for healing", p.passes, queued, p.pass_objects)
        await self.publish(force=True)
        return queued

    async def publish(self, force: bool = False) -> None:
        """Write the status document (atomically) if the last one is older than PUBLISH_EVERY."""
        now = time.time()
        if not force and now - self._published < PUBLISH_EVERY:
            return
        self._published = now
        doc = await self.status()
        tmp = f"{self.status_path}.{os.getpid()}.tmp"
        with contextlib.suppress(OSError):
            with open(tmp, "w") as f:
                json.dump(doc, f)
            os.replace(tmp, self.status_path)

    def _heal_rate(self, now: float) -> float:
        """Bytes per second the healer wrote over the last minute (0 when idle)."""
        self._heal_samples.append((now, self.healer.progress.bytes_written))
        self._heal_samples = [s for s in self._heal_samples if now - s[0] <= 60.0] or self._heal_samples[-1:]
        (t0, b0), (t1, b1) = self._heal_samples[0], self._heal_samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0

    async def status(self) -> dict[str, Any]:
        """The scanner's and the healer's progress, and the drives being healed with their ETA."""
        now = time.time()
        rate = self._heal_rate(now)
        p = self.progress
        elapsed = max(now - p.pass_started, 1e-9)
        healing: list[dict[str, Any]] = []
        for eset in self.sets:
            infos = await eset.disk_info()
            markers = await eset.fanout(lambda d: d.sys_read(DRIVE_HEAL_MARKER))
            used = [i.used for i, m in zip(infos, markers, strict=True)
                    if isinstance(i, DiskInfo) and isinstance(m, BaseException)]
            for drive, info, marker in zip(eset.drives, infos, markers, strict=True):
                if isinstance(marker, BaseException) or not isinstance(info, DiskInfo):
                    continue
                # Peers that are not healing hold about what this drive must end up holding.
                remaining = max((max(used) if used else 0) - info.used, 0)
                healing.append({"endpoint": drive.endpoint, "set": eset.index, "used": info.used,
                                "remaining_bytes": remaining,
                                "eta_seconds": remaining / rate if rate > 0 else None})
        hp = self.healer.progress
        return {
            "pid": os.getpid(),
            "updated": now,
            "healer": {"objects_scanned": hp.objects_scanned, "objects_healed": hp.objects_healed,
                       "objects_failed": hp.objects_failed, "bytes_written": hp.bytes_written,
                       "bytes_per_second": rate},
            "scanner": {**asdict(p), "objects_per_second": p.pass_objects / elapsed,
                        "bytes_per_second": p.pass_bytes / elapsed, "throttle": self.throttle},
            "healing_drives": healing,
        }

    async def run_forever(self) -> None:
        """A pass every `interval` seconds; between passes, keep the status document fresh."""
        next_pass = 0.0
        while True:
            try:
                if self.healer._is_leader():
                    if time.monotonic() >= next_pass:
                        next_pass = time.monotonic() + self.interval
                        await self.run_once()
                    else:
                        await self.publish()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scanner pass failed")
            await asyncio.sleep(PUBLISH_EVERY)


def read_status(lock_dir: str) -> dict[str, Any] | None:
    """The last status document the leading worker published, or None if there is none yet."""
    try:
        with open(os.path.join(lock_dir, STATUS_FILE)) as f:
            doc: dict[str, Any] = json.load(f)
            return doc
    except (OSError, ValueError):
        return None

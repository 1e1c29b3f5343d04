"""Healing rate of a replaced drive against the raw sequential write speed of the same drive image.

Contract: `heal_benchmark(workdir, ...)` builds a 4-drive cluster (parity 2, scanner unthrottled but
at the server's default interval,
`heal_workers` objects healed at once: the server's `--heal-workers`, None for its default),
fills it with objects, measures the raw sequential write speed of drive 0's loop-mounted XFS image
(1 MiB writes, then fdatasync; the median of three runs), replaces drive 0 by a blank filesystem
and times the healer rebuilding it, watching the drive itself, then checks every rebuilt shard.
It returns both rates in MB/s (10^6 bytes) and their ratio: the number docs/benchmarks.md records
(goal: healing at least 50% of raw).
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from appliance.engine.drive import SYS_DIR
from appliance.engine.healing import DRIVE_HEAL_MARKER
from simulator.cluster import BUCKET, Cluster
from simulator.waiting import wait_until
from simulator.workload import body

SCAN_INTERVAL = 300.0  # `cairn server`'s default


@dataclass
class HealBenchmark:
    raw_write_mb_s: float
    heal_mb_s: float
    heal_end_to_end_mb_s: float
    ratio: float
    healed_bytes: int
    heal_seconds: float
    detect_seconds: float
    objects: int
    object_size: int
    heal_workers: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def raw_write_speed(mountpoint: Path, total: int) -> float:
    """Sequential write of `total` bytes in 1 MiB writes plus fdatasync; bytes per second."""
    path = mountpoint / ".sim-bench"
    chunk = os.urandom(2**20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        started = time.perf_counter()
        for _ in range(total // len(chunk)):
            os.write(fd, chunk)
        os.fdatasync(fd)
        elapsed = time.perf_counter() - started
    finally:
        os.close(fd)
        path.unlink()
    return total / elapsed


def heal_benchmark(workdir: Path, objects: int = 192, object_size: int = 8 * 2**20,
                   heal_workers: int | None = None) -> HealBenchmark:
    # The scanner at the server's own pace (a pass every 5 min, started before the objects exist), not
    # the simulator's 2 s: it would deep-verify the same objects alongside the heal it is measuring.
    cluster = Cluster(workdir, drives=4, parity=2, size_mb=2048, heal_workers=heal_workers,
                      scan_interval=SCAN_INTERVAL)
    try:
        cluster.create()
        client = cluster.client(timeout=120)
        keys = [f"bench/{i:04d}" for i in range(objects)]
        for key in keys:
            client.put_object(Bucket=BUCKET, Key=key, Body=body(1, key, object_size))
        drive = cluster.drives[0]
        # The host disk under the images is noisy (writeback of the objects just written): take the median.
        raw = statistics.median(raw_write_speed(drive.mnt, 256 * 2**20) for _ in range(3))
        drive.replace()
        replaced = time.perf_counter()
        marker = drive.mnt / SYS_DIR / DRIVE_HEAL_MARKER
        bucket_dir = drive.mnt / BUCKET
        # Watched on the drive itself, every 20 ms: the monitor formats the blank drive and leaves the
        # heal marker; the healer's first object appears; the marker goes once the drive is whole.
        wait_until(marker.exists, 60, 0.02, "the monitor to format the replaced drive")
        wait_until(lambda: bucket_dir.is_dir() and any(bucket_dir.iterdir()), 60, 0.02, "healing to start")
        started = time.perf_counter()
        wait_until(lambda: not marker.exists(), 600, 0.02, "the replaced drive to heal")
        finished = time.perf_counter()
        problems = cluster.missing_copies(keys, [0])
        if problems:
            raise AssertionError(f"healed drive does not verify: {problems[:3]}")
        healed = sum(p.stat().st_size for p in drive.files("part.1"))
        heal_seconds = finished - started
        return HealBenchmark(
            raw_write_mb_s=raw / 1e6, heal_mb_s=healed / heal_seconds / 1e6,
            heal_end_to_end_mb_s=healed / (finished - replaced) / 1e6,
            ratio=(healed / heal_seconds) / raw, healed_bytes=healed, heal_seconds=heal_seconds,
            detect_seconds=started - replaced, objects=objects, object_size=object_size, heal_workers=heal_workers,
        )
    finally:
        cluster.destroy()

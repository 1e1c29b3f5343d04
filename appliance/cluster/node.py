"""Assemble one node's object layer from its configuration.

Contract: `prepare_drives` runs once per node before any worker starts (it may format drives and
empties their temporary areas); `open_node` runs in every worker process and only reads
identities. Both refuse to run on a codec that fails its self-test.
"""

from __future__ import annotations

import ctypes
import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from appliance.cluster.placement import choose_set_size, expand_drives, split_sets
from appliance.cluster.pools import ObjectLayer
from appliance.config import ServerConfig
from appliance.engine.codec import self_test
from appliance.engine.drive import Drive, LocalDrive
from appliance.engine.erasure_set import ErasureSet, OfflineDrive
from appliance.engine.errors import DriveError
from appliance.engine.healing import Healer, HealQueue, mark_for_drive_heal
from appliance.engine.identity import BootstrapResult, bootstrap_formats
from appliance.engine.locks import NamespaceLocker
from appliance.engine.monitor import DriveMonitor
from appliance.engine.multipart import UploadJanitor
from appliance.engine.quorum import default_parity
from appliance.engine.scanner import Scanner

log = logging.getLogger("cairn.node")


@dataclass
class Node:
    layer: ObjectLayer
    healer: Healer
    monitor: DriveMonitor
    queues: list[HealQueue]
    boot: BootstrapResult
    parity: int
    executor: ThreadPoolExecutor
    scanner: Scanner
    lock_dir: str
    janitor: UploadJanitor


def tune_malloc() -> None:
    """Keep large buffers in the heap instead of fresh mmaps: without the page faults, encoding a
    1 MiB block with (2,2) went from 0.8 to 3.4 GB/s here (docs/benchmarks.md)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    libc.mallopt(m_trim_threshold, 2**31 - 1)
    libc.mallopt(m_top_pad, 256 * 1024 * 1024)


def _drive_sets(config: ServerConfig) -> list[list[LocalDrive]]:
    paths = expand_drives(config.drives)
    size = choose_set_size(len(paths))
    return [[LocalDrive(p) for p in group] for group in split_sets(paths, size)]


def parity_for(config: ServerConfig, set_size: int) -> int:
    parity = default_parity(set_size) if config.parity is None else config.parity
    if set_size > 1 and not 0 <= parity <= set_size // 2:
        raise ValueError(f"parity {parity} is not possible on sets of {set_size} drives (0 to {set_size // 2})")
    return 0 if set_size == 1 else parity


def lock_dir_for(config: ServerConfig, deployment_id: str) -> str:
    return config.lock_dir or os.path.join(tempfile.gettempdir(), f"cairn-locks-{deployment_id}")


def prepare_drives(config: ServerConfig) -> BootstrapResult:
    """Create missing drive folders, check identities, format blank drives, clean temporary areas."""
    sets = _drive_sets(config)
    set_size = len(sets[0])
    parity = parity_for(config, set_size)
    self_test([(set_size - parity, parity)])
    for group in sets:
        for drive in group:
            if not os.path.exists(drive.root) and os.path.isdir(os.path.dirname(drive.root) or "."):
                os.makedirs(drive.root, exist_ok=True)
    boot = bootstrap_formats(sets)  # type: ignore[arg-type]
    for s, group in enumerate(sets):
        for j, drive in enumerate(group):
            if boot.usable[s][j]:
                try:
                    drive.clean_temp()
                except DriveError as exc:
                    log.error("drive %s: cannot clean its temporary area: %s", drive.root, exc)
    for s, j in boot.fresh:
        mark_for_drive_heal(sets[s][j])
    return boot


def open_node(config: ServerConfig) -> Node:
    tune_malloc()
    sets = _drive_sets(config)
    set_size = len(sets[0])
    parity = parity_for(config, set_size)
    self_test([(set_size - parity, parity)])
    boot = bootstrap_formats(sets)  # type: ignore[arg-type]
    executor = ThreadPoolExecutor(max_workers=max(32, 4 * set_size), thread_name_prefix="cairn-io")
    locker = NamespaceLocker(lock_dir_for(config, boot.deployment_id))
    esets: list[ErasureSet] = []
    queues: list[HealQueue] = []
    for s, group in enumerate(sets):
        drives: list[Drive] = [
            d if boot.usable[s][j] else OfflineDrive(d.root, "refused or unreachable at start")  # type: ignore[misc]
            for j, d in enumerate(group)
        ]
        eset = ErasureSet(s, drives, default_parity=parity, executor=executor, locker=locker)
        queue = HealQueue(eset)
        eset.on_degraded = queue.add
        esets.append(eset)
        queues.append(queue)
    layer = ObjectLayer(esets, boot.deployment_id)
    healer = Healer(esets, queues, layer.bucket_configs, lock_dir_for(config, boot.deployment_id),
                    interval=config.heal_interval)
    monitor = DriveMonitor(esets, boot.deployment_id, boot.layout)
    scanner = Scanner(esets, queues, healer, layer.list_buckets, lock_dir_for(config, boot.deployment_id),
                      throttle=config.heal_throttle, interval=config.scan_interval)
    janitor = layer.upload_janitor(config.multipart_expiry, interval=min(3600.0, config.multipart_expiry / 4))
    return Node(layer, healer, monitor, queues, boot, parity, executor, scanner,
                lock_dir_for(config, boot.deployment_id), janitor)

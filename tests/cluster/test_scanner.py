"""The background scanner over real folders: it finds damage no client reads, and only damage.

Each row damages one drive's copy of one object in a way production drives do (flipped bytes in
a shard, a truncated shard, deleted or corrupted metadata) and expects the scanner to queue exactly
that object for healing, verifying the other objects' bytes as it goes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from appliance.engine.drive import LocalDrive
from appliance.engine.erasure_set import ErasureSet
from appliance.engine.healing import Healer, HealQueue
from appliance.engine.locks import NamespaceLocker
from appliance.engine.objects import PutOptions
from appliance.engine.scanner import Scanner, read_status

SIZE = 400_000  # above the inline limit: the object has shard files


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


def damage(root: Path, kind: str) -> None:
    obj = root / "b" / "victim"
    if kind == "meta_delete":
        (obj / "%meta").unlink()
        return
    path = obj / "%meta" if kind == "meta_corrupt" else next(obj.glob("*/part.1"))
    if kind == "truncate":
        os.truncate(path, path.stat().st_size // 2)
        return
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def make_scanner(tmp: Path) -> tuple[ErasureSet, HealQueue, Scanner]:
    drives = []
    for i in range(4):
        d = LocalDrive(str(tmp / f"d{i}"))
        os.makedirs(d.root)
        d.write_format(b"{}")
        d.clean_temp()
        d.make_volume("b", b"{}")
        drives.append(d)
    eset = ErasureSet(0, list(drives), default_parity=2, executor=ThreadPoolExecutor(8),
                      locker=NamespaceLocker(str(tmp / "locks")))
    queue = HealQueue(eset)

    async def buckets() -> list[Any]:
        return [SimpleNamespace(name="b", created_ns=0)]

    healer = Healer([eset], [queue], buckets, str(tmp / "locks"))
    return eset, queue, Scanner([eset], [queue], healer, buckets, str(tmp / "locks"))


@pytest.mark.parametrize("kind", ["none", "bitrot", "truncate", "meta_delete", "meta_corrupt"])
def test_scanner_queues_only_damaged_objects(tmp_path: Path, kind: str) -> None:
    eset, queue, scanner = make_scanner(tmp_path)

    async def scenario() -> int:
        for key in ("victim", "bystander"):
            await eset.put_object("b", key, body(os.urandom(SIZE)), PutOptions())
        if kind != "none":
            damage(tmp_path / "d1", kind)
        return await scanner.run_once()

    queued = asyncio.run(scenario())
    eset.executor.shutdown(wait=True)  # HealQueue persists entries on the executor
    assert queued == (0 if kind == "none" else 1)
    assert queue.pending() == ([] if kind == "none" else [("b", "victim")])
    assert scanner.progress.objects_scanned == 2
    assert scanner.progress.bytes_scanned >= SIZE  # the intact shards were read and verified
    status = read_status(str(tmp_path / "locks"))
    assert status is not None and status["scanner"]["passes"] == 1
    assert status["scanner"]["objects_scanned"] == 2

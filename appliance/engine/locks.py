"""Namespace locks that hold across the worker processes of one node.

Contract: `NamespaceLocker.lock(bucket, key)` is an async context manager giving exclusive access
to one object name among every process that uses the same lock directory. Names are striped over a
fixed number of lock files (two names may share a stripe: that only costs concurrency, never
correctness). Inside a process an `asyncio.Lock` per stripe queues coroutines; across processes a
non-blocking `flock` on the stripe's file is retried with a short back-off, so the event loop never
blocks. A process that dies releases its flocks with its file descriptors: there is no stale lock
to expire on one node. Distributed mode adds a quorum locker with the same interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from typing import Protocol

import xxhash

from appliance.engine.errors import LockTimeout

__all__ = ["Locker", "LockTimeout", "NamespaceLocker"]

STRIPES = 1024


class Locker(Protocol):
    """Exclusive access to one object name: NamespaceLocker (one node) or cluster.dsync.DistributedLocker."""

    def lock(
        self, bucket: str, key: str, timeout: float = 30.0
    ) -> contextlib.AbstractAsyncContextManager[None]: ...


class NamespaceLocker:
    def __init__(self, lock_dir: str, stripes: int = STRIPES) -> None:
        os.makedirs(lock_dir, exist_ok=True)
        self._dir = lock_dir
        self._stripes = stripes
        self._fds: dict[int, int] = {}
        self._local: dict[int, asyncio.Lock] = {}

    def _stripe(self, bucket: str, key: str) -> int:
        return xxhash.xxh64_intdigest(f"{bucket}/{key}".encode()) % self._stripes

    def _fd(self, stripe: int) -> int:
        fd = self._fds.get(stripe)
        if fd is None:
            fd = os.open(os.path.join(self._dir, f"{stripe:04d}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
            self._fds[stripe] = fd
        return fd

    @contextlib.asynccontextmanager
    async def lock(self, bucket: str, key: str, timeout: float = 30.0) -> AsyncIterator[None]:
        stripe = self._stripe(bucket, key)
        local = self._local.setdefault(stripe, asyncio.Lock())
        try:
            await asyncio.wait_for(local.acquire(), timeout)
        except TimeoutError:
            raise LockTimeout(f"{bucket}/{key}") from None
        try:
            fd = self._fd(stripe)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            delay = 0.0005
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if loop.time() > deadline:
                        raise LockTimeout(f"{bucket}/{key}") from None
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.02)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            local.release()

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

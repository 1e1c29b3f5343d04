"""Group commit: make many small metadata commits durable with two `syncfs` calls per batch.

Contract: `GroupCommitter.for_path(path).commit(apply)` returns only once the effects of `apply`
(renames, directory creation, unlinks) and every file written before the call are on stable
storage. It is the fsync discipline of `drive.py` (temp file durable before the rename, the rename
durable before the acknowledgement) applied to a batch: one `syncfs` makes every waiting caller's
temp files durable, their `apply`s run, a second `syncfs` makes all the renames durable, then all
of them return. Callers that arrive while a batch is being flushed form the next batch, so batches
grow with load without any timer. There is one committer per filesystem (st_dev): drive folders
that share a filesystem share its flushes.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

_libc = ctypes.CDLL(None, use_errno=True)


def syncfs(fd: int) -> None:
    if _libc.syncfs(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@dataclass
class _Item:
    apply: Callable[[], None]
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class GroupCommitter:
    _registry: dict[int, GroupCommitter] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        self._pending: list[_Item] = []
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name=f"cairn-commit-{path}", daemon=True)
        self._thread.start()
        self.batches = 0
        self.retired = False
        self.items = 0

    @classmethod
    def for_path(cls, path: str) -> GroupCommitter:
        dev = os.stat(path).st_dev
        with cls._registry_lock:
            committer = cls._registry.get(dev)
            if committer is None:
                committer = cls._registry[dev] = cls(path)
            return committer

    def _retire(self) -> None:
        """Forget this committer after a failed flush: its filesystem is gone or failing, and a new
        disk in the same bay may get the same device number."""
        self.retired = True
        with self._registry_lock:
            for dev, committer in list(self._registry.items()):
                if committer is self:
                    del self._registry[dev]

    def commit(self, apply: Callable[[], None]) -> None:
        item = _Item(apply)
        with self._wake:
            self._pending.append(item)
            self._wake.notify()
        item.done.wait()
        if item.error is not None:
            raise item.error

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
                batch, self._pending = self._pending, []
            self._flush(batch)

    def _flush(self, batch: list[_Item]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            syncfs(self._fd)
            for item in batch:
                try:
                    item.apply()
                except BaseException as exc:
                    item.error = exc
            syncfs(self._fd)
        except OSError as exc:
            for item in batch:
                item.error = item.error or exc
            self._retire()
        finally:
            for item in batch:
                item.done.set()

"""A FUSE passthrough that makes a healthy drive slow or flaky on chosen calls.

Contract: `python -m simulator.fusefs SOURCE MOUNTPOINT CONTROL` mounts SOURCE at MOUNTPOINT and
serves every call from SOURCE, in the foreground, until unmounted. CONTROL is a JSON file, re-read
when it changes: `{"latency": seconds added to each chosen call, "eio": probability (0..1) that a
chosen call fails with EIO, "ops": [names of the calls concerned, e.g. "read", "write", "open"]}`;
an empty document (or no file) means a transparent passthrough. This is how the simulator gives a
drive per-call faults on a machine without device-mapper.
"""

from __future__ import annotations

import errno
import json
import os
import random
import sys
import threading
import time
from typing import Any

from fuse import FUSE, FuseOSError, Operations

RELOAD_EVERY = 0.1


class Control:
    """The fault settings, re-read from the control file at most every RELOAD_EVERY seconds."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.latency = 0.0
        self.eio = 0.0
        self.ops: set[str] = set()
        self._checked = 0.0
        self._mtime = -1.0
        self._lock = threading.Lock()

    def _reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < RELOAD_EVERY:
            return
        self._checked = now
        try:
            mtime = os.stat(self.path).st_mtime
        except FileNotFoundError:
            self.latency, self.eio, self.ops, self._mtime = 0.0, 0.0, set(), -1.0
            return
        if mtime == self._mtime:
            return
        try:
            with open(self.path) as f:
                doc = json.load(f) or {}
        except (OSError, ValueError):
            return
        self._mtime = mtime
        self.latency = float(doc.get("latency", 0.0))
        self.eio = float(doc.get("eio", 0.0))
        self.ops = set(doc.get("ops", []))

    def apply(self, op: str) -> None:
        with self._lock:
            self._reload()
            latency, eio, ops = self.latency, self.eio, self.ops
        if op not in ops:
            return
        if latency:
            time.sleep(latency)
        if eio and random.random() < eio:
            raise FuseOSError(errno.EIO)


class Passthrough(Operations):
    def __init__(self, root: str, control: Control) -> None:
        self.root = os.path.realpath(root)
        self.control = control

    def _path(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def __call__(self, op: str, path: str, *args: Any) -> Any:
        self.control.apply(op)
        try:
            return super().__call__(op, path, *args)
        except OSError as exc:
            if isinstance(exc, FuseOSError):
                raise
            raise FuseOSError(exc.errno or errno.EIO) from None

    def access(self, path: str, mode: int) -> None:
        if not os.access(self._path(path), mode):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(self._path(path), mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(self._path(path), uid, gid)

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        return os.open(self._path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def flush(self, path: str, fh: int) -> None:
        return None

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)

    def fsyncdir(self, path: str, datasync: int, fh: int) -> None:
        return None

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        st = os.lstat(self._path(path))
        return {key: getattr(st, key) for key in ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime",
                                                  "st_nlink", "st_size", "st_uid", "st_blocks")}

    def link(self, target: str, source: str) -> None:
        os.link(self._path(source), self._path(target))

    def mkdir(self, path: str, mode: int) -> None:
        os.mkdir(self._path(path), mode)

    def open(self, path: str, flags: int) -> int:
        return os.open(self._path(path), flags)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._path(path))]

    def readlink(self, path: str) -> str:
        return os.readlink(self._path(path))

    def release(self, path: str, fh: int) -> None:
        os.close(fh)

    def rename(self, old: str, new: str) -> None:
        os.rename(self._path(old), self._path(new))

    def rmdir(self, path: str) -> None:
        os.rmdir(self._path(path))

    def statfs(self, path: str) -> dict[str, Any]:
        st = os.statvfs(self._path(path))
        return {key: getattr(st, key) for key in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                                                  "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

    def symlink(self, target: str, source: str) -> None:
        os.symlink(source, self._path(target))

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._path(path), length)

    def unlink(self, path: str) -> None:
        os.unlink(self._path(path))

    def utimens(self, path: str, times: tuple[float, float] | None = None) -> None:
        os.utime(self._path(path), times)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return os.pwrite(fh, data, offset)


def main(argv: list[str]) -> None:
    source, mountpoint, control = argv
    FUSE(Passthrough(source, Control(control)), mountpoint, foreground=True, nothreads=False)


if __name__ == "__main__":
    main(sys.argv[1:])

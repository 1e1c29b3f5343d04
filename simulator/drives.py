"""One simulated drive slot: a loop-mounted XFS image, optionally seen through a FUSE passthrough.

Contract: `SimDrive.create()` makes a sparse image, formats it XFS, attaches it to a loop device
and mounts it; `path` is the folder the server uses as the drive (the mount, or the FUSE mount over
it). Every fault the simulator injects into a drive is a method here that changes the real
filesystem (shutdown, unmount, remount read-only, fill, replace, flip bytes) and a matching
recovery. `destroy()` unmounts, detaches and deletes only what `create()` made. Processes it starts
(FUSE) are recorded in the `pids` set it is given, and stopped only by their PID.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from simulator.waiting import wait_until

IMAGE_MB = 1024  # sparse, so it costs only what is written; room for a 12 s write load on a fast host


def run(*args: str) -> str:
    """Run a system command; raise with its stderr when it fails."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


def _is_mount(path: Path) -> bool:
    """From the mount table, not stat(): a shut-down XFS answers stat() with EIO."""
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == str(path) for line in f)


class SimDrive:
    def __init__(self, base: Path, index: int, pids: set[int], fuse: bool = False, size_mb: int = IMAGE_MB) -> None:
        self.index = index
        self.base = base / f"drive{index}"
        self.image = self.base / "disk.img"
        self.mnt = self.base / "xfs"
        self.fuse_path = self.base / "fuse"
        self.control = self.base / "fuse-control.json"
        self.fuse = fuse
        self.size_mb = size_mb
        self.pids = pids
        self.loop = ""
        self.fuse_process: subprocess.Popen[bytes] | None = None
        self.filler = self.mnt / ".sim-filler"

    @property
    def path(self) -> Path:
        return self.fuse_path if self.fuse else self.mnt

    # --- lifecycle ------------------------------------------------------------------------------

    def create(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self._new_filesystem()
        if self.fuse:
            self._start_fuse()

    def _new_filesystem(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.image.unlink()
        with open(self.image, "wb") as f:
            f.truncate(self.size_mb * 2**20)
        run("mkfs.xfs", "-q", "-f", str(self.image))
        self.loop = run("losetup", "-f", "--show", str(self.image))
        self.mnt.mkdir(exist_ok=True)
        run("mount", "-t", "xfs", self.loop, str(self.mnt))

    def _start_fuse(self) -> None:
        self.fuse_path.mkdir(exist_ok=True)
        self.control.write_text("{}")
        log = open(self.base / "fuse.log", "ab")  # noqa: SIM115  (the child keeps it open)
        self.fuse_process = subprocess.Popen(
            [sys.executable, "-m", "simulator.fusefs", str(self.mnt), str(self.fuse_path), str(self.control)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        self.pids.add(self.fuse_process.pid)
        wait_until(lambda: _is_mount(self.fuse_path), 15, 0.1, f"FUSE mount of drive {self.index}")

    def _stop_fuse(self) -> None:
        if self.fuse_process is None:
            return
        subprocess.run(["fusermount", "-u", "-z", str(self.fuse_path)], capture_output=True, timeout=30)
        try:
            self.fuse_process.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.fuse_process.pid, signal.SIGKILL)
            self.fuse_process.wait()
        self.pids.discard(self.fuse_process.pid)
        self.fuse_process = None

    def _unmount(self) -> None:
        if _is_mount(self.mnt):
            run("umount", "-l", str(self.mnt))

    def _detach(self) -> None:
        if self.loop:
            with contextlib.suppress(RuntimeError):
                run("losetup", "-d", self.loop)
            self.loop = ""

    def destroy(self) -> None:
        self._stop_fuse()
        for path in (self.mnt, self.base / "xfs.missing"):
            if _is_mount(path):
                with contextlib.suppress(RuntimeError):
                    run("umount", "-l", str(path))
        self._detach()
        shutil.rmtree(self.base, ignore_errors=True)

    # --- faults and recoveries --------------------------------------------------------------------

    def shutdown(self) -> None:
        """Dead drive: XFS forced shutdown, every call now fails with EIO."""
        run("xfs_io", "-x", "-c", "shutdown", str(self.mnt))

    def revive(self) -> None:
        """A dead drive comes back: unmount the shut-down filesystem and mount it again (log replay)."""
        self._unmount()
        run("mount", "-t", "xfs", self.loop, str(self.mnt))

    def remove(self) -> None:
        """Missing drive: unmounted and its folder gone, so the server's path does not exist."""
        self._unmount()
        os.rename(self.mnt, self.base / "xfs.missing")

    def reinsert(self) -> None:
        """A missing drive is put back in its slot."""
        if self.mnt.exists() and not _is_mount(self.mnt):
            # Anything the server wrote while the drive was away landed on the root filesystem.
            shutil.rmtree(self.mnt)
        os.rename(self.base / "xfs.missing", self.mnt)
        run("mount", "-t", "xfs", self.loop, str(self.mnt))

    def replace(self) -> None:
        """Replaced drive: a fresh, empty filesystem in the slot."""
        self._unmount()
        self._detach()
        if (self.base / "xfs.missing").exists():
            os.rename(self.base / "xfs.missing", self.mnt)
        if self.mnt.exists() and not _is_mount(self.mnt):
            shutil.rmtree(self.mnt)
        self._new_filesystem()

    def fill(self) -> None:
        """Full drive: fill the filesystem until writes fail with ENOSPC."""
        free = os.statvfs(self.mnt).f_bavail * os.statvfs(self.mnt).f_frsize
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            size = free
            while size > 2**20:
                try:
                    os.posix_fallocate(fd, 0, size)
                    break
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    size -= 2**20
            chunk = b"\0" * 65536
            os.lseek(fd, 0, os.SEEK_END)
            for _ in range(4096):  # the last few blocks that fallocate left
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno == errno.ENOSPC:
                        break
                    raise
        finally:
            os.close(fd)

    def unfill(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.filler.unlink()

    def read_only(self) -> None:
        run("mount", "-o", "remount,ro", str(self.mnt))

    def read_write(self) -> None:
        run("mount", "-o", "remount,rw", str(self.mnt))

    def set_fuse_faults(self, latency: float = 0.0, eio: float = 0.0, ops: tuple[str, ...] = ()) -> None:
        """Slow or flaky drive (FUSE slots only): latency and/or EIO on the chosen calls."""
        if not self.fuse:
            raise ValueError(f"drive {self.index} is not behind FUSE: declare it in the scenario's `fuse` list")
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(json.dumps({"latency": latency, "eio": eio, "ops": list(ops)}))
        os.replace(tmp, self.control)
        time.sleep(0.3)  # the passthrough re-reads its control file every 0.1 s

    def files(self, name: str) -> list[Path]:
        """Files called `name` in bucket folders of the drive (`part.1` shards, `%meta` metadata)."""
        found = []
        for dirpath, dirnames, filenames in os.walk(self.mnt):
            if dirpath == str(self.mnt):
                dirnames[:] = [d for d in dirnames if d != ".cairn.sys"]
            if name in filenames:
                found.append(Path(dirpath) / name)
        return sorted(found)

    def damage(self, kind: str, count: int, rng: random.Random) -> list[Path]:
        """Bitrot, truncation or metadata damage on `count` files (0: all); returns the files hit."""
        name = "%meta" if kind.startswith("meta") else "part.1"
        targets = self.files(name)
        if count:
            targets = rng.sample(targets, min(count, len(targets)))
        for path in targets:
            if kind == "meta_delete":
                path.unlink()
            elif kind == "truncate":
                os.truncate(path, path.stat().st_size // 2)
            else:  # bitrot / meta_corrupt: flip bytes in place, size unchanged
                with open(path, "r+b") as f:
                    size = os.fstat(f.fileno()).st_size
                    for _ in range(8):
                        offset = rng.randrange(max(size, 1))
                        f.seek(offset)
                        byte = f.read(1) or b"\0"
                        f.seek(offset)
                        f.write(bytes([byte[0] ^ 0xFF]))
                    os.fsync(f.fileno())
        return targets

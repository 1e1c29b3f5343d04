"""Drive faults for the functional tests, done to the files of a running server's drive folders.

Contract: a fault touches only what the on-disk contract promises: the files under
`<drive>/<bucket>/` (that bucket's object metadata and shards), or the drive folder as a whole. It
never parses those files. Faults that destroy data refuse to act on a drive that holds no files for
the bucket, so a test can never pass because its fault hit nothing. `Fault.restore()` undoes what
can be undone (a renamed drive comes back; destroyed files stay destroyed).
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

FAULT_KINDS = ("delete", "truncate", "flip", "rename")


def bucket_files(drive: Path, bucket: str) -> list[Path]:
    """Every regular file under `<drive>/<bucket>/`, in a stable order."""
    root = drive / bucket
    return sorted(path for path in root.rglob("*") if path.is_file())


def _delete(drive: Path, bucket: str) -> None:
    for entry in (drive / bucket).iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _truncate(drive: Path, bucket: str) -> None:
    for path in bucket_files(drive, bucket):
        os.truncate(path, 0)


def flip_positions(size: int) -> list[int]:
    """Offsets to corrupt in a file of `size` bytes: its ends, its middle and every 4 KiB between."""
    if size == 0:
        return []
    return sorted({0, size // 2, size - 1, *range(4096, size, 4096)})


def _flip(drive: Path, bucket: str) -> None:
    for path in bucket_files(drive, bucket):
        with open(path, "r+b") as f:
            for offset in flip_positions(path.stat().st_size):
                f.seek(offset)
                byte = f.read(1)
                f.seek(offset)
                f.write(bytes([byte[0] ^ 0xFF]))


@dataclass
class Fault:
    kind: str
    drive: Path
    bucket: str
    moved_to: Path | None = field(default=None)

    def apply(self) -> Fault:
        if self.kind == "rename":
            self.moved_to = self.drive.with_name(self.drive.name + ".away")
            self.drive.rename(self.moved_to)
            return self
        files = bucket_files(self.drive, self.bucket)
        assert files, f"fault {self.kind}: {self.drive / self.bucket} holds no files to damage"
        {"delete": _delete, "truncate": _truncate, "flip": _flip}[self.kind](self.drive, self.bucket)
        return self

    def restore(self) -> str | None:
        """Undo a rename; return a complaint if the server had recreated the missing drive folder.

        A server must treat a vanished drive folder as an offline drive (it may be an unmounted
        mount point) and never write into its place; anything it wrote there is moved aside.
        """
        if self.moved_to is None:
            return None
        complaint = None
        if self.drive.exists():
            created = sorted(str(p.relative_to(self.drive)) for p in self.drive.rglob("*"))
            complaint = f"server recreated missing drive folder {self.drive}: {created[:10]}"
            self.drive.rename(self.drive.with_name(f"{self.drive.name}.recreated-{uuid.uuid4().hex[:8]}"))
        self.moved_to.rename(self.drive)
        self.moved_to = None
        return complaint


def apply_faults(kind: str, drives: list[Path], bucket: str) -> list[Fault]:
    return [Fault(kind, drive, bucket).apply() for drive in drives]


def restore_all(faults: list[Fault]) -> None:
    """Undo every fault, then fail if the server wrote where a missing drive was."""
    complaints = [c for c in (fault.restore() for fault in faults) if c]
    assert not complaints, "\n".join(complaints)


class SetAside:
    """Move everything under `<drive>/<bucket>/` to a side folder, and later put exactly it back.

    Used to make a drive hold nothing for a bucket without losing its state: whatever the server
    wrote there in the meantime (a heal) is discarded on `put_back()`.
    """

    def __init__(self, drive: Path, bucket: str, side: Path) -> None:
        self.drive = drive
        self.bucket = bucket
        self.side = side

    def take(self) -> None:
        assert bucket_files(self.drive, self.bucket), f"{self.drive / self.bucket} holds no files to set aside"
        self.side.mkdir(parents=True)
        for entry in (self.drive / self.bucket).iterdir():
            entry.rename(self.side / entry.name)

    def put_back(self) -> None:
        _delete(self.drive, self.bucket)
        for entry in self.side.iterdir():
            entry.rename(self.drive / self.bucket / entry.name)
        self.side.rmdir()

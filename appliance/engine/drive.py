"""The Drive interface, and `LocalDrive`: one drive as a folder on a mounted filesystem.

Contract: a drive stores opaque bytes (metadata blobs, framed shard files) under bucket and key
names; it knows nothing of erasure coding or metadata formats, so a remote drive (RPC) or a
fault-injecting wrapper implements the same methods. Every method either succeeds, or raises one
`DriveError` subclass: `FileNotFoundOnDrive` / `VolumeNotFound` only when the drive is healthy and the
thing is absent, `DriveOffline` when the drive itself is gone or failing (EIO, unmounted, its
identity missing), `DriveFull` on ENOSPC, `DriveReadOnly` on EROFS.

Durability: nothing becomes visible before it is durable. New files are written in the drive's
temporary area (`.cairn.sys/tmp`) and flushed (shard files with fdatasync when they close), then
renamed into place, and the rename is made durable before the call returns. Object metadata goes
through a group commit (`groupcommit.py`: one syncfs before and one after a batch of renames);
identity and bucket files use fdatasync + rename + fsync of the directory. A crash leaves either
the old state or the new one, plus leftovers in the temporary area that `clean_temp` removes at start.

Layout of a drive:
    .cairn.sys/format.json            this drive's identity (see `identity.py`)
    .cairn.sys/tmp/                   temporary area
    .cairn.sys/buckets/<bucket>.meta  bucket metadata (creation time, later configuration)
    .cairn.sys/heal/                  queued heal work (see `healing.py`)
    <bucket>/<key path>/%meta         the object's metadata (all versions), see `metadata.py`
    <bucket>/<key path>/%d.<id>/part.N  the framed shard file of part N of one version
    .cairn.sys/multipart/             uploads in progress (see `multipart.py`)
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypeVar

from appliance.engine.errors import (
    DriveError,
    DriveFull,
    DriveOffline,
    DriveReadOnly,
    EngineError,
    FileNotFoundOnDrive,
    UnformattedDrive,
    VolumeExists,
    VolumeNotFound,
)
from appliance.engine.groupcommit import GroupCommitter
from appliance.engine.names import (
    META_NAME,
    SEGMENT_NAME_FILE,
    decode_segment,
    is_data_dir,
    is_long_segment,
    key_to_path,
    long_segments,
)

SYS_DIR = ".cairn.sys"
FORMAT_FILE = "format.json"
PART_NAME = "part.1"


def part_name(part: int) -> str:
    """The shard file of the `part`-th part (1-based) in a data directory."""
    return f"part.{part}"


class WalkEntry(NamedTuple):
    """One listing entry of one drive: an object (`meta` holds its metadata bytes) or, in a
    non-recursive walk, a common prefix (`key` ends with `/`, `meta` is None)."""

    key: str
    meta: bytes | None


@dataclass(frozen=True, slots=True)
class DiskInfo:
    total: int
    free: int
    used: int


class ShardWriter(Protocol):
    def write(self, frames: Sequence[bytes]) -> None: ...
    def close(self) -> None: ...


class ShardReader(Protocol):
    def read_at(self, offset: int, length: int) -> bytes: ...
    def close(self) -> None: ...


class Drive(Protocol):
    """What the engine needs of one drive, local or remote."""

    @property
    def endpoint(self) -> str: ...
    def read_format(self) -> bytes: ...
    def write_format(self, data: bytes) -> None: ...
    def is_blank(self) -> bool: ...
    def clean_temp(self) -> None: ...
    def disk_info(self) -> DiskInfo: ...
    def make_volume(self, bucket: str, meta: bytes) -> None: ...
    def delete_volume(self, bucket: str) -> None: ...
    def stat_volume(self, bucket: str) -> bytes: ...
    def write_volume_meta(self, bucket: str, meta: bytes) -> None: ...
    def list_volumes(self) -> list[tuple[str, bytes]]: ...
    def read_meta(self, bucket: str, key: str) -> bytes: ...
    def write_meta(self, bucket: str, key: str, meta: bytes) -> None: ...
    def delete_meta(self, bucket: str, key: str) -> None: ...
    def create_shard_writer(self, temp_id: str, part: int = 1) -> ShardWriter: ...
    def abort_temp(self, temp_id: str) -> None: ...
    def commit(self, bucket: str, key: str, meta: bytes, temp_id: str | None, data_dir: str | None) -> None: ...
    def open_shard(self, bucket: str, key: str, data_dir: str, part: int = 1) -> ShardReader: ...
    def list_data_dirs(self, bucket: str, key: str) -> list[str]: ...
    def remove_data_dirs(self, bucket: str, key: str, names: Sequence[str]) -> None: ...
    def walk(self, bucket: str, prefix: str, marker: str, recursive: bool) -> Iterator[WalkEntry]: ...
    def sys_write(self, relpath: str, data: bytes) -> None: ...
    def sys_read(self, relpath: str) -> bytes: ...
    def sys_list(self, reldir: str) -> list[str]: ...
    def sys_delete(self, relpath: str) -> None: ...
    def sys_delete_tree(self, reldir: str) -> None: ...
    def sys_remove_empty_dir(self, reldir: str) -> None: ...
    def sys_link(self, src: str, dst: str) -> None: ...
    def sys_move(self, src: str, dst: str) -> None: ...


R = TypeVar("R")

_OFFLINE_ERRNOS = {errno.EIO, errno.ENXIO, errno.ENODEV, errno.ESHUTDOWN, errno.ENOTCONN, errno.EUCLEAN, errno.ESTALE}


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durable(tmp_path: str, final_path: str, data: bytes) -> None:
    """Write `data` to `tmp_path`, flush it, and rename it over `final_path` (the caller fsyncs the dir)."""
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fdatasync(fd)
    finally:
        os.close(fd)
    os.rename(tmp_path, final_path)


def _write_file(path: str, data: bytes) -> None:
    """Write `data` to a new file without flushing it (a group commit flushes it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _no_subdirectories(path: str) -> bool:
    """True when a directory surely has no subdirectory, from its link count alone (2 on ext4 and
    XFS for a leaf directory; filesystems that always report 1, like btrfs, get listed instead)."""
    try:
        return os.stat(path).st_nlink == 2
    except OSError:
        return True


class _LocalShardWriter:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def write(self, frames: Sequence[bytes]) -> None:
        total = sum(len(f) for f in frames)
        written = os.writev(self._fd, frames)
        if written != total:
            # Short writes are rare (signals, nearly full disks); finish them byte-exactly.
            rest = b"".join(frames)[written:]
            while rest:
                rest = rest[os.write(self._fd, rest) :]

    def close(self) -> None:
        """Flush and close; a second call does nothing (the descriptor number may be reused)."""
        fd, self._fd = self._fd, -1
        if fd < 0:
            return
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)


class _LocalShardReader:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDONLY)

    def read_at(self, offset: int, length: int) -> bytes:
        data = os.pread(self._fd, length, offset)
        if len(data) < length:
            more = [data]
            got = len(data)
            while got < length:
                chunk = os.pread(self._fd, length - got, offset + got)
                if not chunk:
                    break
                more.append(chunk)
                got += len(chunk)
            data = b"".join(more)
        return data

    def close(self) -> None:
        os.close(self._fd)


class LocalDrive:
    """A drive that is a folder (normally the mount point of one disk)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._sys = os.path.join(self.root, SYS_DIR)
        self._tmp = os.path.join(self._sys, "tmp")
        self._group: GroupCommitter | None = None

    def __repr__(self) -> str:
        return f"LocalDrive({self.root!r})"

    @property
    def endpoint(self) -> str:
        return self.root

    # --- error translation -------------------------------------------------------------

    def _identity_present(self) -> bool:
        return os.path.isfile(os.path.join(self._sys, FORMAT_FILE))

    def _translate(self, exc: OSError, *, missing: type[DriveError] = FileNotFoundOnDrive, bucket: str = "") -> DriveError:
        if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
            return DriveFull(f"{self.root}: {exc.strerror}")
        if exc.errno == errno.EROFS:
            return DriveReadOnly(f"{self.root}: {exc.strerror}")
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            try:
                if not self._identity_present():
                    return DriveOffline(f"{self.root}: drive identity is missing (unmounted or replaced?)")
                if bucket and not os.path.isdir(os.path.join(self.root, bucket)):
                    return VolumeNotFound(bucket)
            except OSError as inner:
                return DriveOffline(f"{self.root}: {inner.strerror}")
            return missing(f"{self.root}: {exc.filename}")
        return DriveOffline(f"{self.root}: {exc.strerror or exc}")

    def _call(self, fn: Callable[[], R], *, bucket: str = "", missing: type[DriveError] = FileNotFoundOnDrive) -> R:
        try:
            return fn()
        except DriveError:
            raise
        except OSError as exc:
            raise self._translate(exc, missing=missing, bucket=bucket) from exc

    def _object_dir(self, bucket: str, key: str) -> str:
        return os.path.join(self.root, bucket, key_to_path(key))

    # --- identity and housekeeping -------------------------------------------------------

    def read_format(self) -> bytes:
        path = os.path.join(self._sys, FORMAT_FILE)
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError as exc:
            if not os.path.isdir(self.root):
                raise DriveOffline(f"{self.root}: folder does not exist") from exc
            raise UnformattedDrive(self.root) from exc
        except OSError as exc:
            raise self._translate(exc) from exc

    def write_format(self, data: bytes) -> None:
        def run() -> None:
            os.makedirs(self._tmp, exist_ok=True)
            _write_durable(os.path.join(self._tmp, "format.json.tmp"), os.path.join(self._sys, FORMAT_FILE), data)
            _fsync_dir(self._sys)
            _fsync_dir(self.root)

        self._call(run)

    def is_blank(self) -> bool:
        """True when the folder holds nothing but (possibly) an empty system area: safe to format."""
        def run() -> bool:
            entries = [e for e in os.listdir(self.root) if e not in (SYS_DIR, "lost+found")]
            return not entries

        return self._call(run)

    def clean_temp(self) -> None:
        def run() -> None:
            if os.path.isdir(self._tmp):
                for name in os.listdir(self._tmp):
                    path = os.path.join(self._tmp, name)
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(path)
            os.makedirs(self._tmp, exist_ok=True)

        self._call(run)

    def disk_info(self) -> DiskInfo:
        st = self._call(lambda: os.statvfs(self.root))
        total = st.f_blocks * st.f_frsize
        free = st.f_bavail * st.f_frsize
        return DiskInfo(total=total, free=free, used=total - st.f_bfree * st.f_frsize)

    # --- volumes (buckets) ---------------------------------------------------------------

    def _volume_meta_path(self, bucket: str) -> str:
        return os.path.join(self._sys, "buckets", bucket + ".meta")

    def make_volume(self, bucket: str, meta: bytes) -> None:
        def run() -> None:
            path = os.path.join(self.root, bucket)
            if not self._identity_present():
                raise DriveOffline(f"{self.root}: drive identity is missing")
            try:
                os.mkdir(path)
            except FileExistsError:
                raise VolumeExists(bucket) from None
            os.makedirs(os.path.dirname(self._volume_meta_path(bucket)), exist_ok=True)
            _write_durable(os.path.join(self._tmp, uuid.uuid4().hex), self._volume_meta_path(bucket), meta)
            _fsync_dir(os.path.dirname(self._volume_meta_path(bucket)))
            _fsync_dir(self.root)

        self._call(run)

    def delete_volume(self, bucket: str) -> None:
        def run() -> None:
            path = os.path.join(self.root, bucket)
            if not os.path.isdir(path):
                raise VolumeNotFound(bucket)
            # Rename first so the bucket disappears atomically, then remove what it held.
            grave = os.path.join(self._tmp, "deleted-" + uuid.uuid4().hex)
            os.rename(path, grave)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._volume_meta_path(bucket))
            _fsync_dir(self.root)
            shutil.rmtree(grave, ignore_errors=True)

        self._call(run, bucket=bucket, missing=VolumeNotFound)

    def stat_volume(self, bucket: str) -> bytes:
        def run() -> bytes:
            if not os.path.isdir(os.path.join(self.root, bucket)):
                if not self._identity_present():
                    raise DriveOffline(f"{self.root}: drive identity is missing")
                raise VolumeNotFound(bucket)
            try:
                with open(self._volume_meta_path(bucket), "rb") as f:
                    return f.read()
            except FileNotFoundError:
                return b""

        return self._call(run, bucket=bucket, missing=VolumeNotFound)

    def write_volume_meta(self, bucket: str, meta: bytes) -> None:
        """Replace the bucket's metadata file durably; `VolumeNotFound` when the bucket is absent."""
        def run() -> None:
            if not os.path.isdir(os.path.join(self.root, bucket)):
                if not self._identity_present():
                    raise DriveOffline(f"{self.root}: drive identity is missing")
                raise VolumeNotFound(bucket)
            os.makedirs(os.path.dirname(self._volume_meta_path(bucket)), exist_ok=True)
            _write_durable(os.path.join(self._tmp, uuid.uuid4().hex), self._volume_meta_path(bucket), meta)
            _fsync_dir(os.path.dirname(self._volume_meta_path(bucket)))

        self._call(run, bucket=bucket, missing=VolumeNotFound)

    def list_volumes(self) -> list[tuple[str, bytes]]:
        def run() -> list[tuple[str, bytes]]:
            if not self._identity_present():
                raise DriveOffline(f"{self.root}: drive identity is missing")
            out = []
            for entry in os.scandir(self.root):
                if entry.name in (SYS_DIR, "lost+found") or not entry.is_dir(follow_symlinks=False):
                    continue
                try:
                    with open(self._volume_meta_path(entry.name), "rb") as f:
                        meta = f.read()
                except FileNotFoundError:
                    meta = b""
                out.append((entry.name, meta))
            return sorted(out)

        return self._call(run)

    # --- object metadata -------------------------------------------------------------------

    def read_meta(self, bucket: str, key: str) -> bytes:
        def run() -> bytes:
            with open(os.path.join(self._object_dir(bucket, key), META_NAME), "rb") as f:
                return f.read()

        return self._call(run, bucket=bucket)

    def _ensure_dirs(self, bucket: str, key: str) -> str:
        """Create the object's directory chain (made durable by the group commit that follows)."""
        bucket_dir = os.path.join(self.root, bucket)
        if not os.path.isdir(bucket_dir):
            # Reported through _translate, which tells a missing bucket from a missing drive.
            raise FileNotFoundError(errno.ENOENT, "no bucket directory", bucket_dir)
        objdir = self._object_dir(bucket, key)
        os.makedirs(objdir, exist_ok=True)
        for relpath, segment in long_segments(key):
            name_file = os.path.join(bucket_dir, relpath, SEGMENT_NAME_FILE)
            if not os.path.exists(name_file):
                _write_file(name_file, segment.encode())
        return objdir

    def _group_commit(self, tmp_path: str, apply: Callable[[], None]) -> None:
        """Run `apply` under a group commit; the temp file is removed if it fails."""
        try:
            self._committer().commit(apply)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_path)
            raise

    def _committer(self) -> GroupCommitter:
        group = self._group
        if group is None or group.retired:
            group = self._group = GroupCommitter.for_path(self.root)
        return group

    def write_meta(self, bucket: str, key: str, meta: bytes) -> None:
        def run() -> None:
            objdir = self._object_dir(bucket, key)
            tmp = os.path.join(self._tmp, uuid.uuid4().hex)
            _write_file(tmp, meta)

            def apply() -> None:
                self._ensure_dirs(bucket, key)
                os.rename(tmp, os.path.join(objdir, META_NAME))

            self._group_commit(tmp, apply)

        self._call(run, bucket=bucket)

    def delete_meta(self, bucket: str, key: str) -> None:
        def run() -> None:
            objdir = self._object_dir(bucket, key)
            self._committer().commit(lambda: os.unlink(os.path.join(objdir, META_NAME)))
            self._prune(bucket, objdir)

        self._call(run, bucket=bucket)

    def _prune(self, bucket: str, objdir: str) -> None:
        """Remove directories left empty, up to (not including) the bucket directory."""
        bucket_dir = os.path.join(self.root, bucket)
        path = objdir
        while path != bucket_dir and path.startswith(bucket_dir):
            if is_long_segment(os.path.basename(path)):
                with contextlib.suppress(OSError):
                    if os.listdir(path) == [SEGMENT_NAME_FILE]:
                        os.unlink(os.path.join(path, SEGMENT_NAME_FILE))
            try:
                os.rmdir(path)
            except OSError:
                return
            path = os.path.dirname(path)

    # --- shard data ------------------------------------------------------------------------

    def create_shard_writer(self, temp_id: str, part: int = 1) -> ShardWriter:
        """A writer of `part.<part>` in the temp directory `temp_id` (created by the first part's writer)."""
        def run() -> ShardWriter:
            path = os.path.join(self._tmp, temp_id)
            if part == 1:
                os.mkdir(path)  # never makedirs: a vanished drive must not be recreated on its mount point
            return _LocalShardWriter(os.path.join(path, part_name(part)))

        return self._call(run)

    def temp_shard_path(self, temp_id: str, part: int = 1) -> str:
        """The file `create_shard_writer(temp_id, part)` writes (an RPC server appends to it per request)."""
        return os.path.join(self._tmp, temp_id, part_name(part))

    def abort_temp(self, temp_id: str) -> None:
        shutil.rmtree(os.path.join(self._tmp, temp_id), ignore_errors=True)

    def commit(self, bucket: str, key: str, meta: bytes, temp_id: str | None, data_dir: str | None) -> None:
        """Move a written data directory (if any) into the object and replace its metadata, durably."""
        def run() -> None:
            objdir = self._object_dir(bucket, key)
            tmp = os.path.join(self._tmp, uuid.uuid4().hex)
            _write_file(tmp, meta)

            def apply() -> None:
                self._ensure_dirs(bucket, key)
                if temp_id is not None and data_dir is not None:
                    os.rename(os.path.join(self._tmp, temp_id), os.path.join(objdir, data_dir))
                os.rename(tmp, os.path.join(objdir, META_NAME))

            self._group_commit(tmp, apply)

        self._call(run, bucket=bucket)

    def open_shard(self, bucket: str, key: str, data_dir: str, part: int = 1) -> ShardReader:
        path = os.path.join(self._object_dir(bucket, key), data_dir, part_name(part))
        return self._call(lambda: _LocalShardReader(path), bucket=bucket)

    def list_data_dirs(self, bucket: str, key: str) -> list[str]:
        def run() -> list[str]:
            return sorted(n for n in os.listdir(self._object_dir(bucket, key)) if is_data_dir(n))

        return self._call(run, bucket=bucket)

    def remove_data_dirs(self, bucket: str, key: str, names: Sequence[str]) -> None:
        def run() -> None:
            objdir = self._object_dir(bucket, key)
            for name in names:
                shutil.rmtree(os.path.join(objdir, name), ignore_errors=True)
            if not os.path.exists(os.path.join(objdir, META_NAME)):
                self._prune(bucket, objdir)

        self._call(run, bucket=bucket)

    # --- listing ---------------------------------------------------------------------------

    def walk(self, bucket: str, prefix: str, marker: str, recursive: bool) -> Iterator[WalkEntry]:
        """Objects (and, non-recursive, common prefixes) whose key starts with `prefix` and sorts after
        `marker`, in UTF-8 binary order of the key."""
        bucket_dir = os.path.join(self.root, bucket)
        if not os.path.isdir(bucket_dir):
            raise self._translate(OSError(errno.ENOENT, "no bucket", bucket_dir), missing=VolumeNotFound, bucket=bucket)
        base, _, leaf = prefix.rpartition("/")
        base_key = base + "/" if "/" in prefix else ""
        try:
            base_dir = os.path.join(bucket_dir, key_to_path(base)) if base else bucket_dir
        except EngineError:
            return  # no key can have a prefix that cannot be stored
        try:
            yield from self._walk_dir(base_dir, base_key, leaf, marker.encode(), recursive)
        except OSError as exc:
            raise self._translate(exc, bucket=bucket) from exc

    def _walk_dir(self, path: str, dir_key: str, leaf: str, marker: bytes, recursive: bool) -> Iterator[WalkEntry]:
        try:
            names = os.listdir(path)
        except (FileNotFoundError, NotADirectoryError):
            return
        items: list[tuple[bytes, bool, str]] = []
        for name in names:
            segment = self._segment(path, name) if name[0] == "%" else name
            if segment is None or (leaf and not segment.startswith(leaf)):
                continue
            key_b = (dir_key + segment).encode()
            items.append((key_b, False, name))
            items.append((key_b + b"/", True, name))
        items.sort()
        # Jump past everything at or before the marker; keep the directory the marker lies inside.
        start = bisect.bisect_right(items, (marker, True, "\U0010ffff"))
        if start and items[start - 1][1] and marker.startswith(items[start - 1][0]):
            start -= 1
        for i in range(start, len(items)):
            sort_key, is_dir, name = items[i]
            child = f"{path}/{name}"
            if is_dir:
                if _no_subdirectories(child):
                    continue
                if not recursive:
                    if sort_key > marker and self._has_objects(child):
                        yield WalkEntry(sort_key.decode(), None)
                    continue
                yield from self._walk_dir(child, sort_key.decode(), "", marker, recursive)
            else:
                try:
                    with open(f"{child}/{META_NAME}", "rb") as f:
                        meta = f.read()
                except (FileNotFoundError, NotADirectoryError):
                    continue
                yield WalkEntry(sort_key.decode(), meta)

    @staticmethod
    def _segment(parent: str, name: str) -> str | None:
        """The key segment a directory entry stands for (None for the engine's own entries)."""
        if is_long_segment(name):
            try:
                with open(os.path.join(parent, name, SEGMENT_NAME_FILE), "rb") as f:
                    return f.read().decode()
            except (FileNotFoundError, NotADirectoryError):
                return None
        return decode_segment(name)

    def _has_objects(self, path: str) -> bool:
        """Whether any object lives at or below the directory (empty leftovers do not count)."""
        try:
            names = os.listdir(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        for name in names:
            if self._segment(path, name) is None:
                continue
            child = os.path.join(path, name)
            if os.path.exists(os.path.join(child, META_NAME)) or self._has_objects(child):
                return True
        return False

    # --- system area (heal queue, progress records) ------------------------------------------

    def sys_write(self, relpath: str, data: bytes) -> None:
        def run() -> None:
            final = os.path.join(self._sys, relpath)
            if not self._identity_present():
                raise DriveOffline(f"{self.root}: drive identity is missing")
            os.makedirs(os.path.dirname(final), exist_ok=True)
            _write_durable(os.path.join(self._tmp, uuid.uuid4().hex), final, data)
            _fsync_dir(os.path.dirname(final))

        self._call(run)

    def sys_read(self, relpath: str) -> bytes:
        def run() -> bytes:
            with open(os.path.join(self._sys, relpath), "rb") as f:
                return f.read()

        return self._call(run)

    def sys_list(self, reldir: str) -> list[str]:
        def run() -> list[str]:
            try:
                return sorted(os.listdir(os.path.join(self._sys, reldir)))
            except FileNotFoundError:
                return []

        return self._call(run)

    def sys_delete(self, relpath: str) -> None:
        def run() -> None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self._sys, relpath))

        self._call(run)

    def sys_delete_tree(self, reldir: str) -> None:
        """Remove a directory of the system area and all it holds (renamed away first: atomic)."""
        def run() -> None:
            grave = os.path.join(self._tmp, "deleted-" + uuid.uuid4().hex)
            try:
                os.rename(os.path.join(self._sys, reldir), grave)
            except FileNotFoundError:
                return
            shutil.rmtree(grave, ignore_errors=True)

        self._call(run)

    def sys_remove_empty_dir(self, reldir: str) -> None:
        """Remove a directory of the system area if it is empty; a missing or non-empty one is left."""
        def run() -> None:
            try:
                os.rmdir(os.path.join(self._sys, reldir))
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise

        self._call(run)

    def _sys_place(self, src: str, dst: str, place: Callable[[str, str], None]) -> None:
        def run() -> None:
            final = os.path.join(self._sys, dst)
            if not self._identity_present():
                raise DriveOffline(f"{self.root}: drive identity is missing")
            os.makedirs(os.path.dirname(final), exist_ok=True)
            place(os.path.join(self._sys, src), final)
            _fsync_dir(os.path.dirname(final))

        self._call(run)

    def sys_link(self, src: str, dst: str) -> None:
        """Hard-link a file of the system area to a second name in it (parents created), durably."""
        self._sys_place(src, dst, os.link)

    def sys_move(self, src: str, dst: str) -> None:
        """Rename a file of the system area over another name in it (parents created), durably."""
        self._sys_place(src, dst, os.rename)


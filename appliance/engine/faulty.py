"""FaultyDrive: a Drive wrapper that fails or corrupts chosen calls, for tests and the simulator.

Contract: `FaultyDrive(inner, plan)` behaves exactly like `inner` except where `plan` says
otherwise: calls named in `plan.fail` raise `plan.error` (all calls with `fail={"*"}`), after
`plan.after` successful calls; `plan.corrupt_reads` flips a byte in everything read back (metadata
and shard frames), so bitrot detection can be proven without touching files. The plan can be
changed while the drive is in use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from appliance.engine.drive import DiskInfo, Drive, ShardReader, ShardWriter, WalkEntry
from appliance.engine.errors import DriveOffline


@dataclass
class FaultPlan:
    fail: set[str] = field(default_factory=set)
    error: Callable[[str], Exception] = DriveOffline
    after: int = 0
    corrupt_reads: bool = False
    calls: int = 0


def _flip(data: bytes) -> bytes:
    if not data:
        return data
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


class _CorruptingReader:
    def __init__(self, inner: ShardReader) -> None:
        self.inner = inner

    def read_at(self, offset: int, length: int) -> bytes:
        return _flip(self.inner.read_at(offset, length))

    def close(self) -> None:
        self.inner.close()


class FaultyDrive:
    def __init__(self, inner: Drive, plan: FaultPlan | None = None) -> None:
        self.inner = inner
        self.plan = plan or FaultPlan()

    @property
    def endpoint(self) -> str:
        return self.inner.endpoint

    def _gate(self, name: str) -> None:
        plan = self.plan
        if "*" in plan.fail or name in plan.fail:
            if plan.calls >= plan.after:
                raise plan.error(f"{self.inner.endpoint}: injected failure of {name}")
            plan.calls += 1

    def read_format(self) -> bytes:
        self._gate("read_format")
        return self.inner.read_format()

    def write_format(self, data: bytes) -> None:
        self._gate("write_format")
        self.inner.write_format(data)

    def is_blank(self) -> bool:
        self._gate("is_blank")
        return self.inner.is_blank()

    def clean_temp(self) -> None:
        self._gate("clean_temp")
        self.inner.clean_temp()

    def disk_info(self) -> DiskInfo:
        self._gate("disk_info")
        return self.inner.disk_info()

    def make_volume(self, bucket: str, meta: bytes) -> None:
        self._gate("make_volume")
        self.inner.make_volume(bucket, meta)

    def delete_volume(self, bucket: str) -> None:
        self._gate("delete_volume")
        self.inner.delete_volume(bucket)

    def stat_volume(self, bucket: str) -> bytes:
        self._gate("stat_volume")
        return self.inner.stat_volume(bucket)

    def write_volume_meta(self, bucket: str, meta: bytes) -> None:
        self._gate("write_volume_meta")
        self.inner.write_volume_meta(bucket, meta)

    def list_volumes(self) -> list[tuple[str, bytes]]:
        self._gate("list_volumes")
        return self.inner.list_volumes()

    def read_meta(self, bucket: str, key: str) -> bytes:
        self._gate("read_meta")
        data = self.inner.read_meta(bucket, key)
        return _flip(data) if self.plan.corrupt_reads else data

    def write_meta(self, bucket: str, key: str, meta: bytes) -> None:
        self._gate("write_meta")
        self.inner.write_meta(bucket, key, meta)

    def delete_meta(self, bucket: str, key: str) -> None:
        self._gate("delete_meta")
        self.inner.delete_meta(bucket, key)

    def create_shard_writer(self, temp_id: str, part: int = 1) -> ShardWriter:
        self._gate("create_shard_writer")
        return self.inner.create_shard_writer(temp_id, part)

    def abort_temp(self, temp_id: str) -> None:
        self.inner.abort_temp(temp_id)

    def commit(self, bucket: str, key: str, meta: bytes, temp_id: str | None, data_dir: str | None) -> None:
        self._gate("commit")
        self.inner.commit(bucket, key, meta, temp_id, data_dir)

    def open_shard(self, bucket: str, key: str, data_dir: str, part: int = 1) -> ShardReader:
        self._gate("open_shard")
        reader = self.inner.open_shard(bucket, key, data_dir, part)
        return _CorruptingReader(reader) if self.plan.corrupt_reads else reader

    def list_data_dirs(self, bucket: str, key: str) -> list[str]:
        self._gate("list_data_dirs")
        return self.inner.list_data_dirs(bucket, key)

    def remove_data_dirs(self, bucket: str, key: str, names: Sequence[str]) -> None:
        self._gate("remove_data_dirs")
        self.inner.remove_data_dirs(bucket, key, names)

    def walk(self, bucket: str, prefix: str, marker: str, recursive: bool) -> Iterator[WalkEntry]:
        self._gate("walk")
        return self.inner.walk(bucket, prefix, marker, recursive)

    def sys_write(self, relpath: str, data: bytes) -> None:
        self._gate("sys_write")
        self.inner.sys_write(relpath, data)

    def sys_read(self, relpath: str) -> bytes:
        self._gate("sys_read")
        return self.inner.sys_read(relpath)

    def sys_list(self, reldir: str) -> list[str]:
        self._gate("sys_list")
        return self.inner.sys_list(reldir)

    def sys_delete(self, relpath: str) -> None:
        self._gate("sys_delete")
        self.inner.sys_delete(relpath)

    def sys_delete_tree(self, reldir: str) -> None:
        self._gate("sys_delete_tree")
        self.inner.sys_delete_tree(reldir)

    def sys_remove_empty_dir(self, reldir: str) -> None:
        self._gate("sys_remove_empty_dir")
        self.inner.sys_remove_empty_dir(reldir)

    def sys_link(self, src: str, dst: str) -> None:
        self._gate("sys_link")
        self.inner.sys_link(src, dst)

    def sys_move(self, src: str, dst: str) -> None:
        self._gate("sys_move")
        self.inner.sys_move(src, dst)

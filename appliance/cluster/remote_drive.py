"""RemoteDrive: a drive of another node, reached through that node's internode RPC.

Contract: `RemoteDrive(peer, path, endpoint)` implements the engine's `Drive` interface with the
semantics of `LocalDrive` on the peer: the same results and the same `DriveError` subclasses (they
cross the wire by class name, see `rpc.py`), plus `DriveOffline` when the peer is unreachable. It
holds no connection of its own: every drive of one peer shares that peer's `PeerClient`. Calls are
synchronous (the engine runs drive calls on worker threads).

The remote shard writer keeps a byte count and a small buffer: creating it makes the temp file on
the peer, frames are sent in append requests of about `APPEND_BATCH` bytes (each names the offset it
must land at) and `close` sends the rest, then one fdatasync request, so any worker process of the
peer can serve any of them. Nothing is durable before `close` anyway, so batching changes when an
append fails (at a later `write` or at `close`, both of which the engine treats as that drive
failing), never what is stored. A shard reader is an address plus a read-ahead window: the first
`read_at` asks for just its bytes; a read that starts where the previous one ended (a sequential
GET) asks for up to `READ_AHEAD` bytes and serves the following blocks from them, which cuts the
round trips of a large GET by an order of magnitude. A missing shard file is reported by the first
`read_at` rather than by `open_shard` (the engine handles both alike). `walk` fetches
pages of `WALK_PAGE` entries, each starting after the last key received: a walk's keys are strictly
increasing, common prefixes included, so pages neither repeat nor skip an entry.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from appliance.cluster.rpc import PeerClient
from appliance.engine.drive import DiskInfo, ShardReader, ShardWriter, WalkEntry

WALK_PAGE = 1000
APPEND_BATCH = 1024 * 1024  # bytes of frames gathered before one append request
READ_AHEAD = 1024 * 1024  # bytes asked for by a sequential read


class RemoteShardWriter:
    def __init__(self, drive: RemoteDrive, temp_id: str, part: int) -> None:
        self._drive = drive
        self._temp_id = temp_id
        self._part = part
        self._written = 0
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._closed = False

    def write(self, frames: Sequence[bytes]) -> None:
        self._pending.extend(frames)
        self._pending_len += sum(len(f) for f in frames)
        if self._pending_len >= APPEND_BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self._pending_len:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_len = 0
        self._drive._call("shard_append", temp_id=self._temp_id, part=self._part, offset=self._written, body=data)
        self._written += len(data)

    def close(self) -> None:
        """Send what is buffered and flush it on the peer; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        self._flush()
        self._drive._call("shard_sync", temp_id=self._temp_id, part=self._part)


class RemoteShardReader:
    def __init__(self, drive: RemoteDrive, bucket: str, key: str, data_dir: str, part: int) -> None:
        self._drive = drive
        self._address: dict[str, Any] = {"bucket": bucket, "key": key, "data_dir": data_dir, "part": part}
        self._window = b""
        self._window_at = 0
        self._next = -1  # where a sequential read would start

    def read_at(self, offset: int, length: int) -> bytes:
        start = offset - self._window_at
        if start >= 0 and start + length <= len(self._window):
            self._next = offset + length
            return self._window[start : start + length]
        ask = max(length, READ_AHEAD) if offset == self._next else length
        data: bytes = self._drive._call("shard_read", offset=offset, length=ask, raw_response=True, **self._address)
        self._window, self._window_at, self._next = data, offset, offset + length
        return data[:length]

    def close(self) -> None:
        """Nothing is held open on the peer."""


class RemoteDrive:
    """The drive at `path` on the node `peer` talks to; `endpoint` is how the operator named it."""

    def __init__(self, peer: PeerClient, path: str, endpoint: str, *, walk_page: int = WALK_PAGE) -> None:
        self.peer = peer
        self.path = path
        self._endpoint = endpoint
        self._walk_page = walk_page

    def __repr__(self) -> str:
        return f"RemoteDrive({self._endpoint!r})"

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def _call(self, method: str, *, body: bytes | None = None, raw_response: bool = False, **args: Any) -> Any:
        args["drive"] = self.path
        return self.peer.call("drive", method, args, body=body, raw_response=raw_response)

    # --- identity and housekeeping -------------------------------------------------------------

    def read_format(self) -> bytes:
        data: bytes = self._call("read_format")
        return data

    def write_format(self, data: bytes) -> None:
        self._call("write_format", data=data)

    def is_blank(self) -> bool:
        return bool(self._call("is_blank"))

    def clean_temp(self) -> None:
        self._call("clean_temp")

    def disk_info(self) -> DiskInfo:
        info = self._call("disk_info")
        return DiskInfo(total=int(info["total"]), free=int(info["free"]), used=int(info["used"]))

    # --- volumes ---------------------------------------------------------------------------------

    def make_volume(self, bucket: str, meta: bytes) -> None:
        self._call("make_volume", bucket=bucket, meta=meta)

    def delete_volume(self, bucket: str) -> None:
        self._call("delete_volume", bucket=bucket)

    def stat_volume(self, bucket: str) -> bytes:
        data: bytes = self._call("stat_volume", bucket=bucket)
        return data

    def write_volume_meta(self, bucket: str, meta: bytes) -> None:
        self._call("write_volume_meta", bucket=bucket, meta=meta)

    def list_volumes(self) -> list[tuple[str, bytes]]:
        return [(name, meta) for name, meta in self._call("list_volumes")]

    # --- object metadata and shards ----------------------------------------------------------------

    def read_meta(self, bucket: str, key: str) -> bytes:
        data: bytes = self._call("read_meta", bucket=bucket, key=key)
        return data

    def write_meta(self, bucket: str, key: str, meta: bytes) -> None:
        self._call("write_meta", bucket=bucket, key=key, meta=meta)

    def delete_meta(self, bucket: str, key: str) -> None:
        self._call("delete_meta", bucket=bucket, key=key)

    def create_shard_writer(self, temp_id: str, part: int = 1) -> ShardWriter:
        self._call("shard_create", temp_id=temp_id, part=part)
        return RemoteShardWriter(self, temp_id, part)

    def abort_temp(self, temp_id: str) -> None:
        self._call("abort_temp", temp_id=temp_id)

    def commit(self, bucket: str, key: str, meta: bytes, temp_id: str | None, data_dir: str | None) -> None:
        self._call("commit", bucket=bucket, key=key, meta=meta, temp_id=temp_id, data_dir=data_dir)

    def open_shard(self, bucket: str, key: str, data_dir: str, part: int = 1) -> ShardReader:
        return RemoteShardReader(self, bucket, key, data_dir, part)

    def list_data_dirs(self, bucket: str, key: str) -> list[str]:
        return list(self._call("list_data_dirs", bucket=bucket, key=key))

    def remove_data_dirs(self, bucket: str, key: str, names: Sequence[str]) -> None:
        self._call("remove_data_dirs", bucket=bucket, key=key, names=list(names))

    def walk(self, bucket: str, prefix: str, marker: str, recursive: bool) -> Iterator[WalkEntry]:
        while True:
            page = self._call("walk", bucket=bucket, prefix=prefix, marker=marker, recursive=recursive,
                              limit=self._walk_page)
            for key, meta in page["entries"]:
                yield WalkEntry(key, meta)
                marker = key
            if not page["truncated"]:
                return

    # --- system area ---------------------------------------------------------------------------

    def sys_write(self, relpath: str, data: bytes) -> None:
        self._call("sys_write", relpath=relpath, data=data)

    def sys_read(self, relpath: str) -> bytes:
        data: bytes = self._call("sys_read", relpath=relpath)
        return data

    def sys_list(self, reldir: str) -> list[str]:
        return list(self._call("sys_list", reldir=reldir))

    def sys_delete(self, relpath: str) -> None:
        self._call("sys_delete", relpath=relpath)

    def sys_delete_tree(self, reldir: str) -> None:
        self._call("sys_delete_tree", reldir=reldir)

    def sys_remove_empty_dir(self, reldir: str) -> None:
        self._call("sys_remove_empty_dir", reldir=reldir)

    def sys_link(self, src: str, dst: str) -> None:
        self._call("sys_link", src=src, dst=dst)

    def sys_move(self, src: str, dst: str) -> None:
        self._call("sys_move", src=src, dst=dst)

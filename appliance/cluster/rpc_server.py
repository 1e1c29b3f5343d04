"""The internode RPC server: this node's drives, lock server and identity, as one ASGI callable.

Contract: `InternodeServer` answers `POST /cairn/rpc/v1/<service>/<method>` (wire format in `rpc.py`):
`drive/<method>` runs one call of the Drive interface on the local drive named by the argument
`drive` (its path on this node), `lock/<method>` is handed to the node's `LockService`, `node/info`
describes the node for the bootstrap handshake and `node/health` answers peers' probes. A request
with a missing or wrong `x-cairn-rpc-auth` gets 401 before its body is read; an unknown service or
method gets 404; a body over `MAX_BODY` gets 413. Blocking drive calls run on a thread pool, never on
the event loop. No request depends on state a previous request left in this process, so any number
of uvicorn workers can serve a node: a remote shard writer is a temp file that each append request
opens with O_APPEND, writes and closes, and that the close request fdatasyncs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import itertools
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from appliance.cluster.rpc import (
    ARGS_HEADER,
    AUTH_HEADER,
    PREFIX,
    WIRE_ERRORS,
    UnknownMethod,
    check_auth,
    encode_error,
    pack,
    unpack,
    unpack_header_args,
)
from appliance.engine.drive import Drive, LocalDrive
from appliance.engine.errors import (
    DriveError,
    DriveFull,
    DriveOffline,
    DriveReadOnly,
    FileCorrupt,
    FileNotFoundOnDrive,
)

log = logging.getLogger("cairn.rpc")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 64 * 1024 * 1024
MAX_WALK_PAGE = 10_000
RPC_THREADS = 32


class LockService(Protocol):
    """The node's lock server (dsync); raises `rpc.UnknownMethod` for a method it does not serve."""

    async def handle(self, method: str, args: dict[str, Any]) -> dict[str, Any]: ...


class _Raw(bytes):
    """A result sent as the raw response body instead of msgpack."""


# --- stateless shard writing on a LocalDrive ------------------------------------------------------


def _as_local(drive: Drive) -> LocalDrive:
    if not isinstance(drive, LocalDrive):
        raise DriveOffline(f"{drive.endpoint}: cannot take remote shard writes")
    return drive


def _translate(drive: LocalDrive, exc: OSError) -> DriveError:
    """The DriveError a LocalDrive would raise for `exc` (a vanished drive is offline, not empty)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DriveFull(f"{drive.endpoint}: {exc.strerror}")
    if exc.errno == errno.EROFS:
        return DriveReadOnly(f"{drive.endpoint}: {exc.strerror}")
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        try:
            drive.read_format()
        except DriveError:
            return DriveOffline(f"{drive.endpoint}: drive identity is missing (unmounted or replaced?)")
        return FileNotFoundOnDrive(f"{drive.endpoint}: {exc.filename}")
    return DriveOffline(f"{drive.endpoint}: {exc.strerror or exc}")


def shard_create(drive: Drive, temp_id: str, part: int) -> None:
    """Create the empty shard file that `LocalDrive.create_shard_writer(temp_id, part)` would write."""
    local = _as_local(drive)
    path = local.temp_shard_path(temp_id, part)
    try:
        if part == 1:
            os.mkdir(os.path.dirname(path))  # never makedirs: a vanished drive must not be recreated
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
    except OSError as exc:
        raise _translate(local, exc) from exc


def shard_append(drive: Drive, temp_id: str, part: int, offset: int, data: bytes) -> None:
    """Append `data` to a shard file that holds exactly `offset` bytes (a lost or repeated append
    would otherwise shift every later frame; it is reported as FileCorrupt instead)."""
    local = _as_local(drive)
    try:
        fd = os.open(local.temp_shard_path(temp_id, part), os.O_WRONLY | os.O_APPEND)
        try:
            size = os.fstat(fd).st_size
            if size != offset:
                raise FileCorrupt(f"{drive.endpoint}: shard {temp_id} holds {size} bytes, append expected {offset}")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    except OSError as exc:
        raise _translate(local, exc) from exc


def shard_sync(drive: Drive, temp_id: str, part: int) -> None:
    """Flush a shard file written by appends (what `ShardWriter.close` does locally)."""
    local = _as_local(drive)
    try:
        fd = os.open(local.temp_shard_path(temp_id, part), os.O_WRONLY)
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _translate(local, exc) from exc


def shard_read(drive: Drive, bucket: str, key: str, data_dir: str, part: int, offset: int, length: int) -> bytes:
    reader = drive.open_shard(bucket, key, data_dir, part)
    try:
        return reader.read_at(offset, length)
    finally:
        reader.close()


def walk_page(drive: Drive, bucket: str, prefix: str, marker: str, recursive: bool, limit: int) -> dict[str, Any]:
    """Up to `limit` walk entries after `marker`, and whether more follow."""
    limit = max(1, min(limit, MAX_WALK_PAGE))
    entries = [[e.key, e.meta] for e in itertools.islice(drive.walk(bucket, prefix, marker, recursive), limit + 1)]
    return {"entries": entries[:limit], "truncated": len(entries) > limit}


DriveCall = Callable[[Drive, dict[str, Any], bytes], Any]

DRIVE_METHODS: dict[str, DriveCall] = {
    "read_format": lambda d, a, b: d.read_format(),
    "write_format": lambda d, a, b: d.write_format(a["data"]),
    "is_blank": lambda d, a, b: d.is_blank(),
    "clean_temp": lambda d, a, b: d.clean_temp(),
    "disk_info": lambda d, a, b: dataclasses.asdict(d.disk_info()),
    "make_volume": lambda d, a, b: d.make_volume(a["bucket"], a["meta"]),
    "delete_volume": lambda d, a, b: d.delete_volume(a["bucket"]),
    "stat_volume": lambda d, a, b: d.stat_volume(a["bucket"]),
    "write_volume_meta": lambda d, a, b: d.write_volume_meta(a["bucket"], a["meta"]),
    "list_volumes": lambda d, a, b: d.list_volumes(),
    "read_meta": lambda d, a, b: d.read_meta(a["bucket"], a["key"]),
    "write_meta": lambda d, a, b: d.write_meta(a["bucket"], a["key"], a["meta"]),
    "delete_meta": lambda d, a, b: d.delete_meta(a["bucket"], a["key"]),
    "shard_create": lambda d, a, b: shard_create(d, a["temp_id"], a["part"]),
    "shard_append": lambda d, a, b: shard_append(d, a["temp_id"], a["part"], a["offset"], b),
    "shard_sync": lambda d, a, b: shard_sync(d, a["temp_id"], a["part"]),
    "shard_read": lambda d, a, b: _Raw(
        shard_read(d, a["bucket"], a["key"], a["data_dir"], a["part"], a["offset"], a["length"])
    ),
    "abort_temp": lambda d, a, b: d.abort_temp(a["temp_id"]),
    "commit": lambda d, a, b: d.commit(a["bucket"], a["key"], a["meta"], a["temp_id"], a["data_dir"]),
    "list_data_dirs": lambda d, a, b: d.list_data_dirs(a["bucket"], a["key"]),
    "remove_data_dirs": lambda d, a, b: d.remove_data_dirs(a["bucket"], a["key"], a["names"]),
    "walk": lambda d, a, b: walk_page(d, a["bucket"], a["prefix"], a["marker"], a["recursive"], a["limit"]),
    "sys_write": lambda d, a, b: d.sys_write(a["relpath"], a["data"]),
    "sys_read": lambda d, a, b: d.sys_read(a["relpath"]),
    "sys_list": lambda d, a, b: d.sys_list(a["reldir"]),
    "sys_delete": lambda d, a, b: d.sys_delete(a["relpath"]),
    "sys_delete_tree": lambda d, a, b: d.sys_delete_tree(a["reldir"]),
    "sys_remove_empty_dir": lambda d, a, b: d.sys_remove_empty_dir(a["reldir"]),
    "sys_link": lambda d, a, b: d.sys_link(a["src"], a["dst"]),
    "sys_move": lambda d, a, b: d.sys_move(a["src"], a["dst"]),
}

NODE_METHODS = ("info", "health")


class _Reject(Exception):
    """Answer the request with a bare status (401, 404, 413, 400), or not at all (0: client gone)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class InternodeServer:
    """The ASGI callable for every path under `/cairn/rpc/v1/` of one worker process."""

    def __init__(self, key: bytes, drives: Mapping[str, Drive], lock_service: LockService | None,
                 node_info: Callable[[], dict[str, Any]]) -> None:
        self._key = key
        self._drives = drives  # live: the node swaps in a fresh LocalDrive when a drive is replaced
        self._locks = lock_service
        self._node_info = node_info
        self._executor: ThreadPoolExecutor | None = None

    def _pool(self) -> ThreadPoolExecutor:
        # Created on first use, so an app built before uvicorn forks its workers holds no threads.
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=RPC_THREADS, thread_name_prefix="cairn-rpc")
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        service, _, method = path.removeprefix(PREFIX).partition("/") if path.startswith(PREFIX) else ("", "", "")
        try:
            if scope["method"] != "POST":
                raise _Reject(405)
            headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
            if not check_auth(self._key, "POST", path, headers.get(AUTH_HEADER)):
                raise _Reject(401)
            if not self._serves(service, method):
                raise _Reject(404)
            body = await _read_body(headers, receive)
            args = _parse_args(headers, body)
            if ARGS_HEADER not in headers:
                body = b""
            result = await self._dispatch(service, method, args, body)
        except _Reject as reject:
            if reject.status:
                await _respond(send, reject.status, b"")
            return
        except Exception as exc:
            if type(exc).__name__ not in WIRE_ERRORS:
                log.exception("rpc %s/%s failed", service, method)
            await _respond(send, 500, encode_error(exc))
            return
        if isinstance(result, _Raw):
            await _respond(send, 200, bytes(result), "application/octet-stream")
        else:
            await _respond(send, 200, pack(result))

    def _serves(self, service: str, method: str) -> bool:
        if service == "drive":
            return method in DRIVE_METHODS
        if service == "lock":
            return self._locks is not None and bool(method)
        return service == "node" and method in NODE_METHODS

    async def _dispatch(self, service: str, method: str, args: dict[str, Any], body: bytes) -> Any:
        if service == "drive":
            drive = self._drives.get(str(args.get("drive")))
            if drive is None:
                raise DriveOffline(f"this node has no drive {args.get('drive')!r}")
            call = DRIVE_METHODS[method]
            return await asyncio.get_running_loop().run_in_executor(self._pool(), call, drive, args, body)
        if service == "lock":
            assert self._locks is not None
            try:
                return await self._locks.handle(method, args)
            except UnknownMethod:
                raise _Reject(404) from None
        if method == "info":
            return self._node_info()
        return {}


async def _read_body(headers: Mapping[str, str], receive: Receive) -> bytes:
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise _Reject(413)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Reject(0)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _Reject(413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _parse_args(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    try:
        if ARGS_HEADER in headers:
            return unpack_header_args(headers[ARGS_HEADER])
        args = unpack(body) if body else {}
    except Exception:  # msgpack and base64 report malformed input with assorted classes
        raise _Reject(400) from None
    if not isinstance(args, dict):
        raise _Reject(400)
    return args


async def _respond(send: Send, status: int, body: bytes, content_type: str = "application/msgpack") -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})

"""Multipart uploads over one erasure set: create, upload parts, list, complete, abort, expire.

Contract: an upload and its parts live in the system area of the drives of the object's set,
under `multipart/<xxh3-128 of "bucket/key">/<upload id>/`:
    upload.meta          msgpack: bucket, key, initiation time, content type, user and system
                         metadata, erasure layout (k, m, distribution), checksum algorithm and type
    part.<N>.meta        msgpack: number, size, ETag (MD5), time, checksums, name of its data file
    part.<N>.<id>        the part's framed shard file: blocks of the part only (the last one may
                         be short), exactly as a single-part object's `part.1`
Every file is written through the drive's temp area and renamed into place, to a write quorum of
the set; an upload or part exists when at least k drives hold identical copies. A part streams
through the same pipeline as PutObject (`_ShardUpload`), so memory is bounded by a few blocks
whatever its size. Uploading a part number again writes a new data file and then replaces the
part's metadata by rename, so readers see the old part or the new one, never a mix.

Complete links the chosen part files of every drive into a new data directory of the object
(`%d.<uuid>/part.1..part.N`, in the order of the completed list) and commits the version through
the set's commit path (object lock, quorum, rollback): a Complete that misses its quorum leaves
no visible object and the upload intact for a retry. Only then is the upload removed.

`UploadJanitor.run_once` removes uploads initiated longer ago than the expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import xxhash

from appliance.engine import bitrot
from appliance.engine.codec import BLOCK_SIZE
from appliance.engine.drive import Drive
from appliance.engine.erasure_set import ErasureSet, _ShardUpload, shard_distribution
from appliance.engine.errors import (
    DriveError,
    FileNotFoundOnDrive,
    InvalidPart,
    PartTooSmall,
    ReadQuorumUnavailable,
    UploadNotFound,
)
from appliance.engine.metadata import NULL_VERSION, ErasureInfo, ObjectVersion, PartInfo
from appliance.engine.names import DATA_DIR_PREFIX, key_to_path
from appliance.engine.objects import BodyDigest, ObjectInfo, PutOptions
from appliance.engine.quorum import reduce_quorum_errors, write_quorum

log = logging.getLogger("cairn.multipart")

MULTIPART_DIR = "multipart"
UPLOAD_META = "upload.meta"
MIN_PART_SIZE = 5 * 1024 * 1024  # every part but the last must be at least this
MAX_PART_NUMBER = 10000
DEFAULT_EXPIRY_S = 24 * 3600
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_PART_META = re.compile(r"^part\.([0-9]+)\.meta$")


# --- domain errors ------------------------------------------------------------------------------


# --- values -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Upload:
    bucket: str
    key: str
    upload_id: str
    initiated_ns: int
    k: int
    m: int
    distribution: list[int]
    content_type: str = "binary/octet-stream"
    user_meta: dict[str, str] = field(default_factory=dict)
    system_meta: dict[str, str] = field(default_factory=dict)
    checksum_algorithm: str | None = None
    checksum_type: str | None = None
    owner: str = ""

    def encode(self) -> bytes:
        return msgpack.packb({
            "b": self.bucket, "o": self.key, "u": self.upload_id, "t": self.initiated_ns, "k": self.k, "m": self.m,
            "ds": self.distribution, "ct": self.content_type, "um": self.user_meta, "sm": self.system_meta,
            "ca": self.checksum_algorithm, "cy": self.checksum_type, "ow": self.owner,
        }, use_bin_type=True)

    @classmethod
    def decode(cls, data: bytes) -> Upload:
        try:
            d = msgpack.unpackb(data, raw=False)
            return cls(d["b"], d["o"], d["u"], d["t"], d["k"], d["m"], d["ds"], d["ct"], d["um"], d["sm"],
                       d["ca"], d["cy"], d["ow"])
        except Exception as exc:  # anything msgpack or the lookups raise: not what encode wrote
            raise ValueError(f"upload metadata is malformed: {exc}") from exc


@dataclass(slots=True)
class StoredPart:
    """One drive's record of an uploaded part."""

    info: PartInfo
    data: str  # file name of the part's shard in the upload directory

    def encode(self) -> bytes:
        p = self.info
        return msgpack.packb({"n": p.number, "s": p.size, "e": p.etag, "t": p.mod_time_ns, "c": p.checksums,
                              "d": self.data}, use_bin_type=True)

    @classmethod
    def decode(cls, data: bytes) -> StoredPart:
        try:
            d = msgpack.unpackb(data, raw=False)
            return cls(PartInfo(d["n"], d["s"], d["e"], d["t"], d["c"]), d["d"])
        except Exception as exc:  # anything msgpack or the lookups raise: not what encode wrote
            raise ValueError(f"part metadata is malformed: {exc}") from exc

    def signature(self) -> tuple[Any, ...]:
        p = self.info
        return (p.number, p.size, p.etag, p.mod_time_ns, tuple(sorted(p.checksums.items())), self.data)


@dataclass(slots=True)
class QuorumPart:
    """A part at least k drives agree on, and which drives hold it."""

    info: PartInfo
    data: str
    holders: set[int]


def upload_dir(bucket: str, key: str, upload_id: str) -> str:
    return f"{MULTIPART_DIR}/{xxhash.xxh3_128_hexdigest(f'{bucket}/{key}'.encode())}/{upload_id}"


def _remove_upload(d: Drive, base: str) -> None:
    """Remove an upload directory, and its key's directory once no upload of the key is left."""
    d.sys_delete_tree(base)
    d.sys_remove_empty_dir(base.rpartition("/")[0])


def initiated_ns(upload_id: str) -> int:
    """When an upload was created, from its id (see `new_upload_id`)."""
    return int(upload_id[:16], 16)


def new_upload_id() -> str:
    """32 hex characters that sort by initiation time (then at random)."""
    return f"{time.time_ns():016x}{uuid.uuid4().hex[:16]}"


def multipart_etag(etags: Sequence[str]) -> str:
    """S3's ETag of a multipart object: MD5 of the parts' binary MD5s, then "-" and the part count."""
    return f"{hashlib.md5(b''.join(bytes.fromhex(e) for e in etags)).hexdigest()}-{len(etags)}"


def _guard_call(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # one drive's failure is a result, reduced against the quorum later
        return exc


class MultipartSet:
    """The multipart uploads of the objects that live in one erasure set."""

    def __init__(self, eset: ErasureSet) -> None:
        self.eset = eset

    async def _per_drive(self, fn: Callable[[int, Drive], Any]) -> list[Any]:
        """`fn(i, drive)` on every drive of the set in parallel; a drive's exception is its result."""
        return list(await asyncio.gather(
            *(self.eset.run(lambda i=i: _guard_call(lambda: fn(i, self.eset.drives[i])))  # type: ignore[misc]
              for i in range(self.eset.n))
        ))

    # --- uploads ----------------------------------------------------------------------------------

    async def create(
        self, bucket: str, key: str, opts: PutOptions, *, checksum_algorithm: str | None = None,
        checksum_type: str | None = None, owner: str = "",
    ) -> Upload:
        key_to_path(key)
        k, m = self.eset.layout(opts.parity)
        upload_id = new_upload_id()
        upload = Upload(bucket, key, upload_id, initiated_ns(upload_id), k, m, shard_distribution(key, self.eset.n),
                        opts.content_type, dict(opts.user_meta), dict(opts.system_meta), checksum_algorithm,
                        checksum_type, owner)
        base = upload_dir(bucket, key, upload.upload_id)
        blob = upload.encode()
        results = await self._per_drive(lambda i, d: d.sys_write(f"{base}/{UPLOAD_META}", blob))
        try:
            reduce_quorum_errors(results, write_quorum(k, m), for_write=True)
        except BaseException:
            await self._per_drive(lambda i, d: _remove_upload(d, base))
            raise
        return upload

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> Upload:
        """The upload a quorum of drives agrees on; `UploadNotFound` when it does not exist."""
        if not _UPLOAD_ID.match(upload_id):
            raise UploadNotFound(bucket, key, upload_id)
        path = f"{upload_dir(bucket, key, upload_id)}/{UPLOAD_META}"
        results = await self._per_drive(lambda i, d: d.sys_read(path))
        blobs = Counter(r for r in results if isinstance(r, bytes))
        if blobs:
            blob, count = blobs.most_common(1)[0]
            try:
                upload = Upload.decode(blob)
            except ValueError:
                upload = None
            if upload is not None and count >= upload.k and upload.bucket == bucket and upload.key == key:
                return upload
        failed = sum(1 for r in results if isinstance(r, BaseException) and not isinstance(r, FileNotFoundOnDrive))
        if failed and failed + max(blobs.values(), default=0) >= self.eset.n // 2 + 1:
            raise ReadQuorumUnavailable(f"{bucket}/{key}: upload {upload_id}: too few drives answer")
        raise UploadNotFound(bucket, key, upload_id)

    async def abort(self, bucket: str, key: str, upload_id: str) -> None:
        upload = await self.get_upload(bucket, key, upload_id)
        base = upload_dir(bucket, key, upload_id)
        results = await self._per_drive(lambda i, d: _remove_upload(d, base))
        reduce_quorum_errors(results, write_quorum(upload.k, upload.m), for_write=True)

    # --- parts ------------------------------------------------------------------------------------

    async def put_part(
        self, upload: Upload, number: int, body: AsyncIterator[bytes],
        verify: Callable[[BodyDigest], dict[str, str]] | None = None,
    ) -> PartInfo:
        """Stream one part to the set; `verify` checks the body's digest before anything is kept and
        returns the checksums to store with the part. Replaces an earlier part of the same number."""
        wq = write_quorum(upload.k, upload.m)
        shards = _ShardUpload(self.eset, upload.k, upload.m, upload.distribution, wq, inline_allowed=False)
        try:
            buf = bytearray()
            async for chunk in body:
                buf += chunk
                while len(buf) >= BLOCK_SIZE:
                    block = bytes(buf[:BLOCK_SIZE])
                    del buf[:BLOCK_SIZE]
                    await shards.add_block(block)
            await shards.finish(bytes(buf))
            del buf
            digest = BodyDigest(size=shards.size, md5=shards.md5.digest())
            checksums = verify(digest) if verify is not None else {}
            part = PartInfo(number, shards.size, shards.md5.hexdigest(), time.time_ns(), checksums)
            await self._keep_part(upload, StoredPart(part, f"part.{number}.{shards.temp_id}"), shards.temp_id,
                                  shards.failures(), wq)
            return part
        finally:
            await shards.abort()

    async def _keep_part(
        self, upload: Upload, stored: StoredPart, temp_id: str, failed: list[BaseException | None], wq: int
    ) -> None:
        base = upload_dir(upload.bucket, upload.key, upload.upload_id)
        meta_path = f"{base}/part.{stored.info.number}.meta"
        blob = stored.encode()

        def keep(i: int, d: Drive) -> None:
            err = failed[i]
            if err is not None:
                raise err
            d.sys_read(f"{base}/{UPLOAD_META}")  # aborted or completed meanwhile: FileNotFoundOnDrive
            previous = None
            with contextlib.suppress(FileNotFoundOnDrive, ValueError):
                previous = StoredPart.decode(d.sys_read(meta_path)).data
            d.sys_move(f"tmp/{temp_id}/part.1", f"{base}/{stored.data}")
            d.sys_write(meta_path, blob)
            if previous is not None and previous != stored.data:
                d.sys_delete(f"{base}/{previous}")

        results = await self._per_drive(keep)
        try:
            reduce_quorum_errors(results, wq, for_write=True)
        except FileNotFoundOnDrive:
            raise UploadNotFound(upload.bucket, upload.key, upload.upload_id) from None

    async def list_parts(self, upload: Upload) -> list[QuorumPart]:
        """Every part at least k drives agree on, by part number."""
        base = upload_dir(upload.bucket, upload.key, upload.upload_id)

        def read_parts(i: int, d: Drive) -> list[StoredPart]:
            out = []
            for name in d.sys_list(base):
                if _PART_META.match(name):
                    with contextlib.suppress(FileNotFoundOnDrive, ValueError):
                        out.append(StoredPart.decode(d.sys_read(f"{base}/{name}")))
            return out

        results = await self._per_drive(read_parts)
        reduce_quorum_errors(results, upload.k, for_write=False)
        votes: dict[int, dict[tuple[Any, ...], QuorumPart]] = {}
        for i, parts in enumerate(results):
            if isinstance(parts, BaseException):
                continue
            for stored in parts:
                entry = votes.setdefault(stored.info.number, {}).setdefault(
                    stored.signature(), QuorumPart(stored.info, stored.data, set()))
                entry.holders.add(i)
        chosen = []
        for number in sorted(votes):
            best = max(votes[number].values(), key=lambda q: (len(q.holders), q.info.mod_time_ns))
            if len(best.holders) >= upload.k:
                chosen.append(best)
        return chosen

    # --- complete ---------------------------------------------------------------------------------

    async def complete(
        self,
        upload: Upload,
        requested: Sequence[tuple[int, str]],
        opts: PutOptions,
        checksums: Callable[[list[PartInfo]], dict[str, str]] | None = None,
        *,
        versioned: bool = False,
    ) -> ObjectInfo:
        """Commit the parts `requested` ([(number, etag)], ascending) as the object's new version
        (a fresh UUID version id when `versioned`, else the "null" version, replaced).

        `checksums` receives the chosen parts and returns the system metadata (object checksums) to
        add; it raises to refuse them. `opts.precondition` runs under the object lock.
        """
        known = {q.info.number: q for q in await self.list_parts(upload)}
        chosen: list[QuorumPart] = []
        for number, etag in requested:
            q = known.get(number)
            if q is None or q.info.etag != etag.strip('"'):
                raise InvalidPart(f"part {number} was not uploaded with ETag {etag}")
            chosen.append(q)
        for q in chosen[:-1]:
            if q.info.size < MIN_PART_SIZE:
                raise PartTooSmall(f"part {q.info.number} is {q.info.size} bytes")
        infos = [q.info for q in chosen]
        system_meta = dict(upload.system_meta)
        if checksums is not None:
            system_meta.update(checksums(infos))
        etag = multipart_etag([p.etag for p in infos])
        wq = write_quorum(upload.k, upload.m)
        base = upload_dir(upload.bucket, upload.key, upload.upload_id)
        temp_id = uuid.uuid4().hex

        def assemble(i: int, d: Drive) -> None:
            for q in chosen:
                if i not in q.holders:
                    raise FileNotFoundOnDrive(f"{d.endpoint}: part {q.info.number} of {upload.upload_id}")
            for position, q in enumerate(chosen, start=1):
                d.sys_link(f"{base}/{q.data}", f"tmp/{temp_id}/part.{position}")

        failed: list[BaseException | None] = [
            r if isinstance(r, BaseException) else None for r in await self._per_drive(assemble)
        ]
        version = ObjectVersion(
            version_id=str(uuid.uuid4()) if versioned else NULL_VERSION,
            deleted=False,
            mod_time_ns=time.time_ns(),
            size=sum(p.size for p in infos),
            etag=etag,
            content_type=upload.content_type,
            user_meta=dict(upload.user_meta),
            system_meta=system_meta,
            parts=[PartInfo(p.number, p.size, p.etag, p.mod_time_ns, dict(p.checksums)) for p in infos],
            erasure=ErasureInfo(k=upload.k, m=upload.m, block_size=BLOCK_SIZE, index=0,
                                distribution=list(upload.distribution), algorithm=bitrot.DEFAULT_ALGORITHM),
            data_dir=DATA_DIR_PREFIX + uuid.uuid4().hex,
            inline=None,
        )
        try:
            if sum(1 for f in failed if f is None) < wq:
                reduce_quorum_errors(failed, wq, for_write=True)
            await self.eset.commit_version(upload.bucket, upload.key, version, None, temp_id, failed, wq, opts)
        finally:
            # Committed drives renamed the directory away; the others keep links to drop.
            await self._per_drive(lambda i, d: d.abort_temp(temp_id))
        await self._per_drive(lambda i, d: _remove_upload(d, base))
        return ObjectInfo.from_version(upload.bucket, upload.key, version)

    # --- listing and expiry -----------------------------------------------------------------------

    def scan_uploads(self, bucket: str | None = None) -> list[Upload]:
        """Uploads of this set (of `bucket`, or all) that k drives agree on, sorted by key then
        upload id (blocking: run it on a worker thread)."""
        copies: dict[str, Counter[bytes]] = {}
        for d in self.eset.drives:
            try:
                groups = d.sys_list(MULTIPART_DIR)
            except DriveError:
                continue
            for group in groups:
                try:
                    ids = d.sys_list(f"{MULTIPART_DIR}/{group}")
                except DriveError:
                    continue
                for upload_id in ids:
                    try:
                        blob = d.sys_read(f"{MULTIPART_DIR}/{group}/{upload_id}/{UPLOAD_META}")
                    except DriveError:
                        continue
                    copies.setdefault(f"{group}/{upload_id}", Counter())[blob] += 1
        out = []
        for votes in copies.values():
            blob, count = votes.most_common(1)[0]
            try:
                upload = Upload.decode(blob)
            except ValueError:
                continue
            if (bucket is None or upload.bucket == bucket) and count >= upload.k:
                out.append(upload)
        out.sort(key=lambda u: (u.key.encode(), u.upload_id))
        return out

    async def expire(self, older_than_ns: int) -> int:
        """Remove every upload initiated before `older_than_ns` from every drive, whatever state it
        is in (even without its `upload.meta`: the time is in the upload id); returns how many."""

        def expire_drive(i: int, d: Drive) -> set[str]:
            removed = set()
            for group in d.sys_list(MULTIPART_DIR):
                for upload_id in d.sys_list(f"{MULTIPART_DIR}/{group}"):
                    if _UPLOAD_ID.match(upload_id) and initiated_ns(upload_id) < older_than_ns:
                        _remove_upload(d, f"{MULTIPART_DIR}/{group}/{upload_id}")
                        removed.add(upload_id)
            return removed

        results = await self._per_drive(expire_drive)
        return len(set().union(*(r for r in results if isinstance(r, set))))


class UploadJanitor:
    """Removes abandoned multipart uploads (initiated more than `expiry_s` ago) from every set."""

    def __init__(self, sets: Sequence[ErasureSet], expiry_s: float = DEFAULT_EXPIRY_S, interval: float = 3600.0) -> None:
        self.sets = [MultipartSet(s) for s in sets]
        self.expiry_s = expiry_s
        self.interval = interval

    async def run_once(self) -> int:
        cutoff = time.time_ns() - int(self.expiry_s * 1e9)
        removed = 0
        for mp in self.sets:
            removed += await mp.expire(cutoff)
        if removed:
            log.info("removed %d abandoned multipart uploads", removed)
        return removed

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("multipart expiry pass failed")
            await asyncio.sleep(self.interval)


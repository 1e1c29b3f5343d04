"""The per-object metadata file (`%meta`), on-disk format version 1.

Contract: pure computation, no I/O. One file per object per drive holds every version of the
object, newest first (`ObjectMeta`). `encode` and `decode` convert it to and from bytes; `decode`
raises `FileCorrupt` for anything it cannot trust (wrong magic, an unsupported format version,
a checksum mismatch, truncation, a payload that is not the documented structure). Every drive
holds the same versions except for two drive-specific fields (`ErasureInfo.index` and
`ObjectVersion.inline`); `same_version` and `version_signature` compare versions across drives
ignoring them, which is how a read finds the copy a quorum of drives agrees on.

File layout (all integers big-endian):
    b"CAIRNMETA"        9 bytes of magic
    format version      u16 (1); a reader refuses versions it does not know, so every later
                        format must keep these first 11 bytes
    payload             one msgpack map (str/bin types distinguished: use_bin_type)
    checksum            8 bytes: xxh64 (seed 0) of every byte before it

Payload: {"v": [version, ...]}, newest version first. Each version is a map whose keys are all
present:
    "id" version_id      str: "null" for unversioned writes, else a UUID string
    "dm" deleted         bool: a delete marker (its data fields are zero/empty)
    "mt" mod_time_ns     int: nanoseconds since the epoch
    "sz" size            int: bytes of the object
    "et" etag            str: unquoted
    "ct" content_type    str
    "um" user_meta       map str -> str: x-amz-meta-* with lower-case names
    "sm" system_meta     map str -> str: Content-Encoding, Cache-Control, storage class, ...
    "pt" parts           array of maps: "n" number, "s" size, "e" etag, "t" mod_time_ns,
                         "c" checksums (map str -> str)
    "ec" erasure         nil or map: "k" data, "m" parity, "bs" block size, "ix" this drive's
                         fragment index, "ds" distribution (array: drive position -> fragment
                         index), "al" bitrot algorithm
    "dd" data_dir        nil or str: the directory holding the part files
    "in" inline          nil or bin: this drive's framed shard when the object is stored inline
Readers ignore keys they do not know, so a later writer may add keys without a new format version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import msgpack
import xxhash

from appliance.engine.errors import FileCorrupt

MAGIC: Final = b"CAIRNMETA"
FORMAT_VERSION: Final = 1
INLINE_LIMIT: Final = 128 * 1024  # an object whose framed shard is at most this is stored inline
NULL_VERSION: Final = "null"
CHECKSUM_SIZE: Final = 8
_HEADER: Final = MAGIC + FORMAT_VERSION.to_bytes(2, "big")
_HEADER_SIZE: Final = len(_HEADER)


@dataclass(slots=True)
class ErasureInfo:
    k: int
    m: int
    block_size: int
    index: int  # this drive's fragment index, 0-based
    distribution: list[int]  # drive position -> fragment index
    algorithm: str  # bitrot algorithm of the shard frames


@dataclass(slots=True)
class PartInfo:
    number: int
    size: int
    etag: str
    mod_time_ns: int = 0
    checksums: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ObjectVersion:
    version_id: str  # "null" for unversioned writes, else a UUID string
    deleted: bool  # a delete marker: then no data field matters
    mod_time_ns: int
    size: int = 0
    etag: str = ""  # unquoted
    content_type: str = ""
    user_meta: dict[str, str] = field(default_factory=dict)  # x-amz-meta-*, lower-case names
    system_meta: dict[str, str] = field(default_factory=dict)  # Content-Encoding, storage class, tagging, ...
    parts: list[PartInfo] = field(default_factory=list)
    erasure: ErasureInfo | None = None
    data_dir: str | None = None  # None when inline or a delete marker
    inline: bytes | None = None  # this drive's framed shard when stored inline


@dataclass(slots=True)
class ObjectMeta:
    versions: list[ObjectVersion] = field(default_factory=list)  # newest first

    def latest(self) -> ObjectVersion | None:
        return self.versions[0] if self.versions else None

    def find(self, version_id: str) -> ObjectVersion | None:
        for v in self.versions:
            if v.version_id == version_id:
                return v
        return None

    def add_version(self, v: ObjectVersion) -> list[ObjectVersion]:
        """Insert `v` and return the versions it replaced (the caller removes their data dirs, unless
        `v` reuses one).

        A version replaces any version with the same id: for "null" that is S3's rule (an
        unversioned write overwrites the null version, object or delete marker); for a UUID it makes
        a retried or healed write idempotent. Versions stay ordered newest first by mod_time_ns, so
        every drive orders the same versions the same way; on a tie the added version goes first.
        """
        replaced = [x for x in self.versions if x.version_id == v.version_id]
        if replaced:
            self.versions = [x for x in self.versions if x.version_id != v.version_id]
        pos = next(
            (i for i, x in enumerate(self.versions) if x.mod_time_ns <= v.mod_time_ns), len(self.versions)
        )
        self.versions.insert(pos, v)
        return replaced

    def remove_version(self, version_id: str) -> ObjectVersion | None:
        """Remove and return the version with that id, or None when there is none."""
        for i, v in enumerate(self.versions):
            if v.version_id == version_id:
                return self.versions.pop(i)
        return None


# --- encoding ---------------------------------------------------------------------------------------


def _part_map(p: PartInfo) -> dict[str, Any]:
    return {"n": p.number, "s": p.size, "e": p.etag, "t": p.mod_time_ns, "c": p.checksums}


def _version_map(v: ObjectVersion) -> dict[str, Any]:
    e = v.erasure
    return {
        "id": v.version_id,
        "dm": v.deleted,
        "mt": v.mod_time_ns,
        "sz": v.size,
        "et": v.etag,
        "ct": v.content_type,
        "um": v.user_meta,
        "sm": v.system_meta,
        "pt": [_part_map(p) for p in v.parts],
        "ec": None
        if e is None
        else {"k": e.k, "m": e.m, "bs": e.block_size, "ix": e.index, "ds": e.distribution, "al": e.algorithm},
        "dd": v.data_dir,
        "in": v.inline,
    }


def encode(meta: ObjectMeta) -> bytes:
    """The bytes of a metadata file holding `meta`."""
    body = _HEADER + msgpack.packb({"v": [_version_map(v) for v in meta.versions]}, use_bin_type=True)
    return body + xxhash.xxh64_digest(body)


# --- decoding ---------------------------------------------------------------------------------------


def _payload(data: bytes | memoryview) -> memoryview:
    """The msgpack payload of a metadata file, after checking magic, format version and checksum."""
    view = memoryview(data)
    if len(view) < _HEADER_SIZE + CHECKSUM_SIZE:
        raise FileCorrupt(f"metadata file of {len(view)} bytes is truncated")
    if view[: len(MAGIC)] != MAGIC:
        raise FileCorrupt("metadata file has no CAIRNMETA magic")
    version = int.from_bytes(view[len(MAGIC) : _HEADER_SIZE], "big")
    if version != FORMAT_VERSION:
        raise FileCorrupt(
            f"metadata format version {version} is not supported (this build reads {FORMAT_VERSION})"
        )
    if xxhash.xxh64_digest(view[:-CHECKSUM_SIZE]) != view[-CHECKSUM_SIZE:]:
        raise FileCorrupt("metadata checksum mismatch")
    return view[_HEADER_SIZE:-CHECKSUM_SIZE]


def _version(d: dict[str, Any], *, with_inline: bool = True) -> ObjectVersion:
    e = d["ec"]
    return ObjectVersion(
        version_id=d["id"],
        deleted=d["dm"],
        mod_time_ns=d["mt"],
        size=d["sz"],
        etag=d["et"],
        content_type=d["ct"],
        user_meta=d["um"],
        system_meta=d["sm"],
        parts=[PartInfo(p["n"], p["s"], p["e"], p["t"], p["c"]) for p in d["pt"]],
        erasure=None if e is None else ErasureInfo(e["k"], e["m"], e["bs"], e["ix"], e["ds"], e["al"]),
        data_dir=d["dd"],
        inline=d["in"] if with_inline else None,
    )


def _versions(data: bytes | memoryview) -> list[dict[str, Any]]:
    payload = _payload(data)
    try:
        doc = msgpack.unpackb(payload, raw=False)
        versions = doc["v"]
        if not isinstance(versions, list):
            raise TypeError("versions is not an array")
        return versions
    # Anything msgpack or the lookups raise means the payload is not what encode wrote.
    except Exception as exc:
        raise FileCorrupt(f"metadata payload is malformed: {type(exc).__name__}: {exc}") from exc


def decode(data: bytes | memoryview) -> ObjectMeta:
    """The `ObjectMeta` in a metadata file; `FileCorrupt` when it cannot be trusted."""
    versions = _versions(data)
    try:
        return ObjectMeta(versions=[_version(d) for d in versions])
    except Exception as exc:
        raise FileCorrupt(f"metadata version is malformed: {type(exc).__name__}: {exc}") from exc


def decode_latest(data: bytes | memoryview) -> ObjectVersion | None:
    """The newest version without its inline bytes (for listings); the whole file is still verified."""
    versions = _versions(data)
    if not versions:
        return None
    try:
        return _version(versions[0], with_inline=False)
    except Exception as exc:
        raise FileCorrupt(f"metadata version is malformed: {type(exc).__name__}: {exc}") from exc


# --- comparing versions across drives ---------------------------------------------------------------


def _shared_fields(v: ObjectVersion) -> tuple[Any, ...]:
    """Every field of a version that all drives hold alike (all but erasure.index and inline)."""
    e = v.erasure
    return (
        v.version_id,
        v.deleted,
        v.mod_time_ns,
        v.size,
        v.etag,
        v.content_type,
        sorted(v.user_meta.items()),
        sorted(v.system_meta.items()),
        [(p.number, p.size, p.etag, p.mod_time_ns, sorted(p.checksums.items())) for p in v.parts],
        None if e is None else (e.k, e.m, e.block_size, list(e.distribution), e.algorithm),
        v.data_dir,
    )


def same_version(a: ObjectVersion, b: ObjectVersion) -> bool:
    """True when two drives' copies describe the same version (drive-specific fields ignored)."""
    return _shared_fields(a) == _shared_fields(b)


def version_signature(v: ObjectVersion) -> bytes:
    """A 16-byte hash of the drive-independent fields: equal for copies that `same_version` deems equal."""
    return xxhash.xxh3_128_digest(msgpack.packb(_shared_fields(v), use_bin_type=True))

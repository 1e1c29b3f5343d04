"""Values the engine hands to its callers: what an object is, what a write asks for.

Contract: plain data, no I/O. `ObjectInfo` is the quorum-agreed view of one object version,
independent of which drive it was read from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from appliance.engine.metadata import ObjectVersion


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    bucket: str
    key: str
    version_id: str
    size: int
    etag: str
    mod_time_ns: int
    content_type: str = ""
    user_meta: dict[str, str] = field(default_factory=dict)
    system_meta: dict[str, str] = field(default_factory=dict)
    delete_marker: bool = False
    parts_count: int = 1
    is_latest: bool = True

    @property
    def last_modified(self) -> datetime:
        return datetime.fromtimestamp(self.mod_time_ns / 1e9, tz=UTC)

    @classmethod
    def from_version(cls, bucket: str, key: str, v: ObjectVersion, *, is_latest: bool = True) -> ObjectInfo:
        return cls(
            bucket=bucket,
            key=key,
            version_id=v.version_id,
            size=v.size,
            etag=v.etag,
            mod_time_ns=v.mod_time_ns,
            content_type=v.content_type,
            user_meta=dict(v.user_meta),
            system_meta=dict(v.system_meta),
            delete_marker=v.deleted,
            parts_count=max(1, len(v.parts)),
            is_latest=is_latest,
        )


@dataclass(frozen=True, slots=True)
class BodyDigest:
    """What the engine measured of an uploaded body, for the caller to check before commit."""

    size: int
    md5: bytes


@dataclass(slots=True)
class PutOptions:
    content_type: str = "binary/octet-stream"
    user_meta: dict[str, str] = field(default_factory=dict)
    system_meta: dict[str, str] = field(default_factory=dict)
    parity: int | None = None
    # Called with the body's digest once it is fully read and before anything is committed; it
    # raises to refuse the body (Content-MD5, checksum or payload-hash mismatch).
    verify: Callable[[BodyDigest], None] | None = None
    # Called under the object lock with the current object (or None); it raises to refuse the write
    # (conditional PUT: If-Match / If-None-Match).
    precondition: Callable[[ObjectInfo | None], None] | None = None


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One row of a listing: an object, or a common prefix (`info` is None)."""

    key: str
    info: ObjectInfo | None

"""Object keys <-> paths inside a drive.

Contract: every S3 key (any UTF-8, `//`, trailing `/`, `.` and `..` segments) maps to exactly one
relative directory path and back, and that path never collides with the engine's own entries.

A key is split on `/`; each segment becomes one directory name. A segment is kept as it is when
it is non-empty, is not `.` or `..`, holds no `%` and is at most 255 bytes; otherwise it is stored as
`%` followed by the lower-case hex of its UTF-8 bytes. Entries the engine itself keeps in an object's
directory start with `%` followed by at least one character that is not a hex digit (`%meta`,
`%d.<uuid>`), so they can never be mistaken for an escaped segment.
"""

from __future__ import annotations

from appliance.engine.errors import InvalidObjectName, KeyTooLong

META_NAME = "%meta"
DATA_DIR_PREFIX = "%d."
MAX_KEY_BYTES = 1024
_NAME_MAX = 255
_HEX = frozenset("0123456789abcdef")


def encode_segment(segment: str) -> str:
    raw = segment.encode()
    if segment and segment not in (".", "..") and "%" not in segment and len(raw) <= _NAME_MAX:
        return segment
    escaped = "%" + raw.hex()
    if len(escaped) > _NAME_MAX:
        raise InvalidObjectName(f"a path segment of {len(raw)} bytes cannot be stored")
    return escaped


def decode_segment(name: str) -> str | None:
    """The key segment a directory entry stands for, or None for the engine's own entries."""
    if not name.startswith("%"):
        return name
    rest = name[1:]
    if len(rest) % 2 == 0 and all(c in _HEX for c in rest):
        return bytes.fromhex(rest).decode()
    return None


def key_to_path(key: str) -> str:
    """The relative directory path (with `/`) of the object `key`."""
    if not key:
        raise InvalidObjectName("the object key is empty")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise KeyTooLong(f"key of {len(key.encode())} bytes exceeds {MAX_KEY_BYTES}")
    return "/".join(encode_segment(s) for s in key.split("/"))


def is_data_dir(name: str) -> bool:
    return name.startswith(DATA_DIR_PREFIX)

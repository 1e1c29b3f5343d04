"""Object keys <-> paths inside a drive.

Contract: every S3 key (any UTF-8, `//`, trailing `/`, `.` and `..` segments) maps to exactly one
relative directory path and back, and that path never collides with the engine's own entries.

A key is split on `/`; each segment becomes one directory name. A segment is kept as it is when
it is non-empty, is not `.` or `..`, holds no `%` or NUL and is at most 255 bytes; otherwise it is stored as
`%` followed by the lower-case hex of its UTF-8 bytes. A segment too long for either form (a file
name holds at most 255 bytes, S3 keys up to 1024) becomes `%l.<xxh3-128 of the segment>`, and the
directory keeps the full segment in a `%name` file so listings can still sort it. Entries the engine
itself keeps start with `%` followed by at least one character that is not a hex digit (`%meta`,
`%name`, `%d.<uuid>`, `%l.<hash>`), so they can never be mistaken for an escaped segment.
"""

from __future__ import annotations

import xxhash

from appliance.engine.errors import InvalidObjectName, KeyTooLong

META_NAME = "%meta"
SEGMENT_NAME_FILE = "%name"
LONG_PREFIX = "%l."
DATA_DIR_PREFIX = "%d."
MAX_KEY_BYTES = 1024
_NAME_MAX = 255
_HEX = frozenset("0123456789abcdef")


def encode_segment(segment: str) -> str:
    raw = segment.encode()
    if segment and segment not in (".", "..") and "%" not in segment and "\x00" not in segment and len(raw) <= _NAME_MAX:
        return segment
    escaped = "%" + raw.hex()
    if len(escaped) > _NAME_MAX:
        return LONG_PREFIX + xxhash.xxh3_128_hexdigest(raw)
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


def is_long_segment(name: str) -> bool:
    return name.startswith(LONG_PREFIX)


def long_segments(key: str) -> list[tuple[str, str]]:
    """(relative directory path, segment) of every segment of `key` stored in the long form."""
    out = []
    parts = []
    for segment in key.split("/"):
        name = encode_segment(segment)
        parts.append(name)
        if is_long_segment(name):
            out.append(("/".join(parts), segment))
    return out


def is_data_dir(name: str) -> bool:
    return name.startswith(DATA_DIR_PREFIX)

"""Bitrot framing of erasure fragments, and the geometry of a shard file.

Contract: pure computation, no I/O. A fragment on disk is framed as `digest || fragment`, the digest
being HASH_SIZE (16) bytes of the object's bitrot algorithm (stored per object version in
`ErasureInfo.algorithm`). `frame` returns the two pieces separately so a writer can hand them to
`os.writev` without concatenating; `unframe` verifies and raises `FileCorrupt` on any mismatch or
short read. A shard file ("part.1") is the frames of the object's blocks, block 0 first: every
block but the last is `block_size` bytes, so every frame but the last has the same length and the
frame of block b starts at b times that length. A 0-byte object has no blocks and an empty shard.

An unknown algorithm id (it comes from metadata on disk) is `FileCorrupt`.

Algorithms: "xxh3-128" (the default: not cryptographic, which bitrot detection does not need, and
the fastest: see loadtests/hashbench.py) and "blake3" (its 128-bit truncation, for deployments that
want a cryptographic hash).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import blake3
import xxhash

from appliance.engine.codec import codec_for
from appliance.engine.errors import FileCorrupt

DEFAULT_ALGORITHM: Final = "xxh3-128"
HASH_SIZE: Final = 16


def _blake3_128(data: bytes | memoryview) -> bytes:
    return blake3.blake3(data).digest(length=HASH_SIZE)


ALGORITHMS: Final[dict[str, Callable[[bytes | memoryview], bytes]]] = {
    "xxh3-128": xxhash.xxh3_128_digest,
    "blake3": _blake3_128,
}


def _hasher(algorithm: str) -> Callable[[bytes | memoryview], bytes]:
    try:
        return ALGORITHMS[algorithm]
    except KeyError:
        raise FileCorrupt(f"unknown bitrot algorithm {algorithm!r}") from None


def frame(fragment: bytes, algorithm: str = DEFAULT_ALGORITHM) -> list[bytes]:
    """[digest, fragment]: the frame of one fragment, in pieces for writev."""
    return [_hasher(algorithm)(fragment), fragment]


def unframe(framed: bytes | memoryview, algorithm: str = DEFAULT_ALGORITHM) -> bytes:
    """The fragment inside a frame, after checking its digest; `FileCorrupt` when short or mismatched."""
    hasher = _hasher(algorithm)
    if len(framed) < HASH_SIZE:
        raise FileCorrupt(f"bitrot frame of {len(framed)} bytes is shorter than its {HASH_SIZE}-byte hash")
    view = memoryview(framed)
    fragment = view[HASH_SIZE:]
    if hasher(fragment) != view[:HASH_SIZE]:
        raise FileCorrupt(f"bitrot hash mismatch ({algorithm}) in a frame of {len(framed)} bytes")
    return fragment.tobytes()


def framed_size(fragment_len: int) -> int:
    """Length of the frame of a fragment of `fragment_len` bytes."""
    return HASH_SIZE + fragment_len


def _frame_len(block_len: int, k: int, m: int) -> int:
    return framed_size(codec_for(k, m).fragment_size(block_len))


def shard_file_size(object_size: int, k: int, m: int, block_size: int) -> int:
    """Exact size of each drive's shard file of an object of `object_size` bytes."""
    full, tail = divmod(object_size, block_size)
    return full * _frame_len(block_size, k, m) + (_frame_len(tail, k, m) if tail else 0)


def block_offset(block_index: int, k: int, m: int, block_size: int) -> int:
    """Byte offset of block `block_index`'s frame in a shard file."""
    return block_index * _frame_len(block_size, k, m)


def block_frame_len(block_index: int, object_size: int, k: int, m: int, block_size: int) -> int:
    """Length of block `block_index`'s frame: the last block of an object may be short."""
    block_len = min(block_size, object_size - block_index * block_size)
    if block_index < 0 or block_len <= 0:
        raise ValueError(f"an object of {object_size} bytes has no block {block_index}")
    return _frame_len(block_len, k, m)

"""Bitrot framing: every flipped bit and every truncation is caught, and the shard-file geometry
(`shard_file_size`, `block_offset`, `block_frame_len`) agrees with really concatenating frames."""

from __future__ import annotations

import random

import pytest

from appliance.engine import bitrot
from appliance.engine.bitrot import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    HASH_SIZE,
    block_frame_len,
    block_offset,
    frame,
    framed_size,
    shard_file_size,
    unframe,
)
from appliance.engine.codec import BLOCK_SIZE, codec_for
from appliance.engine.errors import FileCorrupt

FRAGMENT = bytes(range(40))
ALGOS = sorted(ALGORITHMS)


def test_default_algorithm_is_xxh3() -> None:
    assert DEFAULT_ALGORITHM == "xxh3-128"
    assert set(ALGORITHMS) == {"xxh3-128", "blake3"}


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("fragment", [b"", b"x", FRAGMENT, random.Random(1).randbytes(300_000)], ids=len)
def test_round_trip(algorithm: str, fragment: bytes) -> None:
    pieces = frame(fragment, algorithm)
    assert len(pieces) == 2 and len(pieces[0]) == HASH_SIZE and pieces[1] is fragment
    framed = b"".join(pieces)
    assert len(framed) == framed_size(len(fragment))
    assert unframe(framed, algorithm) == fragment
    assert unframe(memoryview(framed), algorithm) == fragment


def test_algorithms_differ() -> None:
    assert frame(FRAGMENT, "xxh3-128")[0] != frame(FRAGMENT, "blake3")[0]
    with pytest.raises(FileCorrupt):
        unframe(b"".join(frame(FRAGMENT, "xxh3-128")), "blake3")


@pytest.mark.parametrize("algorithm", ALGOS)
def test_every_flipped_bit_is_detected(algorithm: str) -> None:
    framed = b"".join(frame(FRAGMENT, algorithm))
    for bit in range(len(framed) * 8):
        damaged = bytearray(framed)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(FileCorrupt):
            unframe(bytes(damaged), algorithm)


@pytest.mark.parametrize("algorithm", ALGOS)
def test_every_truncation_and_extension_is_detected(algorithm: str) -> None:
    framed = b"".join(frame(FRAGMENT, algorithm))
    for length in range(len(framed)):
        with pytest.raises(FileCorrupt):
            unframe(framed[:length], algorithm)
    with pytest.raises(FileCorrupt):
        unframe(framed + b"\0", algorithm)


def test_unknown_algorithm() -> None:
    with pytest.raises(FileCorrupt, match="unknown bitrot algorithm"):
        unframe(b"".join(frame(FRAGMENT)), "crc32")
    with pytest.raises(FileCorrupt):
        frame(FRAGMENT, "crc32")


# --- shard file geometry ----------------------------------------------------------------------------

SMALL_BLOCK = 4096


def object_sizes(block_size: int) -> list[int]:
    return [
        0,
        1,
        block_size - 1,
        block_size,
        block_size + 1,
        2 * block_size,
        3 * block_size + block_size // 2,
    ]


def shard_files(data: bytes, k: int, m: int, block_size: int) -> list[bytes]:
    """What each fragment index's shard file holds: the frames of every block, concatenated."""
    c = codec_for(k, m)
    files: list[list[bytes]] = [[] for _ in range(c.n)]
    for start in range(0, len(data), block_size):
        for i, fragment in enumerate(c.encode(data[start : start + block_size])):
            files[i].extend(frame(fragment))
    return [b"".join(f) for f in files]


GEOMETRY = [
    (k, m, block_size)
    for k, m in [(1, 0), (3, 0), (1, 1), (2, 1), (4, 2), (5, 3), (12, 4), (8, 8)]
    for block_size in (SMALL_BLOCK, 10_007)
] + [(4, 2, BLOCK_SIZE), (12, 4, BLOCK_SIZE), (2, 0, BLOCK_SIZE)]


@pytest.mark.parametrize(("k", "m", "block_size"), GEOMETRY, ids=lambda v: str(v))
def test_geometry_matches_concatenated_frames(k: int, m: int, block_size: int) -> None:
    payload = random.Random(block_size + k).randbytes(4 * block_size)
    c = codec_for(k, m)
    for size in object_sizes(block_size):
        data = payload[:size]
        files = shard_files(data, k, m, block_size)
        assert {len(f) for f in files} == {shard_file_size(size, k, m, block_size)}, size
        blocks = -(-size // block_size)
        offset = 0
        for b in range(blocks):
            length = block_frame_len(b, size, k, m, block_size)
            assert block_offset(b, k, m, block_size) == offset
            fragments = {i: unframe(f[offset : offset + length]) for i, f in enumerate(files)}
            block_len = min(block_size, size - b * block_size)
            assert c.decode(fragments, block_len) == data[b * block_size : b * block_size + block_len]
            offset += length
        assert offset == shard_file_size(size, k, m, block_size)


@pytest.mark.parametrize(
    ("block_index", "size"), [(0, 0), (1, SMALL_BLOCK), (2, SMALL_BLOCK + 1), (-1, SMALL_BLOCK)]
)
def test_block_frame_len_refuses_blocks_past_the_end(block_index: int, size: int) -> None:
    with pytest.raises(ValueError):
        block_frame_len(block_index, size, 4, 2, SMALL_BLOCK)


def test_full_block_frame_of_4_plus_2() -> None:
    # 1 MiB over 4 data fragments: 256 KiB payload + 80-byte pyeclib header + 16-byte hash.
    assert block_frame_len(0, BLOCK_SIZE, 4, 2, BLOCK_SIZE) == 262144 + 80 + 16
    assert bitrot.shard_file_size(3 * BLOCK_SIZE + 1, 4, 2, BLOCK_SIZE) == 3 * (262144 + 96) + (1 + 96)

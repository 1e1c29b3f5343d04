"""Erasure coding of one block into k data + m parity fragments, and back.

Contract: pure computation, no I/O. `ErasureCodec(k, m).encode(block)` returns n = k + m fragments of
equal length; fragment i of every block goes to the drive at position i of the object's shard order.
Any k of them, keyed by fragment index, decode the block (`decode`) or rebuild the others
(`reconstruct`). Integrity of the bytes on disk is not this module's job: every fragment is framed
with a bitrot hash (`bitrot.py`) and checked before it reaches the codec. The codec checks only that
the fragments it is handed are consistent with each other and with the block length (index, length,
backend, pyeclib's header checksum) and raises `FileCorrupt` when they are not.

Fragment format
  m >= 1: pyeclib's fragments: an 80-byte liberasurecode header, then ceil(block_len / k) payload
          bytes (the block is zero-padded to a multiple of k and split into k equal data stripes;
          parity stripes have the same length). So `fragment_size(L) == 80 + ceil(L / k)`, checked
          against pyeclib's `get_segment_info` and real encodes in the tests.
  m == 0: no coding and no header: the block zero-padded to a multiple of k and cut into k equal
          stripes; with k == 1 the only fragment is the block itself.
  A 0-byte object has no blocks at all: the engine never encodes an empty block (`encode` refuses
  one), its shard file is empty (or its inline shard is b""), `fragment_size(0) == 0`, and
  `decode(..., 0)` is b"".

Backend: pyeclib's ISA-L Reed-Solomon. `isa_l_rs_vand` for m <= 4; for m >= 5 ISA-L's plain
Vandermonde matrix is not MDS (some sets of k surviving fragments cannot be decoded: 14 of the 4368
ways to lose 5 of 16 at (11, 5), 60 of 12870 at (8, 8)), so those layouts use `isa_l_rs_vand_inv`
(liberasurecode >= 1.7), which is. Both were checked over every erasure pattern of every layout with
n <= 16; both encode at the same speed.

Golden vectors: `codec_vectors.json` (written by `generate_vectors`) holds, for every layout a set
of 1..16 drives can use (m <= n // 2), the xxh3-128 digest of each fragment of a fixed input
(`vector_input()`: 65537 bytes of splitmix64). A fragment's digest covers its payload and the header
fields that define it (index, sizes, checksum type, backend id, magic), not the library version
stamps, so a pyeclib patch release that changes no math does not fail the self-test.
Regenerate the file (only for a deliberate format change) by writing
`json.dumps(codec.generate_vectors(), indent=1)` plus a newline to appliance/engine/codec_vectors.json.
`self_test` is run before a node serves (MinIO's idea): a codec that disagrees with the vectors is
refused.
"""

from __future__ import annotations

import functools
import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any, Final

import xxhash
from pyeclib.ec_iface import ECDriver

from appliance.engine.errors import CodecSelfTestFailed, EngineError, FileCorrupt, ReadQuorumUnavailable

BLOCK_SIZE: Final = 1024 * 1024
MAX_FRAGMENTS: Final = 16
HEADER_SIZE: Final = 80  # liberasurecode's fragment header
VECTORS_FILE: Final = "codec_vectors.json"
VECTOR_INPUT_LEN: Final = 65537
VECTOR_INPUT_SEED: Final = 0x43414952_4E000001

# liberasurecode's packed header (little-endian): idx u32, payload size u32, backend metadata size
# u32, original data size u64, checksum type u8, checksum 32 bytes, checksum mismatch u8, backend
# id u8, backend version u32, magic u32, library version u32, header checksum u32, 9 bytes padding.
_HEADER = struct.Struct("<IIIQ")
_STABLE_HEADER_END: Final = 55  # through the backend id
_MAGIC_SLICE: Final = slice(59, 63)
_BACKEND_ID_OFFSET: Final = 54


def backend_for(m: int) -> str:
    """The pyeclib backend of a layout with m parity fragments (see the module docstring for why two)."""
    return "isa_l_rs_vand" if m <= 4 else "isa_l_rs_vand_inv"


class ErasureCodec:
    """k data + m parity Reed-Solomon over pyeclib's ISA-L backends; m == 0 means no coding."""

    __slots__ = ("k", "m", "n", "_driver", "_backend_id")

    def __init__(self, k: int, m: int) -> None:
        if k < 1 or m < 0 or k + m > MAX_FRAGMENTS:
            raise ValueError(
                f"unsupported erasure layout k={k} m={m} (need 1 <= k, 0 <= m, k + m <= {MAX_FRAGMENTS})"
            )
        self.k = k
        self.m = m
        self.n = k + m
        self._driver: ECDriver | None = None
        self._backend_id = -1
        if m:
            self._driver = ECDriver(k=k, m=m, ec_type=backend_for(m))
            self._backend_id = self._driver.encode(b"\0")[0][_BACKEND_ID_OFFSET]

    def __repr__(self) -> str:
        return f"ErasureCodec(k={self.k}, m={self.m})"

    def fragment_size(self, block_len: int) -> int:
        """Length of every fragment of a block of `block_len` bytes (0 for the empty block, which has none)."""
        if block_len < 0:
            raise ValueError(f"negative block length {block_len}")
        if block_len == 0:
            return 0
        stripe = -(-block_len // self.k)
        return stripe + HEADER_SIZE if self.m else stripe

    def encode(self, block: bytes | memoryview) -> list[bytes]:
        """The n fragments of a non-empty block, in fragment-index order (data first, then parity)."""
        if not len(block):
            raise ValueError("an empty block is never encoded: a 0-byte object has no blocks")
        if self._driver is None:
            return self._split(block)
        try:
            # pyeclib accepts only bytes.
            return list(self._driver.encode(block if isinstance(block, bytes) else bytes(block)))
        except Exception as exc:
            raise EngineError(f"{self!r}: encode failed: {exc}") from exc

    def decode(self, fragments: Mapping[int, bytes], block_len: int) -> bytes:
        """The block of `block_len` bytes from any k of its fragments, keyed by fragment index.

        Data fragments are preferred (then decoding is a copy); fragments beyond the k used are
        ignored. Raises `FileCorrupt` when the fragments used are not consistent and
        `ReadQuorumUnavailable` when fewer than k are given.
        """
        if block_len == 0:
            return b""
        chosen = self._choose(fragments)
        size = self.fragment_size(block_len)
        for index in chosen:
            self._check(index, fragments[index], size, block_len)
        if self._driver is None:
            return self._join(fragments, block_len)
        try:
            data = self._driver.decode([fragments[i] for i in chosen])
        except Exception as exc:
            raise FileCorrupt(f"{self!r}: decode failed: {exc}") from exc
        if len(data) != block_len:
            raise FileCorrupt(f"{self!r}: decoded {len(data)} bytes, expected {block_len}")
        return bytes(data)

    def reconstruct(self, fragments: Mapping[int, bytes], missing: Sequence[int]) -> dict[int, bytes]:
        """The fragments at indexes `missing`, rebuilt from k of the given ones (byte-identical to encode's)."""
        wanted = sorted(set(missing))
        for index in wanted:
            if not 0 <= index < self.n:
                raise ValueError(f"{self!r}: fragment index {index} out of range")
            if index in fragments:
                raise ValueError(f"{self!r}: fragment {index} is both given and missing")
        if not wanted:
            return {}
        chosen = self._choose(fragments)
        assert self._driver is not None  # m == 0 has n == k, so _choose already refused a missing index
        first = fragments[chosen[0]]
        if len(first) < HEADER_SIZE:
            raise FileCorrupt(
                f"{self!r}: fragment {chosen[0]} is {len(first)} bytes, shorter than its header"
            )
        block_len = _HEADER.unpack_from(first)[3]
        size = self.fragment_size(block_len)
        for index in chosen:
            self._check(index, fragments[index], size, block_len)
        try:
            rebuilt = self._driver.reconstruct([fragments[i] for i in chosen], wanted)
        except Exception as exc:
            raise FileCorrupt(f"{self!r}: reconstruct failed: {exc}") from exc
        return dict(zip(wanted, rebuilt, strict=True))

    # --- internals --------------------------------------------------------------------------------

    def _choose(self, fragments: Mapping[int, bytes]) -> list[int]:
        """k fragment indexes to use, data fragments first; raises when fewer than k are given."""
        for index in fragments:
            if not 0 <= index < self.n:
                raise ValueError(f"{self!r}: fragment index {index} out of range")
        if len(fragments) < self.k:
            raise ReadQuorumUnavailable(f"{self!r}: {len(fragments)} fragments given, {self.k} needed")
        return sorted(fragments)[: self.k]

    def _check(self, index: int, fragment: bytes, size: int, block_len: int) -> None:
        if len(fragment) != size:
            raise FileCorrupt(f"{self!r}: fragment {index} is {len(fragment)} bytes, expected {size}")
        if self._driver is None:
            return
        idx, payload, _, orig = _HEADER.unpack_from(fragment)
        if idx != index or orig != block_len or payload != size - HEADER_SIZE:
            raise FileCorrupt(
                f"{self!r}: fragment {index} claims index {idx}, {payload} payload bytes of a {orig}-byte block; "
                f"expected a {block_len}-byte block"
            )
        if fragment[_BACKEND_ID_OFFSET] != self._backend_id:
            raise FileCorrupt(
                f"{self!r}: fragment {index} was made by backend id {fragment[_BACKEND_ID_OFFSET]}"
            )

    def _split(self, block: bytes | memoryview) -> list[bytes]:
        size = self.fragment_size(len(block))
        if self.k == 1:
            return [bytes(block)]
        padded = bytes(block) + bytes(size * self.k - len(block))
        return [padded[i * size : (i + 1) * size] for i in range(self.k)]

    def _join(self, fragments: Mapping[int, bytes], block_len: int) -> bytes:
        if self.k == 1:
            return bytes(fragments[0])
        joined = b"".join(fragments[i] for i in range(self.k))
        if joined[block_len:].strip(b"\0"):
            raise FileCorrupt(f"{self!r}: padding after the {block_len}-byte block is not zero")
        return joined[:block_len]


@functools.cache
def codec_for(k: int, m: int) -> ErasureCodec:
    """The shared codec of a layout: pyeclib drivers cost ~0.1 ms to create and are thread-safe."""
    return ErasureCodec(k, m)


def all_layouts() -> list[tuple[int, int]]:
    """Every (k, m) a set of 1..16 drives can use: m parity drives with m <= n // 2."""
    return [(n - m, m) for n in range(1, MAX_FRAGMENTS + 1) for m in range(n // 2 + 1)]


@functools.cache
def vector_input() -> bytes:
    """The fixed input of the golden vectors: VECTOR_INPUT_LEN bytes of splitmix64 from VECTOR_INPUT_SEED."""
    mask = (1 << 64) - 1
    state = VECTOR_INPUT_SEED
    words = []
    for _ in range(-(-VECTOR_INPUT_LEN // 8)):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        words.append(z ^ (z >> 31))
    return struct.pack(f"<{len(words)}Q", *words)[:VECTOR_INPUT_LEN]


def fragment_digest(fragment: bytes, m: int) -> str:
    """xxh3-128 hex digest of a fragment's defining bytes (pyeclib's version stamps left out)."""
    if not m:
        return xxhash.xxh3_128_hexdigest(fragment)
    h = xxhash.xxh3_128()
    h.update(fragment[:_STABLE_HEADER_END])
    h.update(fragment[_MAGIC_SLICE])
    h.update(fragment[HEADER_SIZE:])
    return h.hexdigest()


def layout_key(k: int, m: int) -> str:
    return f"{k}+{m}"


def generate_vectors() -> dict[str, Any]:
    """The contents of codec_vectors.json, computed with the installed codec."""
    data = vector_input()
    layouts = {}
    for k, m in all_layouts():
        codec = codec_for(k, m)
        layouts[layout_key(k, m)] = {
            "backend": backend_for(m) if m else "none",
            "fragments": [fragment_digest(f, m) for f in codec.encode(data)],
        }
    return {
        "input": {"generator": "splitmix64", "seed": VECTOR_INPUT_SEED, "length": VECTOR_INPUT_LEN},
        "digest": "xxh3-128",
        "layouts": layouts,
    }


@functools.cache
def load_vectors() -> dict[str, Any]:
    text = resources.files("appliance.engine").joinpath(VECTORS_FILE).read_text(encoding="utf-8")
    vectors: dict[str, Any] = json.loads(text)
    return vectors


def self_test(layouts: Iterable[tuple[int, int]]) -> None:
    """Check each layout against the golden vectors; raises `CodecSelfTestFailed` on any difference.

    For each layout: encode the test input and compare every fragment's digest; decode it back from
    the data fragments alone and from the fragments left when the first m (so as many data
    fragments as there are parity ones) are lost.
    """
    data = vector_input()
    vectors = load_vectors()["layouts"]
    for k, m in layouts:
        key = layout_key(k, m)
        expected = vectors.get(key)
        if expected is None:
            raise CodecSelfTestFailed(f"no golden vectors for layout {key}")
        try:
            codec = codec_for(k, m)
            fragments = codec.encode(data)
            digests = [fragment_digest(f, m) for f in fragments]
            if digests != expected["fragments"]:
                bad = [
                    i for i, (a, b) in enumerate(zip(digests, expected["fragments"], strict=False)) if a != b
                ]
                raise CodecSelfTestFailed(
                    f"layout {key}: fragments {bad or 'count'} differ from the golden vectors"
                )
            for lost in (range(k, k + m), range(m)):
                kept = {i: f for i, f in enumerate(fragments) if i not in lost}
                if codec.decode(kept, len(data)) != data:
                    raise CodecSelfTestFailed(f"layout {key}: decode without fragments {list(lost)} is wrong")
        except CodecSelfTestFailed:
            raise
        except Exception as exc:
            raise CodecSelfTestFailed(f"layout {key}: {type(exc).__name__}: {exc}") from exc

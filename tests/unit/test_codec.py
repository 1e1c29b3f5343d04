"""The erasure codec: exact fragment sizes, round trips under every (or a sample of) erasure
pattern for every layout a set of 1..16 drives can use, reconstruction, refusal of inconsistent
fragments, and the golden-vector self-test."""

from __future__ import annotations

import copy
import itertools
import random
import re
import time

import pytest
from pyeclib.ec_iface import ECDriver

from appliance.engine import codec
from appliance.engine.codec import BLOCK_SIZE, HEADER_SIZE, ErasureCodec, codec_for, self_test
from appliance.engine.errors import CodecSelfTestFailed, FileCorrupt, ReadQuorumUnavailable

LAYOUTS = codec.all_layouts()
CODED = [(k, m) for k, m in LAYOUTS if m]
PAYLOAD = random.Random(7).randbytes(BLOCK_SIZE)
SAMPLED_PATTERNS = 12  # erasure patterns tried per block for n > 6, besides the first-m and last-m ones


def layout_id(layout: tuple[int, int]) -> str:
    return f"{layout[0]}+{layout[1]}"


def block_lengths(k: int) -> list[int]:
    return sorted({1, max(1, k - 1), k, k + 1, 4096, BLOCK_SIZE - 1, BLOCK_SIZE})


def erasure_patterns(n: int, m: int, rng: random.Random) -> list[tuple[int, ...]]:
    """Every set of m lost fragments for n <= 6; the first m, last m and a random sample above."""
    every = list(itertools.combinations(range(n), m))
    if n <= 6:
        return every
    return [tuple(range(m)), tuple(range(n - m, n)), *rng.sample(every, min(SAMPLED_PATTERNS, len(every)))]


def test_all_layouts_are_every_n_up_to_16_with_parity_at_most_half() -> None:
    assert len(LAYOUTS) == 80
    assert all(k >= 1 and 0 <= m <= (k + m) // 2 and k + m <= 16 for k, m in LAYOUTS)


# --- fragment sizes ---------------------------------------------------------------------------------

SIZE_LENGTHS = [*range(1, 70), 4095, 4096, 4097, 65535, 65536, 65537, BLOCK_SIZE - 1, BLOCK_SIZE]


@pytest.mark.parametrize("layout", CODED, ids=layout_id)
def test_fragment_size_matches_pyeclib(layout: tuple[int, int]) -> None:
    k, m = layout
    c = codec_for(k, m)
    driver = ECDriver(k=k, m=m, ec_type=codec.backend_for(m))
    for length in [*SIZE_LENGTHS, *random.Random(k * 100 + m).sample(range(1, BLOCK_SIZE), 20)]:
        info = driver.get_segment_info(length, BLOCK_SIZE)
        assert c.fragment_size(length) == info["fragment_size"] == info["last_fragment_size"], length
        assert c.fragment_size(length) == HEADER_SIZE - (-length // k)
    for length in (1, k + 1, 4097, BLOCK_SIZE):
        assert {len(f) for f in c.encode(PAYLOAD[:length])} == {c.fragment_size(length)}


@pytest.mark.parametrize("layout", [(k, m) for k, m in LAYOUTS if not m], ids=layout_id)
def test_uncoded_fragment_size_is_a_stripe(layout: tuple[int, int]) -> None:
    k, _ = layout
    c = codec_for(k, 0)
    for length in SIZE_LENGTHS:
        assert c.fragment_size(length) == -(-length // k)
        assert {len(f) for f in c.encode(PAYLOAD[:length])} == {c.fragment_size(length)}


def test_uncoded_single_fragment_is_the_block() -> None:
    assert codec_for(1, 0).encode(PAYLOAD[:1000]) == [PAYLOAD[:1000]]


# --- the empty block --------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", [(1, 0), (4, 0), (1, 1), (4, 2), (8, 8)], ids=layout_id)
def test_zero_bytes_have_no_fragments(layout: tuple[int, int]) -> None:
    c = codec_for(*layout)
    assert c.fragment_size(0) == 0
    assert c.decode({}, 0) == b""
    with pytest.raises(ValueError):
        c.encode(b"")


# --- round trips ------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS, ids=layout_id)
def test_round_trip_under_erasures(layout: tuple[int, int]) -> None:
    k, m = layout
    c = codec_for(k, m)
    rng = random.Random(k * 100 + m)
    for length in block_lengths(k):
        block = PAYLOAD[:length]
        fragments = c.encode(block)
        assert len(fragments) == c.n == k + m
        assert c.decode(dict(enumerate(fragments)), length) == block
        for lost in erasure_patterns(c.n, m, rng):
            kept = {i: f for i, f in enumerate(fragments) if i not in lost}
            assert c.decode(kept, length) == block, (length, lost)


@pytest.mark.parametrize("layout", CODED, ids=layout_id)
def test_every_erasure_pattern_decodes(layout: tuple[int, int]) -> None:
    """MDS: any k fragments decode. This is what plain isa_l_rs_vand fails for m >= 5."""
    k, m = layout
    c = codec_for(k, m)
    block = PAYLOAD[:1000]
    fragments = c.encode(block)
    for lost in itertools.combinations(range(c.n), m):
        kept = {i: f for i, f in enumerate(fragments) if i not in lost}
        assert c.decode(kept, len(block)) == block, lost


def test_encode_accepts_a_memoryview() -> None:
    c = codec_for(4, 2)
    assert c.encode(memoryview(PAYLOAD)[:5000]) == c.encode(PAYLOAD[:5000])


@pytest.mark.parametrize("layout", CODED, ids=layout_id)
def test_reconstruct_rebuilds_identical_fragments(layout: tuple[int, int]) -> None:
    k, m = layout
    c = codec_for(k, m)
    for length in (1, k + 1, 4097):
        fragments = c.encode(PAYLOAD[:length])
        for i in range(c.n):
            others = {j: f for j, f in enumerate(fragments) if j != i}
            assert c.reconstruct(others, [i]) == {i: fragments[i]}, (length, i)
        for lost in (range(m), range(c.n - m, c.n)):
            kept = {j: f for j, f in enumerate(fragments) if j not in lost}
            assert c.reconstruct(kept, list(lost)) == {j: fragments[j] for j in lost}
        assert c.reconstruct(dict(enumerate(fragments)), []) == {}


@pytest.mark.parametrize("layout", [(1, 0), (4, 0)], ids=layout_id)
def test_uncoded_cannot_reconstruct(layout: tuple[int, int]) -> None:
    c = codec_for(*layout)
    fragments = c.encode(PAYLOAD[:100])
    with pytest.raises(ReadQuorumUnavailable):
        c.reconstruct(dict(enumerate(fragments[1:], start=1)), [0])


# --- inconsistent fragments -------------------------------------------------------------------------


def _flip(data: bytes, pos: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 0x01
    return bytes(out)


BLOCK = PAYLOAD[:10_000]
F42 = codec_for(4, 2).encode(BLOCK)
F42_SHORT = codec_for(4, 2).encode(BLOCK[:-8])  # fragments 2 bytes shorter
F42_SAME_SIZE = codec_for(4, 2).encode(BLOCK[:-1])  # fragments as long, of a 9999-byte block
F65 = codec_for(6, 5).encode(BLOCK)  # same k as (6, 4), other backend

# (name, layout, fragments handed to decode, block_len)
INCONSISTENT = [
    ("header byte flipped", (4, 2), {0: _flip(F42[0], 5), 1: F42[1], 2: F42[2], 3: F42[3]}, len(BLOCK)),
    ("header checksum flipped", (4, 2), {0: F42[0], 1: _flip(F42[1], 68), 2: F42[2], 3: F42[3]}, len(BLOCK)),
    ("fragments under swapped indexes", (4, 2), {0: F42[1], 1: F42[0], 2: F42[2], 3: F42[3]}, len(BLOCK)),
    ("parity under a data index", (4, 2), {0: F42[4], 1: F42[1], 2: F42[2], 3: F42[3]}, len(BLOCK)),
    ("truncated fragment", (4, 2), {0: F42[0][:-1], 1: F42[1], 2: F42[2], 3: F42[3]}, len(BLOCK)),
    ("fragment one byte too long", (4, 2), {0: F42[0] + b"\0", 1: F42[1], 2: F42[2], 3: F42[3]}, len(BLOCK)),
    ("fragment of a shorter block", (4, 2), {0: F42[0], 1: F42_SHORT[1], 2: F42[2], 3: F42[3]}, len(BLOCK)),
    (
        "same-size fragment of another block",
        (4, 2),
        {0: F42[0], 1: F42_SAME_SIZE[1], 2: F42[2], 3: F42[3]},
        len(BLOCK),
    ),
    ("wrong block length", (4, 2), {0: F42[0], 1: F42[1], 2: F42[2], 3: F42[3]}, len(BLOCK) - 1),
    ("fragment of another backend", (6, 4), {i: F65[i] for i in range(6)}, len(BLOCK)),
    ("bare payload without header", (4, 2), {i: F42[i][HEADER_SIZE:] for i in range(4)}, len(BLOCK)),
    ("uncoded fragment too short", (2, 0), {0: BLOCK[:5000], 1: BLOCK[5000:-1]}, len(BLOCK)),
    ("uncoded padding not zero", (3, 0), {0: b"ab", 1: b"cd", 2: b"e\x01"}, 5),
]


@pytest.mark.parametrize(
    ("name", "layout", "fragments", "block_len"), INCONSISTENT, ids=[r[0] for r in INCONSISTENT]
)
def test_inconsistent_fragments_are_refused(
    name: str, layout: tuple[int, int], fragments: dict[int, bytes], block_len: int
) -> None:
    with pytest.raises(FileCorrupt):
        codec_for(*layout).decode(fragments, block_len)


def test_inconsistent_fragments_are_refused_by_reconstruct() -> None:
    c = codec_for(4, 2)
    with pytest.raises(FileCorrupt):
        c.reconstruct({0: F42[0], 1: F42_SHORT[1], 2: F42[2], 3: F42[3]}, [4])
    with pytest.raises(FileCorrupt):
        c.reconstruct({0: F42[1], 1: F42[0], 2: F42[2], 3: F42[3]}, [4])
    with pytest.raises(FileCorrupt):
        c.reconstruct({0: F42[0][:40], 1: F42[1], 2: F42[2], 3: F42[3]}, [4])


def test_extra_fragments_beyond_k_are_not_used() -> None:
    fragments = dict(enumerate(F42))
    fragments[5] = b"garbage"
    assert codec_for(4, 2).decode(fragments, len(BLOCK)) == BLOCK


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.decode({0: F42[0], 1: F42[1], 2: F42[2]}, len(BLOCK)), ReadQuorumUnavailable),
        (lambda c: c.reconstruct({0: F42[0], 1: F42[1], 2: F42[2]}, [3]), ReadQuorumUnavailable),
        (lambda c: c.decode({6: F42[0], 1: F42[1], 2: F42[2], 3: F42[3]}, len(BLOCK)), ValueError),
        (lambda c: c.reconstruct(dict(enumerate(F42)), [6]), ValueError),
        (lambda c: c.reconstruct(dict(enumerate(F42)), [1]), ValueError),
    ],
    ids=[
        "decode with k-1",
        "reconstruct with k-1",
        "index out of range",
        "missing out of range",
        "given and missing",
    ],
)
def test_misuse(call: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        call(codec_for(4, 2))  # type: ignore[operator]


@pytest.mark.parametrize("layout", [(0, 1), (1, -1), (9, 8), (16, 1), (17, 0)], ids=layout_id)
def test_invalid_layouts(layout: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        ErasureCodec(*layout)


def test_codecs_are_cached() -> None:
    assert codec_for(4, 2) is codec_for(4, 2)
    assert codec_for(4, 2) is not codec_for(2, 4)


# --- golden vectors and self-test --------------------------------------------------------------------


def test_vectors_file_is_current() -> None:
    assert codec.load_vectors() == codec.generate_vectors()


def test_vector_input_is_fixed() -> None:
    data = codec.vector_input()
    assert len(data) == codec.VECTOR_INPUT_LEN
    assert data[:8].hex() == "c0f724b67807da84"
    assert len(set(data)) == 256


def test_self_test_passes_for_every_layout_quickly() -> None:
    self_test(LAYOUTS)  # warm: drivers created, vectors loaded
    start = time.perf_counter()
    self_test(LAYOUTS)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("layout", [(1, 0), (3, 0), (2, 2), (12, 4), (8, 8)], ids=layout_id)
def test_self_test_fails_on_an_altered_vector(
    layout: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = copy.deepcopy(codec.load_vectors())
    digests = vectors["layouts"][layout_id(layout)]["fragments"]
    digests[-1] = ("0" if digests[-1][0] != "0" else "1") + digests[-1][1:]
    monkeypatch.setattr(codec, "load_vectors", lambda: vectors)
    with pytest.raises(CodecSelfTestFailed, match=re.escape(layout_id(layout))):
        self_test([layout])
    self_test([lay for lay in LAYOUTS if lay != layout])


def test_self_test_fails_without_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    vectors = copy.deepcopy(codec.load_vectors())
    del vectors["layouts"]["4+2"]
    monkeypatch.setattr(codec, "load_vectors", lambda: vectors)
    with pytest.raises(CodecSelfTestFailed, match="no golden vectors"):
        self_test([(4, 2)])


def test_self_test_fails_when_decode_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ErasureCodec, "decode", lambda self, fragments, block_len: b"\0" * block_len)
    with pytest.raises(CodecSelfTestFailed, match="decode"):
        self_test([(4, 2)])


def test_self_test_wraps_codec_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: ErasureCodec, fragments: object, block_len: int) -> bytes:
        raise FileCorrupt("boom")

    monkeypatch.setattr(ErasureCodec, "decode", broken)
    with pytest.raises(CodecSelfTestFailed, match="boom"):
        self_test([(4, 2)])

"""The object metadata file: round trips, refusal of every corruption, the version-stacking rules,
and the cross-drive comparison that ignores drive-specific fields."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest
import xxhash

from appliance.engine import metadata
from appliance.engine.errors import FileCorrupt
from appliance.engine.metadata import (
    FORMAT_VERSION,
    MAGIC,
    NULL_VERSION,
    ErasureInfo,
    ObjectMeta,
    ObjectVersion,
    PartInfo,
    decode,
    decode_latest,
    encode,
    same_version,
    version_signature,
)

T0 = 1_700_000_000_000_000_000
UUID1 = "6f1c7b0e-3c1f-4e43-9a57-0f0c6b1d2e01"
UUID2 = "0b5e1f84-9d3e-4a2b-8b8e-2f4c1a7e9d02"


def erasure(index: int = 0) -> ErasureInfo:
    return ErasureInfo(
        k=4, m=2, block_size=1 << 20, index=index, distribution=[3, 4, 5, 0, 1, 2], algorithm="xxh3-128"
    )


def plain(version_id: str = NULL_VERSION, mod_time_ns: int = T0, **changes: object) -> ObjectVersion:
    v = ObjectVersion(
        version_id=version_id,
        deleted=False,
        mod_time_ns=mod_time_ns,
        size=5_000_000,
        etag="9b2cf535f27731c974343645a3985328",
        content_type="application/octet-stream",
        user_meta={"owner": "alice"},
        system_meta={"Cache-Control": "max-age=60"},
        parts=[PartInfo(number=1, size=5_000_000, etag="9b2cf535f27731c974343645a3985328")],
        erasure=erasure(),
        data_dir="%d.5d3f2c1b0a99887766554433221100ff",
    )
    return dataclasses.replace(v, **changes)  # type: ignore[arg-type]


def marker(version_id: str, mod_time_ns: int) -> ObjectVersion:
    return ObjectVersion(version_id=version_id, deleted=True, mod_time_ns=mod_time_ns)


MULTIPART = plain(
    UUID1,
    size=15 * 1024 * 1024,
    etag="d41d8cd98f00b204e9800998ecf8427e-3",
    parts=[
        PartInfo(1, 5 << 20, "a" * 32, T0 - 3, {"CRC32C": "yZRlqg=="}),
        PartInfo(2, 5 << 20, "b" * 32, T0 - 2, {"CRC32C": "AAAAAA==", "SHA256": "x" * 44}),
        PartInfo(3, 5 << 20, "c" * 32, T0 - 1),
    ],
)
INLINE = plain(size=11, data_dir=None, inline=b"\x00" * 16 + b"hello world" + bytes(range(256)))
UNICODE = plain(
    UUID2,
    content_type="text/plain; charset=utf-8",
    user_meta={"café": "naïve résumé", "emoji": "🪨🪨", "empty": ""},
    system_meta={
        "Content-Disposition": "attachment; filename*=UTF-8''%E2%82%AC.txt",
        "x-amz-tagging": "a=b&c=d",
    },
)

ROUND_TRIPS = [
    ("no versions", []),
    ("one plain version", [plain()]),
    ("delete marker", [marker(UUID1, T0)]),
    ("multipart with checksums", [MULTIPART]),
    ("inline", [INLINE]),
    (
        "inline empty object",
        [plain(size=0, etag="d41d8cd98f00b204e9800998ecf8427e", data_dir=None, inline=b"")],
    ),
    ("unicode metadata", [UNICODE]),
    ("stack of versions", [marker(UUID2, T0 + 3), UNICODE, MULTIPART, INLINE]),
    ("large numbers", [plain(size=5 * 2**40, mod_time_ns=2**63 - 1)]),
]


@pytest.mark.parametrize("versions", [r[1] for r in ROUND_TRIPS], ids=[r[0] for r in ROUND_TRIPS])
def test_round_trip(versions: list[ObjectVersion]) -> None:
    meta = ObjectMeta(versions=versions)
    data = encode(meta)
    assert data.startswith(MAGIC + FORMAT_VERSION.to_bytes(2, "big"))
    assert decode(data) == meta
    assert decode(memoryview(data)) == meta
    assert encode(decode(data)) == data
    latest = decode_latest(data)
    if versions:
        assert latest == dataclasses.replace(versions[0], inline=None)
    else:
        assert latest is None


def test_a_typical_meta_is_small() -> None:
    assert len(encode(ObjectMeta([plain()]))) < 400


# --- refusing what cannot be trusted ----------------------------------------------------------------

SAMPLE = encode(ObjectMeta([UNICODE, INLINE]))


def _with_checksum(body: bytes) -> bytes:
    return body + xxhash.xxh64_digest(body)


def _file(payload: object, version: int = FORMAT_VERSION) -> bytes:
    return _with_checksum(MAGIC + version.to_bytes(2, "big") + msgpack.packb(payload, use_bin_type=True))


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_every_single_byte_corruption_is_detected(mask: int) -> None:
    for pos in range(len(SAMPLE)):
        damaged = bytearray(SAMPLE)
        damaged[pos] ^= mask
        with pytest.raises(FileCorrupt):
            decode(bytes(damaged))
        with pytest.raises(FileCorrupt):
            decode_latest(bytes(damaged))


def test_every_truncation_is_detected() -> None:
    for length in range(len(SAMPLE)):
        with pytest.raises(FileCorrupt):
            decode(SAMPLE[:length])
    with pytest.raises(FileCorrupt):
        decode(SAMPLE + b"\0")


VERSIONED = encode(ObjectMeta([plain()]))[: -metadata.CHECKSUM_SIZE]
REFUSED = [
    ("empty file", b"", "truncated"),
    ("other magic", _with_checksum(b"XL2 " + VERSIONED[4:]), "magic"),
    ("newer format", _with_checksum(VERSIONED[:9] + (2).to_bytes(2, "big") + VERSIONED[11:]), "version 2"),
    ("format zero", _with_checksum(VERSIONED[:9] + (0).to_bytes(2, "big") + VERSIONED[11:]), "version 0"),
    ("bad checksum", VERSIONED + b"\0" * 8, "checksum"),
    ("payload not msgpack", _with_checksum(MAGIC + b"\x00\x01" + b"\xc1"), "malformed"),
    ("payload not a map", _file([1, 2, 3]), "malformed"),
    ("versions not a list", _file({"v": {"id": "null"}}), "malformed"),
    ("version missing keys", _file({"v": [{"id": "null"}]}), "malformed"),
    ("version not a map", _file({"v": ["null"]}), "malformed"),
    ("trailing bytes in payload", _with_checksum(VERSIONED + b"\x90"), "malformed"),
]


@pytest.mark.parametrize(("data", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused(data: bytes, message: str) -> None:
    with pytest.raises(FileCorrupt, match=message):
        decode(data)


def test_unknown_keys_are_ignored() -> None:
    doc = msgpack.unpackb(encode(ObjectMeta([plain()]))[11:-8])
    doc["future"] = 1
    doc["v"][0]["zz"] = [1, 2]
    assert decode(_file(doc)) == ObjectMeta([plain()])


# --- stacking versions ------------------------------------------------------------------------------


def ids(meta: ObjectMeta) -> list[str]:
    return [v.version_id for v in meta.versions]


# (name, existing versions, added version, ids afterwards newest first, ids of the replaced versions)
ADDS = [
    ("first write", [], plain(), ["null"], []),
    ("null replaces null", [plain()], plain(mod_time_ns=T0 + 1), ["null"], ["null"]),
    (
        "null replaces a null delete marker",
        [marker(NULL_VERSION, T0)],
        plain(mod_time_ns=T0 + 1),
        ["null"],
        ["null"],
    ),
    ("null delete marker replaces null", [plain()], marker(NULL_VERSION, T0 + 1), ["null"], ["null"]),
    ("uuid stacks on null", [plain()], plain(UUID1, T0 + 1), [UUID1, "null"], []),
    (
        "null stacks on uuids",
        [plain(UUID2, T0 + 2), plain(UUID1, T0 + 1)],
        plain(mod_time_ns=T0 + 3),
        ["null", UUID2, UUID1],
        [],
    ),
    (
        "null replaces the null deep in the stack",
        [plain(UUID2, T0 + 2), plain(mod_time_ns=T0 + 1), plain(UUID1, T0)],
        plain(mod_time_ns=T0 + 3),
        ["null", UUID2, UUID1],
        ["null"],
    ),
    ("same uuid replaces itself", [plain(UUID1, T0)], plain(UUID1, T0), [UUID1], [UUID1]),
    ("delete marker stacks", [plain(UUID1, T0)], marker(UUID2, T0 + 1), [UUID2, UUID1], []),
    ("older version goes below newer", [plain(UUID2, T0 + 5)], plain(UUID1, T0 + 1), [UUID2, UUID1], []),
    ("tie goes first", [plain(UUID2, T0)], plain(UUID1, T0), [UUID1, UUID2], []),
]


@pytest.mark.parametrize(
    ("existing", "added", "after", "replaced"), [r[1:] for r in ADDS], ids=[r[0] for r in ADDS]
)
def test_add_version(
    existing: list[ObjectVersion], added: ObjectVersion, after: list[str], replaced: list[str]
) -> None:
    before = list(existing)
    meta = ObjectMeta(versions=list(existing))
    gone = meta.add_version(added)
    assert ids(meta) == after
    assert [v.version_id for v in gone] == replaced
    assert all(any(g is b for b in before) for g in gone)
    assert meta.latest() is meta.versions[0]
    assert meta.find(added.version_id) is added


def test_remove_version() -> None:
    meta = ObjectMeta([marker(UUID2, T0 + 2), plain(mod_time_ns=T0 + 1), plain(UUID1, T0)])
    removed = meta.remove_version(NULL_VERSION)
    assert removed is not None and removed.version_id == NULL_VERSION
    assert ids(meta) == [UUID2, UUID1]
    assert meta.remove_version(NULL_VERSION) is None
    assert meta.remove_version(UUID2) is not None and ids(meta) == [UUID1]
    assert meta.remove_version(UUID1) is not None
    assert meta.latest() is None and meta.find(UUID1) is None


# --- comparing drives' copies -----------------------------------------------------------------------

SAME = [
    ("other fragment index", plain(), plain(erasure=erasure(index=4))),
    ("other inline bytes", plain(), plain(inline=b"other drive's shard")),
    (
        "user meta in another order",
        plain(user_meta={"a": "1", "b": "2"}),
        plain(user_meta={"b": "2", "a": "1"}),
    ),
]
DIFFERENT = [
    ("etag", plain(etag="0" * 32)),
    ("mod time", plain(mod_time_ns=T0 + 1)),
    ("size", plain(size=1)),
    ("version id", plain(UUID1)),
    ("deleted", plain(deleted=True)),
    ("content type", plain(content_type="text/plain")),
    ("user meta", plain(user_meta={"owner": "bob"})),
    ("system meta", plain(system_meta={})),
    ("part etag", plain(parts=[PartInfo(1, 5_000_000, "f" * 32)])),
    (
        "part checksum",
        plain(parts=[PartInfo(1, 5_000_000, "9b2cf535f27731c974343645a3985328", 0, {"CRC32": "x"})]),
    ),
    ("distribution", plain(erasure=dataclasses.replace(erasure(), distribution=[0, 1, 2, 3, 4, 5]))),
    ("parity", plain(erasure=dataclasses.replace(erasure(), m=3))),
    ("algorithm", plain(erasure=dataclasses.replace(erasure(), algorithm="blake3"))),
    ("data dir", plain(data_dir="%d.other")),
    ("no erasure", plain(erasure=None)),
]


@pytest.mark.parametrize(("a", "b"), [r[1:] for r in SAME], ids=[r[0] for r in SAME])
def test_drive_specific_fields_are_ignored(a: ObjectVersion, b: ObjectVersion) -> None:
    assert same_version(a, b)
    assert version_signature(a) == version_signature(b)
    assert version_signature(decode(encode(ObjectMeta([b]))).versions[0]) == version_signature(a)


@pytest.mark.parametrize("other", [r[1] for r in DIFFERENT], ids=[r[0] for r in DIFFERENT])
def test_shared_fields_are_seen(other: ObjectVersion) -> None:
    assert not same_version(plain(), other)
    assert version_signature(plain()) != version_signature(other)


def test_signature_is_short_and_stable() -> None:
    sig = version_signature(plain())
    assert len(sig) == 16
    assert sig == version_signature(plain())

"""Flexible checksums: known values, botocore agreement, header parsing and multipart combination."""

from __future__ import annotations

import base64
import hashlib
import io
import random
import zlib
from typing import Any

import pytest
from botocore.httpchecksum import (
    Crc32Checksum,
    CrtCrc32cChecksum,
    CrtCrc32Checksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)

from appliance.s3 import checksums
from appliance.s3.errors import S3Error

KNOWN = [
    ("CRC32", b"123456789", "cbf43926"),
    ("CRC32C", b"123456789", "e3069283"),
    ("CRC64NVME", b"123456789", "ae8b14860a799888"),
    ("SHA1", b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
    ("SHA256", b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    ("CRC32", b"", "00000000"),
    ("CRC32C", b"", "00000000"),
    ("CRC64NVME", b"", "0000000000000000"),
    ("crc32c", b"123456789", "e3069283"),
]


@pytest.mark.parametrize(("algorithm", "data", "digest"), KNOWN)
def test_known_values(algorithm: str, data: bytes, digest: str) -> None:
    checksum = checksums.Checksum(algorithm)
    checksum.update(data)
    assert checksum.digest().hex() == digest
    assert checksum.b64() == base64.b64encode(bytes.fromhex(digest)).decode()


BOTOCORE = [
    ("CRC32", Crc32Checksum),
    ("CRC32", CrtCrc32Checksum),
    ("CRC32C", CrtCrc32cChecksum),
    ("CRC64NVME", CrtCrc64NvmeChecksum),
    ("SHA1", Sha1Checksum),
    ("SHA256", Sha256Checksum),
]
PAYLOADS = [b"", b"\x00", b"hello world", bytes(range(256)) * 1000, random.Random(7).randbytes(1 << 20)]


@pytest.mark.parametrize(("algorithm", "botocore_cls"), BOTOCORE)
@pytest.mark.parametrize("payload", PAYLOADS, ids=[f"{len(p)}B" for p in PAYLOADS])
def test_agrees_with_botocore(algorithm: str, botocore_cls: Any, payload: bytes) -> None:
    checksum = checksums.Checksum(algorithm)
    checksum.update(payload)
    assert checksum.b64() == botocore_cls().handle(io.BytesIO(payload))


@pytest.mark.parametrize("algorithm", checksums.ALGORITHMS)
def test_incremental_updates_of_any_buffer_type(algorithm: str) -> None:
    payload = random.Random(1).randbytes(10_000)
    whole = checksums.Checksum(algorithm)
    whole.update(payload)
    for cut in (0, 1, 4095, 9999, 10_000):
        pieces = checksums.Checksum(algorithm)
        pieces.update(payload[:cut])
        pieces.digest()  # reading the digest midway must not disturb the running value
        pieces.update(bytearray(payload[cut:cut + 7]))
        pieces.update(memoryview(payload)[cut + 7:])
        assert pieces.digest() == whole.digest()


def test_unknown_algorithm() -> None:
    with pytest.raises(S3Error) as info:
        checksums.Checksum("MD5")
    assert info.value.code == "InvalidRequest"


def _b64(algorithm: str, data: bytes) -> str:
    checksum = checksums.Checksum(algorithm)
    checksum.update(data)
    return checksum.b64()


CRC32_HELLO = _b64("CRC32", b"hello")
SHA256_HELLO = _b64("SHA256", b"hello")

FROM_HEADERS: list[tuple[str, dict[str, str], tuple[str, str] | None | str]] = [
    ("none", {}, None),
    ("crc32", {"x-amz-checksum-crc32": CRC32_HELLO}, ("CRC32", CRC32_HELLO)),
    ("sha256", {"x-amz-checksum-sha256": SHA256_HELLO}, ("SHA256", SHA256_HELLO)),
    ("value-is-stripped", {"x-amz-checksum-crc32": f" {CRC32_HELLO} "}, ("CRC32", CRC32_HELLO)),
    ("sdk-matches", {"x-amz-checksum-crc32": CRC32_HELLO, "x-amz-sdk-checksum-algorithm": "crc32"},
     ("CRC32", CRC32_HELLO)),
    ("sdk-with-trailer", {"x-amz-sdk-checksum-algorithm": "CRC32C", "x-amz-trailer": "x-amz-checksum-crc32c"}, None),
    ("other-headers-ignored", {"x-amz-checksum-type": "FULL_OBJECT", "x-amz-checksum-mode": "ENABLED",
                               "x-amz-checksum-algorithm": "CRC32"}, None),
    ("two-algorithms", {"x-amz-checksum-crc32": CRC32_HELLO, "x-amz-checksum-sha256": SHA256_HELLO},
     "InvalidRequest"),
    ("bad-base64", {"x-amz-checksum-crc32": "not base64!"}, "InvalidRequest"),
    ("wrong-length", {"x-amz-checksum-crc32": SHA256_HELLO}, "InvalidRequest"),
    ("sdk-mismatch", {"x-amz-checksum-crc32": CRC32_HELLO, "x-amz-sdk-checksum-algorithm": "SHA256"},
     "InvalidRequest"),
    ("sdk-unknown", {"x-amz-sdk-checksum-algorithm": "MD5"}, "InvalidRequest"),
    ("sdk-alone", {"x-amz-sdk-checksum-algorithm": "CRC32"}, "InvalidRequest"),
]


@pytest.mark.parametrize(("headers", "expected"), [r[1:] for r in FROM_HEADERS], ids=[r[0] for r in FROM_HEADERS])
def test_from_headers(headers: dict[str, str], expected: tuple[str, str] | None | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(S3Error) as info:
            checksums.from_headers(headers)
        assert info.value.code == expected
    else:
        assert checksums.from_headers(headers) == expected


MD5_HELLO = hashlib.md5(b"hello").digest()
CONTENT_MD5: list[tuple[dict[str, str], bytes | None | str]] = [
    ({}, None),
    ({"content-md5": base64.b64encode(MD5_HELLO).decode()}, MD5_HELLO),
    ({"content-md5": "garbage!!"}, "InvalidDigest"),
    ({"content-md5": base64.b64encode(b"short").decode()}, "InvalidDigest"),
    ({"content-md5": MD5_HELLO.hex()}, "InvalidDigest"),
    ({"content-md5": ""}, "InvalidDigest"),
]


@pytest.mark.parametrize(("headers", "expected"), CONTENT_MD5)
def test_content_md5_expected(headers: dict[str, str], expected: bytes | None | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(S3Error) as info:
            checksums.content_md5_expected(headers)
        assert info.value.code == expected
        assert info.value.status == 400
    else:
        assert checksums.content_md5_expected(headers) == expected


def test_header_name() -> None:
    assert checksums.header_name("crc64nvme") == "x-amz-checksum-crc64nvme"


@pytest.mark.parametrize("algorithm", checksums.ALGORITHMS)
def test_composite(algorithm: str) -> None:
    parts = [b"part one", b"part two", b"three"]
    digests = []
    for part in parts:
        checksum = checksums.Checksum(algorithm)
        checksum.update(part)
        digests.append(checksum.digest())
    assert checksums.composite(algorithm, digests) == f"{_b64(algorithm, b''.join(digests))}-3"


def test_composite_sha256_by_hand() -> None:
    digests = [hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()]
    expected = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode() + "-2"
    assert checksums.composite("SHA256", digests) == expected


PART_LAYOUTS = [
    [],
    [0],
    [1],
    [5, 0, 7],
    [1 << 20, 1 << 20, 3],
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
]


@pytest.mark.parametrize("algorithm", checksums.CRC_ALGORITHMS)
@pytest.mark.parametrize("layout", PART_LAYOUTS, ids=[str(len(p)) for p in PART_LAYOUTS])
def test_combine_crc_equals_crc_of_concatenation(algorithm: str, layout: list[int]) -> None:
    rng = random.Random(len(layout))
    parts = [rng.randbytes(n) for n in layout]
    pairs = []
    for part in parts:
        checksum = checksums.Checksum(algorithm)
        checksum.update(part)
        pairs.append((checksum.digest(), len(part)))
    whole = checksums.Checksum(algorithm)
    whole.update(b"".join(parts))
    assert checksums.combine_crc(algorithm, pairs) == whole.digest()


def test_combine_crc32_matches_zlib() -> None:
    a, b = b"hello ", b"world"
    pairs = [(zlib.crc32(a).to_bytes(4, "big"), len(a)), (zlib.crc32(b).to_bytes(4, "big"), len(b))]
    assert checksums.combine_crc("CRC32", pairs) == zlib.crc32(a + b).to_bytes(4, "big")


@pytest.mark.parametrize(("algorithm", "pairs"), [("SHA256", []), ("CRC32", [(b"\x00" * 8, 1)])])
def test_combine_crc_refuses_misuse(algorithm: str, pairs: list[tuple[bytes, int]]) -> None:
    with pytest.raises(ValueError):
        checksums.combine_crc(algorithm, pairs)

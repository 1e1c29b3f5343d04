"""S3 flexible checksums (CRC32, CRC32C, CRC64NVME, SHA1, SHA256) and Content-MD5, sans-IO.

Contract: `Checksum` computes one algorithm incrementally; `from_headers` and
`content_md5_expected` read and validate what the client declared (raising the S3 error AWS
sends for a malformed value, not for a mismatch: comparing is the caller's job, after the last
byte). `composite` and `combine_crc` build the checksum of a multipart object from its parts'
checksums, for the COMPOSITE and FULL_OBJECT checksum types respectively.

CRC digests are big-endian, as S3 and botocore write them; CRC32 uses zlib, CRC32C and CRC64NVME
use the C implementations in awscrt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Callable, Mapping

from awscrt import checksums as crt

from appliance.s3.errors import S3Error

ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
CRC_ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME")
HEADER_PREFIX = "x-amz-checksum-"
DIGEST_SIZES = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}

_CRC_UPDATE: dict[str, Callable[[bytes | bytearray | memoryview, int], int]] = {
    "CRC32": zlib.crc32,
    "CRC32C": crt.crc32c,
    "CRC64NVME": crt.crc64nvme,
}
_CRC_COMBINE: dict[str, Callable[[int, int, int], int]] = {
    "CRC32": crt.combine_crc32,
    "CRC32C": crt.combine_crc32c,
    "CRC64NVME": crt.combine_crc64nvme,
}


def normalize(algorithm: str) -> str:
    """The canonical (upper-case) name of a supported algorithm; InvalidRequest otherwise."""
    name = algorithm.strip().upper()
    if name not in ALGORITHMS:
        raise S3Error(
            "InvalidRequest",
            "Checksum algorithm provided is unsupported. Please try again with any of the valid types: "
            f"[{', '.join(ALGORITHMS)}]",
        )
    return name


def header_name(algorithm: str) -> str:
    """The header (or trailer) that carries a checksum value, e.g. x-amz-checksum-crc32."""
    return HEADER_PREFIX + normalize(algorithm).lower()


class Checksum:
    """One running checksum; `digest()` may be called at any point without disturbing it."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = normalize(algorithm)
        self._crc = 0
        self._hash = hashlib.new(self.algorithm.lower()) if self.algorithm not in CRC_ALGORITHMS else None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self._hash is not None:
            self._hash.update(data)
        else:
            self._crc = _CRC_UPDATE[self.algorithm](data, self._crc)

    def digest(self) -> bytes:
        if self._hash is not None:
            return self._hash.digest()
        return self._crc.to_bytes(DIGEST_SIZES[self.algorithm], "big")

    def b64(self) -> str:
        return base64.b64encode(self.digest()).decode()


def decode_value(algorithm: str, value: str) -> bytes:
    """The digest a base64 header or trailer value carries; InvalidRequest if it cannot be one."""
    name = normalize(algorithm)
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != DIGEST_SIZES[name]:
        raise S3Error("InvalidRequest", f"Value for {header_name(name)} header is invalid.")
    return digest


def from_headers(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The algorithm and canonical base64 value of the x-amz-checksum-* header, if one was sent.

    Also checks x-amz-sdk-checksum-algorithm against it: the SDK header may stand alone only when
    x-amz-trailer announces the value.
    """
    sent = {name: headers[header] for name in ALGORITHMS if (header := HEADER_PREFIX + name.lower()) in headers}
    if len(sent) > 1:
        raise S3Error(
            "InvalidRequest", "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        )
    sdk = headers.get("x-amz-sdk-checksum-algorithm")
    if sdk is not None:
        sdk_name = sdk.strip().upper()
        if sdk_name not in ALGORITHMS or (sent and sdk_name not in sent):
            raise S3Error("InvalidRequest", "Value for x-amz-sdk-checksum-algorithm header is invalid.")
        trailers = {t.strip().lower() for t in headers.get("x-amz-trailer", "").split(",")}
        if not sent and HEADER_PREFIX + sdk_name.lower() not in trailers:
            raise S3Error(
                "InvalidRequest",
                "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer "
                "headers were found.",
            )
    if not sent:
        return None
    name, value = sent.popitem()
    return name, base64.b64encode(decode_value(name, value)).decode()


def content_md5_expected(headers: Mapping[str, str]) -> bytes | None:
    """The 16-byte MD5 digest Content-MD5 declares, None if absent; InvalidDigest if malformed."""
    value = headers.get("content-md5")
    if value is None:
        return None
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise S3Error("InvalidDigest", "The Content-MD5 you specified is not valid.")
    return digest


def composite(algorithm: str, part_digests: list[bytes]) -> str:
    """The COMPOSITE checksum of a multipart object: the checksum of its parts' digests, "b64-N"."""
    checksum = Checksum(algorithm)
    for digest in part_digests:
        checksum.update(digest)
    return f"{checksum.b64()}-{len(part_digests)}"


def combine_crc(algorithm: str, parts: list[tuple[bytes, int]]) -> bytes:
    """The FULL_OBJECT CRC of a multipart object from each part's (CRC digest, length in bytes).

    Equal to the CRC of the concatenated parts, computed without reading them again.
    """
    name = normalize(algorithm)
    if name not in CRC_ALGORITHMS:
        raise ValueError(f"{name} cannot be combined; FULL_OBJECT checksums are CRCs")
    size = DIGEST_SIZES[name]
    combine = _CRC_COMBINE[name]
    crc = 0
    for digest, length in parts:
        if len(digest) != size:
            raise ValueError(f"a {name} digest is {size} bytes, not {len(digest)}")
        crc = combine(crc, int.from_bytes(digest, "big"), length)
    return crc.to_bytes(size, "big")

"""Conditional writes and copies, GetObjectAttributes, and checksum mode, with boto3 against the real server.

Covers what issue 3 asks beyond the plain flows: `If-None-Match: *` and `If-Match` on PutObject,
CopyObject and CompleteMultipartUpload (including a delete marker as the latest version, and that a
refused Complete keeps its upload); the `x-amz-copy-source-if-*` rules of CopyObject and
UploadPartCopy with AWS's two documented combinations; GetObjectAttributes' Checksum; and
`x-amz-checksum-mode: ENABLED` on GET/HEAD for single uploads, composite and full-object multipart
objects, byte ranges and single parts (`partNumber`).
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.functional.payloads import MiB, body, error_of, status_of
from tests.functional.rawhttp import encode_path, signed_request
from tests.harness import CairnServer, S3Client

PART = 5 * MiB
OTHER_ETAG = '"0123456789abcdef0123456789abcdef"'
PAST = datetime.now(UTC) - timedelta(days=1)
FUTURE = datetime.now(UTC) + timedelta(days=1)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def enable_versioning(s3: S3Client, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def upload(s3: S3Client, bucket: str, key: str, parts: list[bytes], **create: Any) -> tuple[str, list[dict[str, Any]]]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    algorithm = create.get("ChecksumAlgorithm")
    done = []
    for number, data in enumerate(parts, start=1):
        extra = {"ChecksumAlgorithm": algorithm} if algorithm else {}
        resp = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, **extra)
        entry = {"PartNumber": number, "ETag": resp["ETag"]}
        if algorithm:
            entry[f"Checksum{algorithm}"] = resp[f"Checksum{algorithm}"]
        done.append(entry)
    return upload_id, done


def pending_uploads(s3: S3Client, bucket: str) -> list[str]:
    return [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


# --- PutObject ----------------------------------------------------------------------------------

# (state of the key before the write, conditions, expected status or (status, code)); "current" stands
# for the quoted ETag of the key's data.
PUT_CASES: list[tuple[str, str, dict[str, str], int | tuple[int, str]]] = [
    ("create-only-on-missing", "missing", {"IfNoneMatch": "*"}, 200),
    ("create-only-on-existing", "exists", {"IfNoneMatch": "*"}, (412, "PreconditionFailed")),
    ("create-only-over-delete-marker", "delete-marker", {"IfNoneMatch": "*"}, 200),
    ("replace-current", "exists", {"IfMatch": "current"}, 200),
    ("replace-current-in-list", "exists", {"IfMatch": f"{OTHER_ETAG}, current"}, 200),
    ("replace-any", "exists", {"IfMatch": "*"}, 200),
    ("replace-other", "exists", {"IfMatch": OTHER_ETAG}, (412, "PreconditionFailed")),
    ("replace-weak-current", "exists", {"IfMatch": "W/current"}, (412, "PreconditionFailed")),
    ("replace-missing", "missing", {"IfMatch": "current"}, (404, "NoSuchKey")),
    ("replace-delete-marker", "delete-marker", {"IfMatch": "current"}, (404, "NoSuchKey")),
    ("if-none-match-etag", "exists", {"IfNoneMatch": OTHER_ETAG}, (501, "NotImplemented")),
]


def prepare(s3: S3Client, bucket: str, key: str, state: str) -> str:
    """Put the key into `state`; return the ETag of its data (or of the data it had)."""
    if state == "missing":
        return OTHER_ETAG.replace("0", "f")
    enable_versioning(s3, bucket)
    etag = str(s3.put_object(Bucket=bucket, Key=key, Body=b"before")["ETag"])
    if state == "delete-marker":
        s3.delete_object(Bucket=bucket, Key=key)
    return etag


@pytest.mark.parametrize(("state", "conditions", "expected"),
                         [pytest.param(*case[1:], id=case[0]) for case in PUT_CASES])
def test_conditional_put(s3: S3Client, bucket: str, state: str, conditions: dict[str, str],
                         expected: int | tuple[int, str]) -> None:
    etag = prepare(s3, bucket, "k", state)
    headers = {name: value.replace("current", etag) for name, value in conditions.items()}

    def put() -> Any:
        return s3.put_object(Bucket=bucket, Key="k", Body=b"after", **headers)

    if expected == 200:
        assert status_of(put()) == 200
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"after"
        return
    assert error_of(put) == expected
    if state == "exists":
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"before"
    else:
        assert error_of(lambda: s3.head_object(Bucket=bucket, Key="k"))[0] == 404


def test_only_one_of_two_racing_creates_wins(s3: S3Client, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*")
    assert error_of(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*")) == (
        412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"


# --- CompleteMultipartUpload --------------------------------------------------------------------


@pytest.mark.parametrize(("exists", "conditions", "expected"), [
    pytest.param(False, {"IfNoneMatch": "*"}, 200, id="create-only-on-missing"),
    pytest.param(True, {"IfNoneMatch": "*"}, (412, "PreconditionFailed"), id="create-only-on-existing"),
    pytest.param(True, {"IfMatch": "current"}, 200, id="replace-current"),
    pytest.param(True, {"IfMatch": OTHER_ETAG}, (412, "PreconditionFailed"), id="replace-other"),
    pytest.param(False, {"IfMatch": OTHER_ETAG}, (404, "NoSuchKey"), id="replace-missing"),
])
def test_conditional_complete(s3: S3Client, bucket: str, exists: bool, conditions: dict[str, str],
                              expected: int | tuple[int, str]) -> None:
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"before")["ETag"] if exists else OTHER_ETAG
    headers = {name: etag if value == "current" else value for name, value in conditions.items()}
    upload_id, done = upload(s3, bucket, "k", [b"after"])

    def complete() -> Any:
        return s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id,
                                            MultipartUpload={"Parts": done}, **headers)

    if expected == 200:
        complete()
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"after"
        assert pending_uploads(s3, bucket) == []
        return
    assert error_of(complete) == expected
    assert pending_uploads(s3, bucket) == [upload_id]  # a refused Complete can be retried
    s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": done})
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"after"


# --- CopyObject destination, and copy-source conditions -----------------------------------------


def test_conditional_copy_destination(s3: S3Client, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"source")
    old = s3.put_object(Bucket=bucket, Key="dst", Body=b"old")["ETag"]
    source = {"Bucket": bucket, "Key": "src"}
    assert error_of(lambda: s3.copy_object(Bucket=bucket, Key="dst", CopySource=source, IfNoneMatch="*")) == (
        412, "PreconditionFailed")
    assert error_of(lambda: s3.copy_object(Bucket=bucket, Key="dst", CopySource=source, IfMatch=OTHER_ETAG)) == (
        412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"old"
    s3.copy_object(Bucket=bucket, Key="dst", CopySource=source, IfMatch=old)
    s3.copy_object(Bucket=bucket, Key="new", CopySource=source, IfNoneMatch="*")
    assert [s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in ("dst", "new")] == [b"source", b"source"]


# (conditions on the source, whether the copy goes ahead); "etag" stands for the source's ETag.
SOURCE_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("if-match", {"CopySourceIfMatch": "etag"}, True),
    ("if-match-other", {"CopySourceIfMatch": OTHER_ETAG}, False),
    ("if-none-match", {"CopySourceIfNoneMatch": "etag"}, False),
    ("if-none-match-other", {"CopySourceIfNoneMatch": OTHER_ETAG}, True),
    ("modified-since-past", {"CopySourceIfModifiedSince": PAST}, True),
    ("modified-since-future", {"CopySourceIfModifiedSince": FUTURE}, False),
    ("unmodified-since-future", {"CopySourceIfUnmodifiedSince": FUTURE}, True),
    ("unmodified-since-past", {"CopySourceIfUnmodifiedSince": PAST}, False),
    # The two combinations the S3 reference spells out:
    ("if-match-true-unmodified-since-false", {"CopySourceIfMatch": "etag", "CopySourceIfUnmodifiedSince": PAST}, True),
    ("if-none-match-false-modified-since-true",
     {"CopySourceIfNoneMatch": "etag", "CopySourceIfModifiedSince": PAST}, False),
]


def copy_object(s3: S3Client, bucket: str, conditions: dict[str, Any]) -> bytes:
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"}, **conditions)
    return bytes(s3.get_object(Bucket=bucket, Key="dst")["Body"].read())


def upload_part_copy(s3: S3Client, bucket: str, conditions: dict[str, Any]) -> bytes:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    part = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=upload_id, PartNumber=1,
                               CopySource={"Bucket": bucket, "Key": "src"}, **conditions)
    s3.complete_multipart_upload(Bucket=bucket, Key="dst", UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]})
    return bytes(s3.get_object(Bucket=bucket, Key="dst")["Body"].read())


@pytest.mark.parametrize("operation", [copy_object, upload_part_copy], ids=["CopyObject", "UploadPartCopy"])
@pytest.mark.parametrize(("conditions", "proceeds"), [pytest.param(c, p, id=name) for name, c, p in SOURCE_CASES])
def test_copy_source_conditions(s3: S3Client, bucket: str, operation: Callable[[S3Client, str, dict[str, Any]], bytes],
                                conditions: dict[str, Any], proceeds: bool) -> None:
    etag = s3.put_object(Bucket=bucket, Key="src", Body=b"source bytes")["ETag"]
    resolved = {name: etag if value == "etag" else value for name, value in conditions.items()}
    if proceeds:
        assert operation(s3, bucket, resolved) == b"source bytes"
    else:
        assert error_of(lambda: operation(s3, bucket, resolved)) == (412, "PreconditionFailed")
        assert error_of(lambda: s3.head_object(Bucket=bucket, Key="dst"))[0] == 404


def test_upload_part_copy_from_a_delete_marker(s3: S3Client, bucket: str) -> None:
    enable_versioning(s3, bucket)
    s3.put_object(Bucket=bucket, Key="src", Body=b"gone")
    marker = s3.delete_object(Bucket=bucket, Key="src")["VersionId"]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]

    def copy(source: dict[str, str]) -> Any:
        return s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=upload_id, PartNumber=1, CopySource=source)

    assert error_of(lambda: copy({"Bucket": bucket, "Key": "src"})) == (404, "NoSuchKey")
    assert error_of(lambda: copy({"Bucket": bucket, "Key": "src", "VersionId": marker})) == (400, "InvalidRequest")


# --- checksums: GetObjectAttributes and checksum mode -------------------------------------------

MULTIPART = [body(PART, seed="c1"), body(999, seed="c2")]
WHOLE = b"".join(MULTIPART)


def sha256_b64(data: bytes) -> str:
    return b64(hashlib.sha256(data).digest())


def crc32_b64(data: bytes) -> str:
    return b64(zlib.crc32(data).to_bytes(4, "big"))


@pytest.fixture
def checksummed(s3: S3Client, bucket: str) -> str:
    """`single` (PutObject, SHA256), `composite` (multipart, SHA256) and `full` (multipart, CRC32 FULL_OBJECT)."""
    s3.put_object(Bucket=bucket, Key="single", Body=b"single body", ChecksumAlgorithm="SHA256")
    for key, create in (("composite", {"ChecksumAlgorithm": "SHA256"}),
                        ("full", {"ChecksumAlgorithm": "CRC32", "ChecksumType": "FULL_OBJECT"})):
        upload_id, done = upload(s3, bucket, key, MULTIPART, **create)
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done})
    return bucket


COMPOSITE = b64(hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in MULTIPART)).digest()) + "-2"
# key -> (checksum field, value, type)
EXPECTED_CHECKSUMS = {
    "single": ("ChecksumSHA256", sha256_b64(b"single body"), "FULL_OBJECT"),
    "composite": ("ChecksumSHA256", COMPOSITE, "COMPOSITE"),
    "full": ("ChecksumCRC32", crc32_b64(WHOLE), "FULL_OBJECT"),
}


@pytest.mark.parametrize("key", list(EXPECTED_CHECKSUMS))
def test_get_object_attributes_checksum(s3: S3Client, checksummed: str, key: str) -> None:
    field, value, kind = EXPECTED_CHECKSUMS[key]
    got = s3.get_object_attributes(Bucket=checksummed, Key=key, ObjectAttributes=["Checksum", "ObjectParts"])
    assert got["Checksum"][field].split("-")[0] == value.split("-")[0]
    assert got["Checksum"]["ChecksumType"] == kind
    if key == "single":
        assert "ObjectParts" not in got
    else:
        assert got["ObjectParts"]["TotalPartsCount"] == 2


@pytest.mark.parametrize("key", list(EXPECTED_CHECKSUMS))
def test_checksum_mode_on_get_and_head(server: CairnServer, s3: S3Client, checksummed: str, key: str) -> None:
    field, value, kind = EXPECTED_CHECKSUMS[key]
    for read in (s3.head_object, s3.get_object):
        got = read(Bucket=checksummed, Key=key, ChecksumMode="ENABLED")
        assert (got[field], got["ChecksumType"]) == (value, kind)
    # boto3 asks for checksums by default: without the header, none come back.
    for method in ("HEAD", "GET"):
        plain = signed_request(server, method, encode_path(checksummed, key))
        assert plain.status == 200 and not [name for name in plain.headers if name.startswith("x-amz-checksum-")]
    ranged = s3.get_object(Bucket=checksummed, Key=key, ChecksumMode="ENABLED", Range="bytes=0-3")
    assert field not in ranged and ranged["Body"].read() == (b"sing" if key == "single" else WHOLE[:4])


def test_checksum_mode_on_one_part(s3: S3Client, checksummed: str) -> None:
    part = s3.get_object(Bucket=checksummed, Key="composite", PartNumber=2, ChecksumMode="ENABLED")
    assert part["ChecksumSHA256"] == sha256_b64(MULTIPART[1]) and part["PartsCount"] == 2
    assert part["ContentRange"] == f"bytes {PART}-{len(WHOLE) - 1}/{len(WHOLE)}"
    assert part["Body"].read() == MULTIPART[1]
    head = s3.head_object(Bucket=checksummed, Key="full", PartNumber=1, ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc32_b64(MULTIPART[0]) and head["ContentLength"] == PART


def test_part_number_on_a_single_upload(s3: S3Client, checksummed: str) -> None:
    """A simple object is one part: partNumber=1 is all of it (with its checksum), 2 is out of range."""
    got = s3.get_object(Bucket=checksummed, Key="single", PartNumber=1, ChecksumMode="ENABLED")
    assert got["Body"].read() == b"single body" and "PartsCount" not in got
    assert got["ContentRange"] == "bytes 0-10/11"
    assert (got["ChecksumSHA256"], got["ChecksumType"]) == (sha256_b64(b"single body"), "FULL_OBJECT")
    assert error_of(lambda: s3.get_object(Bucket=checksummed, Key="single", PartNumber=2)) == (
        416, "InvalidPartNumber")
    assert error_of(lambda: s3.head_object(Bucket=checksummed, Key="single", PartNumber=2))[0] == 416
    assert error_of(lambda: s3.get_object(Bucket=checksummed, Key="composite", PartNumber=3)) == (
        416, "InvalidPartNumber")


def test_part_number_of_a_delete_marker(s3: S3Client, bucket: str) -> None:
    enable_versioning(s3, bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    marker = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key="k", PartNumber=1)) == (404, "NoSuchKey")
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key="k", PartNumber=1, VersionId=marker))[0] == 405

"""Object round trips through boto3 against a real server: PUT, GET (whole and ranged), HEAD, DELETE.

Each row checks bytes, ETag (MD5 hex, quoted), Content-Length, Content-Type, user metadata and
Last-Modified, at sizes on both sides of every engine edge (inline limit, block size).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.functional.payloads import (
    EDGE_SIZES,
    MiB,
    body,
    error_of,
    etag_of,
    status_of,
    stream_digest,
    write_stream,
)
from tests.harness import S3Client, fresh_bucket_name

METADATA_SENT = {"Color": "Blue", "x-Mixed-Case": "Value With Spaces"}
METADATA_BACK = {"color": "Blue", "x-mixed-case": "Value With Spaces"}


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def check_headers(response: dict[str, Any], data: bytes, content_type: str,
                  before: datetime.datetime, after: datetime.datetime) -> None:
    assert response["ETag"] == etag_of(data)
    assert response["ContentLength"] == len(data)
    assert response["ContentType"] == content_type
    assert response["Metadata"] == METADATA_BACK
    # Last-Modified has one-second resolution.
    assert before.replace(microsecond=0) - datetime.timedelta(seconds=1) <= response["LastModified"]
    assert response["LastModified"] <= after + datetime.timedelta(seconds=1)


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_put_get_head_delete_round_trip(s3: S3Client, bucket: str, size: int) -> None:
    data = body(size, seed="round-trip")
    key = f"obj-{size}"
    before = utcnow()
    put = s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/x-cairn-test",
                        Metadata=METADATA_SENT)
    after = utcnow()
    assert status_of(put) == 200
    assert put["ETag"] == etag_of(data)

    got = s3.get_object(Bucket=bucket, Key=key)
    assert status_of(got) == 200
    assert got["Body"].read() == data
    check_headers(got, data, "application/x-cairn-test", before, after)

    head = s3.head_object(Bucket=bucket, Key=key)
    assert status_of(head) == 200
    check_headers(head, data, "application/x-cairn-test", before, after)
    assert head["LastModified"] == got["LastModified"]

    assert status_of(s3.delete_object(Bucket=bucket, Key=key)) == 204
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key=key)) == (404, "NoSuchKey")
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key=key)) == (404, "404")


def test_default_content_type_is_binary(s3: S3Client, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    assert s3.head_object(Bucket=bucket, Key="plain")["ContentType"] == "binary/octet-stream"


def test_100_mib_object_streams(s3: S3Client, bucket: str, tmp_path: Path) -> None:
    source = write_stream(tmp_path / "big.bin", 100 * MiB, seed="big")
    with open(source.path, "rb") as f:
        put = s3.put_object(Bucket=bucket, Key="big", Body=f)
    source.path.unlink()
    assert put["ETag"] == f'"{source.md5}"'

    got = s3.get_object(Bucket=bucket, Key="big")
    assert got["ContentLength"] == source.size
    assert got["ETag"] == f'"{source.md5}"'
    assert stream_digest(got["Body"].iter_chunks(1 * MiB)) == (source.size, source.sha256)


RANGE_SIZE = 3 * MiB + 17
N = RANGE_SIZE

# (Range header, expected (first, last) for a 206, or the whole-object 200 / the 416 as None)
RANGES: list[tuple[str, tuple[int, int] | None, int]] = [
    ("bytes=0-0", (0, 0), 206),
    ("bytes=0-", (0, N - 1), 206),
    ("bytes=-1", (N - 1, N - 1), 206),
    ("bytes=-100", (N - 100, N - 1), 206),
    (f"bytes=-{N + 1000}", (0, N - 1), 206),
    ("bytes=5-9", (5, 9), 206),
    ("bytes=1048570-1048580", (1048570, 1048580), 206),
    ("bytes=1048576-1048576", (1048576, 1048576), 206),
    ("bytes=1048575-2097152", (1048575, 2097152), 206),
    ("bytes=131071-131073", (131071, 131073), 206),
    (f"bytes=100-{N + 5000}", (100, N - 1), 206),
    (f"bytes={N - 1}-", (N - 1, N - 1), 206),
    (f"bytes={N}-", None, 416),
    (f"bytes={N + 10}-{N + 20}", None, 416),
    ("bytes=abc", None, 200),
    ("items=0-5", None, 200),
]


@pytest.fixture(scope="module")
def ranged_object(s3: S3Client) -> tuple[str, str, bytes]:
    name = fresh_bucket_name("range")
    s3.create_bucket(Bucket=name)
    data = body(RANGE_SIZE, seed="ranges")
    s3.put_object(Bucket=name, Key="ranged", Body=data)
    return name, "ranged", data


@pytest.mark.parametrize(("header", "span", "status"), RANGES)
def test_range_get(s3: S3Client, ranged_object: tuple[str, str, bytes], header: str,
                   span: tuple[int, int] | None, status: int) -> None:
    bucket, key, data = ranged_object
    if status == 416:
        assert error_of(lambda: s3.get_object(Bucket=bucket, Key=key, Range=header)) == (416, "InvalidRange")
        return
    got = s3.get_object(Bucket=bucket, Key=key, Range=header)
    assert status_of(got) == status
    content = got["Body"].read()
    if span is None:
        assert "ContentRange" not in got
        assert got["ContentLength"] == len(data)
        assert content == data
        return
    first, last = span
    assert got["ContentRange"] == f"bytes {first}-{last}/{len(data)}"
    assert got["ContentLength"] == last - first + 1
    assert content == data[first:last + 1]
    assert got["ETag"] == etag_of(data)


def test_range_on_empty_object_is_invalid(s3: S3Client, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key="empty", Range="bytes=0-0")) == (416, "InvalidRange")


@pytest.mark.parametrize(("first", "second"), [(10, 3 * MiB), (3 * MiB, 10), (200 * 1024, 0), (0, 200 * 1024)])
def test_overwrite_replaces_content_and_metadata(s3: S3Client, bucket: str, first: int, second: int) -> None:
    old, new = body(first, seed="old"), body(second, seed="new")
    s3.put_object(Bucket=bucket, Key="k", Body=old, Metadata={"version": "old"}, ContentType="text/old")
    s3.put_object(Bucket=bucket, Key="k", Body=new, Metadata={"version": "new"}, ContentType="text/new")
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == new
    assert got["ETag"] == etag_of(new)
    assert got["Metadata"] == {"version": "new"}
    assert got["ContentType"] == "text/new"
    head = s3.head_object(Bucket=bucket, Key="k")
    assert (head["ContentLength"], head["ETag"]) == (len(new), etag_of(new))


def test_delete_missing_key_is_204(s3: S3Client, bucket: str) -> None:
    assert status_of(s3.delete_object(Bucket=bucket, Key="never-written")) == 204


def test_missing_bucket_errors(s3: S3Client) -> None:
    assert error_of(lambda: s3.get_object(Bucket="no-such-bucket-cairn", Key="k")) == (404, "NoSuchBucket")
    assert error_of(lambda: s3.put_object(Bucket="no-such-bucket-cairn", Key="k", Body=b"x")) == (404, "NoSuchBucket")
    assert error_of(lambda: s3.delete_object(Bucket="no-such-bucket-cairn", Key="k")) == (404, "NoSuchBucket")


KEYS = [
    "unicode-ключ-鍵-🎉",
    "with space",
    "plus+sign",
    "percent%20literal",
    "percent%",
    "double//slash",
    "trailing/",
    "dir/sub/file.txt",
    "~tilde!*'()&$@=;:,?",
    "a" * 1024,
    "é" * 512,
    "x/" * 511 + "yz",
]


@pytest.mark.parametrize("key", KEYS, ids=lambda k: k if len(k) < 40 else f"{k[:10]}...({len(k.encode())}B)")
def test_unusual_keys_round_trip(s3: S3Client, bucket: str, key: str) -> None:
    data = body(100, seed=key)
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == 100
    listed = s3.list_objects_v2(Bucket=bucket)
    assert [item["Key"] for item in listed.get("Contents", [])] == [key]
    assert status_of(s3.delete_object(Bucket=bucket, Key=key)) == 204
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key=key)) == (404, "NoSuchKey")


@pytest.mark.parametrize("key", ["a" * 1025, "é" * 512 + "a", "b/" * 513])
def test_key_too_long(s3: S3Client, bucket: str, key: str) -> None:
    assert error_of(lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"x")) == (400, "KeyTooLongError")

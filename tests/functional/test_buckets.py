"""Bucket operations through boto3: create, head, delete, list, location; AWS's naming rules."""

from __future__ import annotations

import datetime

import pytest

from tests.functional.payloads import error_of, status_of
from tests.functional.rawhttp import encode_path, head_exchange
from tests.harness import CairnServer, S3Client, fresh_bucket_name


def test_create_head_and_repeat(s3: S3Client) -> None:
    name = fresh_bucket_name()
    created = s3.create_bucket(Bucket=name)
    assert status_of(created) == 200
    assert created["Location"] == f"/{name}"
    assert status_of(s3.head_bucket(Bucket=name)) == 200
    assert error_of(lambda: s3.create_bucket(Bucket=name)) == (409, "BucketAlreadyOwnedByYou")


VALID_NAMES = ["abc", "a" * 63, "a.b-c", "0start9", "my.bucket.name", "x-1-2-3"]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_bucket_names(s3: S3Client, name: str) -> None:
    # The module's server is this test's alone, so these fixed names are free.
    assert status_of(s3.create_bucket(Bucket=name)) == 200
    assert status_of(s3.head_bucket(Bucket=name)) == 200
    assert status_of(s3.delete_bucket(Bucket=name)) == 204


INVALID_NAMES = [
    "ab",
    "a" * 64,
    "UpperCase",
    "under_score",
    "-leading-hyphen",
    "trailing-hyphen-",
    ".leading-dot",
    "trailing-dot.",
    "double..dot",
    "192.168.5.4",
    "xn--punycode-prefix",
    "sthree-prefix",
    "name-ending-s3alias",
    "name-ending--ol-s3",
]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_bucket_names(s3: S3Client, name: str) -> None:
    assert error_of(lambda: s3.create_bucket(Bucket=name)) == (400, "InvalidBucketName")


def test_head_missing_bucket_is_404_without_body(server: CairnServer, s3: S3Client) -> None:
    name = fresh_bucket_name("missing")
    assert error_of(lambda: s3.head_bucket(Bucket=name)) == (404, "404")
    head, rest = head_exchange(server, encode_path(name))
    assert head.split(b"\r\n", 1)[0].split(b" ")[1] == b"404", head
    assert rest == b"", f"HEAD response carried a body: {rest[:200]!r}"


def test_delete_bucket(s3: S3Client) -> None:
    name = fresh_bucket_name()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="keep", Body=b"x")
    assert error_of(lambda: s3.delete_bucket(Bucket=name)) == (409, "BucketNotEmpty")
    assert status_of(s3.head_bucket(Bucket=name)) == 200

    s3.delete_object(Bucket=name, Key="keep")
    assert status_of(s3.delete_bucket(Bucket=name)) == 204
    assert error_of(lambda: s3.head_bucket(Bucket=name)) == (404, "404")
    assert error_of(lambda: s3.delete_bucket(Bucket=name)) == (404, "NoSuchBucket")
    assert error_of(lambda: s3.list_objects_v2(Bucket=name)) == (404, "NoSuchBucket")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    # The name is free again.
    assert status_of(s3.create_bucket(Bucket=name)) == 200


def test_list_buckets(s3: S3Client) -> None:
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(seconds=1)
    names = sorted(fresh_bucket_name("list") for _ in range(3))
    for name in names:
        s3.create_bucket(Bucket=name)
    after = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1)

    listed = s3.list_buckets()
    assert status_of(listed) == 200
    buckets = {b["Name"]: b for b in listed["Buckets"]}
    assert set(names) <= set(buckets)
    all_names = [b["Name"] for b in listed["Buckets"]]
    assert all_names == sorted(all_names)
    for name in names:
        assert before <= buckets[name]["CreationDate"] <= after
    assert listed["Owner"]["ID"]


def test_get_bucket_location(s3: S3Client, bucket: str) -> None:
    # us-east-1 is reported as an empty LocationConstraint.
    assert s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") is None
    assert error_of(lambda: s3.get_bucket_location(Bucket=fresh_bucket_name("missing"))) == (404, "NoSuchBucket")

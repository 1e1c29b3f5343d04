"""Bucket naming rules (create and reference) and key limits."""

from __future__ import annotations

import pytest

from appliance.s3.errors import S3Error
from appliance.s3.names import validate_bucket_name, validate_bucket_reference, validate_key

VALID = ["abc", "my-bucket", "my.bucket.name", "a1b", "0ab", "a" * 63, "xn-a", "bucket-s3alia", "10.1.2.a"]

INVALID = [
    "", "ab", "a" * 64, "Bucket", "my_bucket", "-abc", "abc-", ".abc", "abc.", "my..bucket", "192.168.5.4",
    "xn--abc", "sthree-abc", "sthree-configurator-x", "amzn-s3-demo-bucket", "bucket-s3alias",
    "bucket--ol-s3",
    "bucket.mrap", "bucket--x-s3", "bucket--table-s3", "bad!name", "with space", "caf\u00e9", "tab\tname",
]


@pytest.mark.parametrize("name", VALID)
def test_valid_bucket_names(name: str) -> None:
    validate_bucket_name(name)
    validate_bucket_reference(name)


@pytest.mark.parametrize("name", INVALID)
def test_invalid_bucket_names(name: str) -> None:
    with pytest.raises(S3Error) as info:
        validate_bucket_name(name)
    assert (info.value.code, info.value.extra["BucketName"]) == ("InvalidBucketName", name)


# Names that no bucket here can have: legacy-valid ones simply do not exist.
REFERENCES = [
    ("ab", "NoSuchBucket"),
    ("Bucket", "NoSuchBucket"),
    ("my_bucket", "NoSuchBucket"),
    ("my..bucket", "NoSuchBucket"),
    ("192.168.5.4", "NoSuchBucket"),
    ("a" * 255, "NoSuchBucket"),
    ("a", "NoSuchBucket"),
    ("a" * 256, "InvalidBucketName"),
    (".", "InvalidBucketName"),
    ("..", "InvalidBucketName"),
    ("", "InvalidBucketName"),
    ("bad!name", "InvalidBucketName"),
    ("with space", "InvalidBucketName"),
    ("caf\u00e9", "InvalidBucketName"),
    ("arn:aws:s3:us-east-1:1:accesspoint", "InvalidBucketName"),
]


@pytest.mark.parametrize(("name", "code"), REFERENCES)
def test_bucket_references(name: str, code: str) -> None:
    with pytest.raises(S3Error) as info:
        validate_bucket_reference(name)
    assert info.value.code == code


@pytest.mark.parametrize("key", ["k", "a/b", "/", "a//b/", "\u2713", "k" * 1024, "\u00e9" * 512, ".", ".."])
def test_valid_keys(key: str) -> None:
    validate_key(key)


@pytest.mark.parametrize(("key", "code", "size"), [
    ("", "InvalidArgument", None),
    ("k" * 1025, "KeyTooLongError", 1025),
    ("\u00e9" * 513, "KeyTooLongError", 1026),
    ("\U0001f600" * 257, "KeyTooLongError", 1028),
])
def test_invalid_keys(key: str, code: str, size: int | None) -> None:
    with pytest.raises(S3Error) as info:
        validate_key(key)
    assert info.value.code == code
    assert info.value.extra.get("Size") == size

"""Bucket names and object keys as S3 accepts them.

Contract: `validate_bucket_name` applies AWS's naming rules for creating a general purpose bucket.
`validate_bucket_reference` is for every other operation: a name that breaks today's rules but
fits the legacy (pre-2018 us-east-1) rules is a bucket that cannot exist here, so it is
`NoSuchBucket`, as AWS answers; only a name no rule set allows is `InvalidBucketName`.
`validate_key` bounds an object key. Every failure is an `S3Error`.
"""

from __future__ import annotations

import re

from appliance.s3.errors import S3Error

MAX_KEY_BYTES = 1024

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", re.ASCII)
_IP_RE = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}", re.ASCII)
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
# Legacy names: up to 255 of upper/lower letters, digits, '.', '-', '_'. '.' and '..' alone would
# be path segments, so they are never a bucket.
_LEGACY_RE = re.compile(r"[A-Za-z0-9._-]{1,255}", re.ASCII)


def _strict_problem(name: str) -> str | None:
    """Why `name` breaks AWS's bucket naming rules, or None."""
    if not 3 <= len(name) <= 63:
        return "Bucket name must be between 3 and 63 characters long"
    if not _BUCKET_RE.fullmatch(name):
        return ("Bucket name can contain only lower-case letters, digits, '.' and '-', and must begin and "
                "end with a letter or digit")
    if ".." in name:
        return "Bucket name must not contain two adjacent periods"
    if name.startswith(_RESERVED_PREFIXES):
        return "Bucket name must not start with a reserved prefix"
    if name.endswith(_RESERVED_SUFFIXES):
        return "Bucket name must not end with a reserved suffix"
    if _IP_RE.fullmatch(name):
        return "Bucket name must not be formatted as an IP address"
    return None


def validate_bucket_name(name: str) -> None:
    """Raise InvalidBucketName unless `name` may be used to create a bucket."""
    problem = _strict_problem(name)
    if problem is not None:
        raise S3Error("InvalidBucketName", f"The specified bucket is not valid. {problem}.", BucketName=name)


def validate_bucket_reference(name: str) -> None:
    """Check the bucket name of a request that addresses an existing bucket."""
    if _strict_problem(name) is None:
        return
    if _LEGACY_RE.fullmatch(name) and name not in (".", ".."):
        raise S3Error("NoSuchBucket", BucketName=name)
    raise S3Error("InvalidBucketName", BucketName=name)


def validate_key(key: str) -> None:
    """Raise unless `key` is a usable object key: non-empty, at most 1024 bytes of UTF-8."""
    if not key:
        raise S3Error("InvalidArgument", "Object key must not be empty", ArgumentName="key")
    size = len(key.encode())
    if size > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", Size=size, MaxSizeAllowed=MAX_KEY_BYTES)

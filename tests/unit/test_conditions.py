"""Conditional requests as tables: headers in, pass / 304 / 412 out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from appliance.s3.conditions import (
    check_copy_source_conditions,
    check_read_conditions,
    check_write_conditions,
)
from appliance.s3.errors import S3Error

ETAG = "0123abcd"
MODIFIED = datetime(2015, 10, 21, 7, 28, 0, 500_000, tzinfo=UTC)
BEFORE = "Wed, 21 Oct 2015 07:27:59 GMT"
SAME = "Wed, 21 Oct 2015 07:28:00 GMT"
AFTER = "Wed, 21 Oct 2015 07:28:01 GMT"

# (headers, outcome): None passes, otherwise the S3 error code.
READ: list[tuple[dict[str, str], str | None]] = [
    ({}, None),
    ({"if-match": f'"{ETAG}"'}, None),
    ({"if-match": ETAG}, None),
    ({"if-match": '"other", "0123abcd"'}, None),
    ({"if-match": "*"}, None),
    ({"if-match": '"other"'}, "PreconditionFailed"),
    ({"if-match": f'W/"{ETAG}"'}, "PreconditionFailed"),
    ({"if-none-match": f'"{ETAG}"'}, "NotModified"),
    ({"if-none-match": f'W/"{ETAG}"'}, "NotModified"),
    ({"if-none-match": '"a", "0123abcd"'}, "NotModified"),
    ({"if-none-match": "*"}, "NotModified"),
    ({"if-none-match": '"other"'}, None),
    ({"if-modified-since": BEFORE}, None),
    ({"if-modified-since": SAME}, "NotModified"),
    ({"if-modified-since": AFTER}, "NotModified"),
    ({"if-modified-since": "not a date"}, None),
    ({"if-unmodified-since": BEFORE}, "PreconditionFailed"),
    ({"if-unmodified-since": SAME}, None),
    ({"if-unmodified-since": AFTER}, None),
    ({"if-unmodified-since": "yesterday"}, None),
    ({"if-modified-since": "Wed, 21 Oct 2015 09:28:00 +0200"}, "NotModified"),
    ({"if-modified-since": "Wed, 21 Oct 2015 07:28:00 -0000"}, "NotModified"),
    # If-Match beats If-Unmodified-Since (AWS: match + unmodified-since false -> 200)
    ({"if-match": ETAG, "if-unmodified-since": BEFORE}, None),
    ({"if-match": '"other"', "if-unmodified-since": AFTER}, "PreconditionFailed"),
    # If-None-Match beats If-Modified-Since (AWS: none-match false + modified-since true -> 304)
    ({"if-none-match": ETAG, "if-modified-since": BEFORE}, "NotModified"),
    ({"if-none-match": '"other"', "if-modified-since": AFTER}, None),
    # A failed precondition is reported before "not modified"
    ({"if-match": '"other"', "if-none-match": ETAG}, "PreconditionFailed"),
    ({"if-unmodified-since": BEFORE, "if-modified-since": AFTER}, "PreconditionFailed"),
]


@pytest.mark.parametrize(("headers", "outcome"), READ)
def test_read_conditions(headers: dict[str, str], outcome: str | None) -> None:
    if outcome is None:
        check_read_conditions(headers, etag=ETAG, last_modified=MODIFIED)
        return
    with pytest.raises(S3Error) as info:
        check_read_conditions(headers, etag=ETAG, last_modified=MODIFIED)
    assert info.value.code == outcome
    assert info.value.status == (304 if outcome == "NotModified" else 412)


def test_quoted_current_etag_and_naive_time() -> None:
    check_read_conditions({"if-match": ETAG}, etag=f'"{ETAG}"', last_modified=MODIFIED.replace(tzinfo=None))
    with pytest.raises(S3Error, match="NotModified"):
        check_read_conditions({"if-modified-since": SAME}, etag=ETAG,
                              last_modified=MODIFIED.replace(tzinfo=None))


def test_precondition_names_the_condition() -> None:
    with pytest.raises(S3Error) as info:
        check_read_conditions({"if-unmodified-since": BEFORE}, etag=ETAG, last_modified=MODIFIED)
    assert info.value.extra == {"Condition": "If-Unmodified-Since"}


COPY: list[tuple[dict[str, str], bool]] = [
    ({}, True),
    ({"x-amz-copy-source-if-match": ETAG}, True),
    ({"x-amz-copy-source-if-match": '"other"'}, False),
    ({"x-amz-copy-source-if-none-match": ETAG}, False),
    ({"x-amz-copy-source-if-none-match": '"other"'}, True),
    ({"x-amz-copy-source-if-modified-since": BEFORE}, True),
    ({"x-amz-copy-source-if-modified-since": AFTER}, False),
    ({"x-amz-copy-source-if-unmodified-since": BEFORE}, False),
    ({"x-amz-copy-source-if-unmodified-since": AFTER}, True),
    # AWS: if-match true + if-unmodified-since false -> the copy happens
    ({"x-amz-copy-source-if-match": ETAG, "x-amz-copy-source-if-unmodified-since": BEFORE}, True),
    # AWS: if-none-match false + if-modified-since true -> 412
    ({"x-amz-copy-source-if-none-match": ETAG, "x-amz-copy-source-if-modified-since": BEFORE}, False),
    # plain If-* headers are about the destination, not the source
    ({"if-match": '"other"', "if-none-match": ETAG}, True),
]


@pytest.mark.parametrize(("headers", "ok"), COPY)
def test_copy_source_conditions(headers: dict[str, str], ok: bool) -> None:
    if ok:
        check_copy_source_conditions(headers, etag=ETAG, last_modified=MODIFIED)
        return
    with pytest.raises(S3Error) as info:
        check_copy_source_conditions(headers, etag=ETAG, last_modified=MODIFIED)
    assert (info.value.code, info.value.status) == ("PreconditionFailed", 412)


WRITE: list[tuple[dict[str, str], str | None, str | None]] = [
    ({}, None, None),
    ({}, ETAG, None),
    ({"if-none-match": "*"}, None, None),
    ({"if-none-match": "*"}, ETAG, "PreconditionFailed"),
    ({"if-none-match": f'"{ETAG}"'}, ETAG, "NotImplemented"),
    ({"if-match": f'"{ETAG}"'}, ETAG, None),
    ({"if-match": ETAG}, f'"{ETAG}"', None),
    ({"if-match": '"other"'}, ETAG, "PreconditionFailed"),
    ({"if-match": f'"{ETAG}"'}, None, "NoSuchKey"),
    ({"if-match": "*"}, ETAG, None),
    ({"if-match": ETAG, "if-none-match": "*"}, ETAG, "PreconditionFailed"),
]


@pytest.mark.parametrize(("headers", "current", "outcome"), WRITE)
def test_write_conditions(headers: dict[str, str], current: str | None, outcome: str | None) -> None:
    if outcome is None:
        check_write_conditions(headers, current_etag=current)
        return
    with pytest.raises(S3Error) as info:
        check_write_conditions(headers, current_etag=current)
    assert info.value.code == outcome

"""Range headers: parsing, resolving against a size, and the copy-source range."""

from __future__ import annotations

import pytest

from appliance.s3.errors import S3Error
from appliance.s3.ranges import (
    ByteRange,
    check_copy_source_range,
    content_range,
    parse_copy_source_range,
    parse_range,
)

PARSE: list[tuple[str | None, ByteRange | None]] = [
    ("bytes=0-499", ByteRange(0, 499, None)),
    ("bytes=500-", ByteRange(500, None, None)),
    ("bytes=-500", ByteRange(None, None, 500)),
    ("bytes=-0", ByteRange(None, None, 0)),
    ("bytes=5-5", ByteRange(5, 5, None)),
    ("Bytes=1-2", ByteRange(1, 2, None)),
    (" bytes = 1 - 2 ", ByteRange(1, 2, None)),
    ("bytes=0-99999999999999999999", ByteRange(0, 99999999999999999999, None)),
    # S3 ignores these and serves the whole object
    (None, None),
    ("", None),
    ("bytes=", None),
    ("bytes=-", None),
    ("bytes=5-1", None),
    ("bytes=0-1,5-6", None),
    ("bytes=a-b", None),
    ("bytes=+1-2", None),
    ("bytes=1_0-20", None),
    ("bytes=\uff11-2", None),
    ("items=0-1", None),
    ("bytes 0-1", None),
    ("0-1", None),
]


@pytest.mark.parametrize(("header", "expected"), PARSE)
def test_parse_range(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header) == expected


RESOLVE = [
    ("bytes=0-499", 1000, (0, 499)),
    ("bytes=0-499", 100, (0, 99)),
    ("bytes=500-", 1000, (500, 999)),
    ("bytes=999-", 1000, (999, 999)),
    ("bytes=-500", 1000, (500, 999)),
    ("bytes=-5000", 1000, (0, 999)),
    ("bytes=0-0", 1, (0, 0)),
    ("bytes=-1", 1, (0, 0)),
]


@pytest.mark.parametrize(("header", "size", "expected"), RESOLVE)
def test_resolve(header: str, size: int, expected: tuple[int, int]) -> None:
    byte_range = parse_range(header)
    assert byte_range is not None
    assert byte_range.resolve(size) == expected


UNSATISFIABLE = [
    ("bytes=1000-", 1000),
    ("bytes=1000-2000", 1000),
    ("bytes=-0", 1000),
    ("bytes=0-", 0),
    ("bytes=0-0", 0),
    ("bytes=-5", 0),
]


@pytest.mark.parametrize(("header", "size"), UNSATISFIABLE)
def test_unsatisfiable(header: str, size: int) -> None:
    byte_range = parse_range(header)
    assert byte_range is not None
    with pytest.raises(S3Error) as info:
        byte_range.resolve(size)
    assert (info.value.code, info.value.status) == ("InvalidRange", 416)
    assert info.value.extra == {"RangeRequested": header, "ActualObjectSize": size}


def test_content_range() -> None:
    assert content_range(0, 499, 1000) == "bytes 0-499/1000"


@pytest.mark.parametrize(("value", "expected"), [("bytes=0-0", (0, 0)), ("bytes=5-100", (5, 100))])
def test_copy_source_range(value: str, expected: tuple[int, int]) -> None:
    assert parse_copy_source_range(value) == expected


@pytest.mark.parametrize("value", [
    "bytes=5-1", "bytes=5-", "bytes=-5", "bytes=0-1,2-3", "0-5", "bytes= 0-5", "",
])
def test_bad_copy_source_range(value: str) -> None:
    with pytest.raises(S3Error) as info:
        parse_copy_source_range(value)
    assert info.value.code == "InvalidArgument"
    assert info.value.extra["ArgumentName"] == "x-amz-copy-source-range"


@pytest.mark.parametrize(("first", "last", "size", "ok"), [
    (0, 9, 10, True), (0, 10, 10, False), (10, 10, 10, False), (0, 0, 0, False),
])
def test_check_copy_source_range(first: int, last: int, size: int, ok: bool) -> None:
    if ok:
        check_copy_source_range(first, last, size)
    else:
        with pytest.raises(S3Error, match="InvalidArgument"):
            check_copy_source_range(first, last, size)

"""Byte ranges: the `Range` header of GetObject and the `x-amz-copy-source-range` of UploadPartCopy.

Contract: `parse_range` returns None for a header S3 ignores (absent, not a `bytes=` range,
malformed, or several ranges, which S3 does not serve), and the object is then sent whole with 200.
A parsed range is resolved against the object size only once the size is known: an unsatisfiable
range is `InvalidRange` (416), and every range on an empty object is unsatisfiable, as in S3.
The copy-source range is stricter: it must be `bytes=first-last`, anything else is
`InvalidArgument`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.s3.errors import S3Error

# ASCII digits only: int() alone would also take '+1', '1_000' and non-ASCII digits.
_RANGE_RE = re.compile(
    r"\s*bytes\s*=\s*(?:([0-9]+)\s*-\s*([0-9]*)|-\s*([0-9]+))\s*", re.ASCII | re.IGNORECASE
)
_COPY_RANGE_RE = re.compile(r"bytes=([0-9]+)-([0-9]+)", re.ASCII)
_COPY_RANGE_MESSAGE = (
    "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the "
    "zero-based offsets of the first and last bytes to copy"
)


@dataclass(frozen=True)
class ByteRange:
    """`bytes=first-last`, `bytes=first-` (last None) or `bytes=-suffix` (first and last None)."""

    first: int | None
    last: int | None
    suffix: int | None

    def __str__(self) -> str:
        if self.suffix is not None:
            return f"bytes=-{self.suffix}"
        return f"bytes={self.first}-{'' if self.last is None else self.last}"

    def resolve(self, size: int) -> tuple[int, int]:
        """(start, end), end inclusive, of this range within an object of `size` bytes."""
        if self.suffix is not None:
            if self.suffix == 0 or size == 0:
                raise self._unsatisfiable(size)
            return max(0, size - self.suffix), size - 1
        assert self.first is not None
        if self.first >= size:
            raise self._unsatisfiable(size)
        end = size - 1 if self.last is None else min(self.last, size - 1)
        return self.first, end

    def _unsatisfiable(self, size: int) -> S3Error:
        return S3Error("InvalidRange", RangeRequested=str(self), ActualObjectSize=size)


def parse_range(header: str | None) -> ByteRange | None:
    """The single byte range `header` asks for, or None when S3 would ignore the header."""
    if header is None:
        return None
    match = _RANGE_RE.fullmatch(header)
    if match is None:
        return None
    first, last, suffix = match.groups()
    if suffix is not None:
        return ByteRange(None, None, int(suffix))
    if last:
        if int(last) < int(first):
            return None
        return ByteRange(int(first), int(last), None)
    return ByteRange(int(first), None, None)


def content_range(start: int, end: int, size: int) -> str:
    """The `Content-Range` value of a 206 response."""
    return f"bytes {start}-{end}/{size}"


def parse_copy_source_range(value: str) -> tuple[int, int]:
    """(first, last) of an `x-amz-copy-source-range` header."""
    match = _COPY_RANGE_RE.fullmatch(value)
    if match is None or int(match.group(1)) > int(match.group(2)):
        raise S3Error("InvalidArgument", _COPY_RANGE_MESSAGE, ArgumentName="x-amz-copy-source-range",
                      ArgumentValue=value)
    return int(match.group(1)), int(match.group(2))


def check_copy_source_range(first: int, last: int, size: int) -> None:
    """Raise unless bytes first..last lie within a source object of `size` bytes."""
    if last >= size:
        raise S3Error("InvalidArgument", f"Range specified is not valid for source object of size: {size}",
                      ArgumentName="x-amz-copy-source-range", ArgumentValue=f"bytes={first}-{last}")

"""Conditional requests: If-Match and friends on reads, copy sources and writes.

Contract: each check either returns (the request goes on) or raises the S3 error AWS sends.
Reads follow RFC 7232 section 6 as S3 does: If-Match decides alone when present, otherwise
If-Unmodified-Since; then If-None-Match decides alone when present, otherwise If-Modified-Since.
Failed reads are 412, "not modified" reads are 304. The copy-source variant uses the
`x-amz-copy-source-if-*` headers with the same precedence, and every failure is 412. Writes
support `If-None-Match: *` (create only) and `If-Match` (replace only that version); a write with
If-Match on a missing object is 404 NoSuchKey, as S3 answers. ETags compare without quotes; a
weak tag (`W/`) never satisfies If-Match (strong comparison) but does satisfy If-None-Match
(weak comparison). Dates are HTTP dates at one-second resolution; an unparsable date is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from appliance.s3.errors import S3Error

READ_HEADERS = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
COPY_SOURCE_HEADERS = tuple("x-amz-copy-source-" + name for name in READ_HEADERS)


def _tags(value: str) -> list[tuple[bool, str]]:
    """The (weak, opaque tag) pairs of an If-Match / If-None-Match list; `*` stays `*`."""
    tags = []
    for item in value.split(","):
        item = item.strip()
        weak = item.startswith(("W/", "w/"))
        if weak:
            item = item[2:].strip()
        if item:
            tags.append((weak, item.strip('"')))
    return tags


def _strip(etag: str) -> str:
    return etag.strip().strip('"')


def etag_matches(value: str, etag: str, *, weak: bool) -> bool:
    """Whether the list `value` names `etag` (`*` names any); `weak` picks the RFC 7232 comparison."""
    current = _strip(etag)
    return any(tag == "*" or (tag == current and (weak or not is_weak)) for is_weak, tag in _tags(value))


def _http_date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _seconds(when: datetime) -> datetime:
    """`when` at the resolution of an HTTP date, so an object is never newer than its own Last-Modified."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.replace(microsecond=0)


def _evaluate(
    headers: Mapping[str, str], prefix: str, etag: str, last_modified: datetime
) -> tuple[int, str] | None:
    """(412 or 304, the header that decided) when a condition fails, else None."""
    modified = _seconds(last_modified)
    if_match = headers.get(prefix + "if-match")
    if if_match is not None:
        if not etag_matches(if_match, etag, weak=False):
            return 412, "If-Match"
    else:
        since = _http_date(headers.get(prefix + "if-unmodified-since"))
        if since is not None and modified > since:
            return 412, "If-Unmodified-Since"
    if_none_match = headers.get(prefix + "if-none-match")
    if if_none_match is not None:
        if etag_matches(if_none_match, etag, weak=True):
            return 304, "If-None-Match"
    else:
        since = _http_date(headers.get(prefix + "if-modified-since"))
        if since is not None and modified <= since:
            return 304, "If-Modified-Since"
    return None


def check_read_conditions(headers: Mapping[str, str], *, etag: str, last_modified: datetime) -> None:
    """Conditions of GetObject / HeadObject against the object about to be served."""
    failed = _evaluate(headers, "", etag, last_modified)
    if failed is None:
        return
    status, header = failed
    if status == 304:
        raise S3Error("NotModified")
    raise S3Error("PreconditionFailed", Condition=header)


def check_copy_source_conditions(headers: Mapping[str, str], *, etag: str, last_modified: datetime) -> None:
    """`x-amz-copy-source-if-*` of CopyObject / UploadPartCopy against the source object."""
    prefix = "x-amz-copy-source-"
    failed = _evaluate(headers, prefix, etag, last_modified)
    if failed is not None:
        raise S3Error("PreconditionFailed", Condition=prefix + failed[1])


def check_write_conditions(headers: Mapping[str, str], *, current_etag: str | None) -> None:
    """Conditions of a PutObject / CompleteMultipartUpload against the object it would replace."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise S3Error("NotImplemented", Header="If-None-Match")
        if current_etag is not None:
            raise S3Error("PreconditionFailed", Condition="If-None-Match")
    if_match = headers.get("if-match")
    if if_match is not None:
        if current_etag is None:
            raise S3Error("NoSuchKey")
        if not etag_matches(if_match, current_etag, weak=False):
            raise S3Error("PreconditionFailed", Condition="If-Match")

"""S3 operation handlers: one parsed endpoint in, one `Response` out.

Contract: a handler receives an endpoint the router already parsed and validated, and the
authenticated request context; it calls the object layer and renders the result with
`appliance.s3.xml`. It never looks at the raw path, never catches an engine error to invent its
own answer (the app maps every exception to an S3 error in one place), and never buffers an
object body.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from appliance.cluster.bucket_meta import VERSIONING_ENABLED
from appliance.engine.erasure_set import LatestIsDeleteMarker, part_sizes
from appliance.engine.errors import ObjectNotFound
from appliance.engine.metadata import ObjectVersion
from appliance.engine.objects import BodyDigest, ObjectInfo, PutOptions
from appliance.http import bucket_config, multipart, objects_extra, post_object
from appliance.http.context import RequestContext, Response
from appliance.s3 import checksums, conditions, endpoints, ranges, xml
from appliance.s3.errors import S3Error

MAX_PUT_SIZE = 5 * 1024**3
MAX_USER_META = 2048
STORED_HEADERS = (
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
)
RESPONSE_OVERRIDES = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}
STORAGE_CLASS_KEY = "x-amz-storage-class"
Handler = Callable[[RequestContext, Any], Awaitable[Response]]


def http_date(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC), usegmt=True)


def owner(ctx: RequestContext) -> tuple[str, str]:
    user = ctx.auth.access_key if ctx.auth else ""
    return hashlib.sha256(user.encode()).hexdigest(), user


def layer(ctx: RequestContext) -> Any:
    assert ctx.layer is not None
    return ctx.layer


# --- continuation tokens ------------------------------------------------------------------------


def encode_token(marker: str, is_prefix: bool) -> str:
    raw = json.dumps({"m": marker, "p": is_prefix}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[str, bool]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw)
        return str(doc["m"]), bool(doc["p"])
    except (ValueError, KeyError, TypeError):
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect",
                      ArgumentName="continuation-token") from None


# --- service and buckets ------------------------------------------------------------------------


async def list_buckets(ctx: RequestContext, ep: endpoints.ListBuckets) -> Response:
    buckets = await layer(ctx).list_buckets()
    body = xml.list_buckets(owner(ctx), [(b.name, b.created) for b in buckets])
    return Response(200, [("content-type", "application/xml")], body)


async def create_bucket(ctx: RequestContext, ep: endpoints.CreateBucket) -> Response:
    constraint = xml.parse_create_bucket(await ctx.read_all())
    region = ctx.app.config.region
    if constraint and constraint != region and not (constraint == "US" and region == "us-east-1"):
        raise S3Error("IllegalLocationConstraintException",
                      f"The {constraint} location constraint is incompatible for the region specific endpoint "
                      "this request was sent to.")
    await layer(ctx).make_bucket(ep.bucket)
    return Response(200, [("location", "/" + ep.bucket)])


async def head_bucket(ctx: RequestContext, ep: endpoints.HeadBucket) -> Response:
    await layer(ctx).head_bucket(ep.bucket)
    return Response(200, [("x-amz-bucket-region", ctx.app.config.region)])


async def delete_bucket(ctx: RequestContext, ep: endpoints.DeleteBucket) -> Response:
    await layer(ctx).delete_bucket(ep.bucket)
    return Response(204)


async def get_bucket_location(ctx: RequestContext, ep: endpoints.GetBucketLocation) -> Response:
    await layer(ctx).head_bucket(ep.bucket)
    return Response(200, [("content-type", "application/xml")], xml.location(ctx.app.config.region))


def _entries(ctx: RequestContext, page: Any, fetch_owner: bool) -> tuple[list[xml.ObjectEntry], list[str]]:
    contents = []
    prefixes = []
    who = owner(ctx) if fetch_owner else None
    for entry in page.entries:
        if entry.info is None:
            prefixes.append(entry.key)
        else:
            info = entry.info
            contents.append(xml.ObjectEntry(key=info.key, last_modified=info.last_modified, etag=info.etag,
                                            size=info.size, storage_class=_storage_class(info), owner=who))
    return contents, prefixes


async def list_objects_v2(ctx: RequestContext, ep: endpoints.ListObjectsV2) -> Response:
    marker, skip = ep.start_after, ""
    if ep.continuation_token:
        marker, is_prefix = decode_token(ep.continuation_token)
        skip = marker if is_prefix else ""
    if ep.start_after and ep.start_after.encode() > marker.encode():
        marker, skip = ep.start_after, ""
    page = await layer(ctx).list_objects(ep.bucket, prefix=ep.prefix, delimiter=ep.delimiter, marker=marker,
                                         max_keys=ep.max_keys, skip_prefix=skip)
    contents, prefixes = _entries(ctx, page, ep.fetch_owner)
    token = None
    if page.is_truncated and page.next_marker is not None:
        token = encode_token(page.next_marker, page.entries[-1].info is None)
    body = xml.list_objects_v2(
        bucket=ep.bucket, prefix=ep.prefix, delimiter=ep.delimiter, max_keys=ep.max_keys, start_after=ep.start_after,
        continuation_token=ep.continuation_token, next_continuation_token=token, encoding_type=ep.encoding_type,
        is_truncated=page.is_truncated, contents=contents, common_prefixes=prefixes,
    )
    return Response(200, [("content-type", "application/xml")], body)


async def list_objects_v1(ctx: RequestContext, ep: endpoints.ListObjects) -> Response:
    skip = ep.marker if ep.delimiter and ep.marker.endswith(ep.delimiter) else ""
    page = await layer(ctx).list_objects(ep.bucket, prefix=ep.prefix, delimiter=ep.delimiter, marker=ep.marker,
                                         max_keys=ep.max_keys, skip_prefix=skip)
    contents, prefixes = _entries(ctx, page, True)
    next_marker = page.next_marker if page.is_truncated and ep.delimiter else None
    body = xml.list_objects_v1(
        bucket=ep.bucket, prefix=ep.prefix, delimiter=ep.delimiter, marker=ep.marker, next_marker=next_marker,
        max_keys=ep.max_keys, encoding_type=ep.encoding_type, is_truncated=page.is_truncated, contents=contents,
        common_prefixes=prefixes,
    )
    return Response(200, [("content-type", "application/xml")], body)


# --- objects ------------------------------------------------------------------------------------


def _storage_class(info: ObjectInfo) -> str:
    return info.system_meta.get(STORAGE_CLASS_KEY, "STANDARD")


def parity_for_storage_class(ctx: RequestContext, value: str | None) -> int | None:
    """STANDARD: the deployment's parity; REDUCED_REDUNDANCY: 1; `EC:n`: n parity drives."""
    if value is None or value == "STANDARD":
        return None
    if value == "REDUCED_REDUNDANCY":
        return 1 if ctx.app.node.parity >= 1 else 0
    if value.startswith("EC:"):
        try:
            return int(value[3:])
        except ValueError:
            pass
    raise S3Error("InvalidStorageClass")


def _put_options(ctx: RequestContext) -> PutOptions:
    headers = ctx.headers
    user_meta = {name[len("x-amz-meta-"):]: value for name, value in headers.items() if name.startswith("x-amz-meta-")}
    if sum(len(k) + len(v) for k, v in user_meta.items()) > MAX_USER_META:
        raise S3Error("MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size.")
    system_meta = {name: headers[name] for name in STORED_HEADERS if name in headers}
    storage_class = headers.get(STORAGE_CLASS_KEY)
    parity = parity_for_storage_class(ctx, storage_class)
    if storage_class and storage_class != "STANDARD":
        system_meta[STORAGE_CLASS_KEY] = storage_class
    tags = objects_extra.tags_from_header(headers)
    if tags:
        system_meta[objects_extra.TAGGING_KEY] = tags
    return PutOptions(
        content_type=headers.get("content-type") or "binary/octet-stream",
        user_meta=user_meta,
        system_meta=system_meta,
        parity=parity,
    )


async def put_object(ctx: RequestContext, ep: endpoints.PutObject) -> Response:
    length = ctx.decoded_length()
    if length is None and "chunked" not in ctx.headers.get("transfer-encoding", ""):
        raise S3Error("MissingContentLength")
    if length is not None and length > MAX_PUT_SIZE:
        raise S3Error("EntityTooLarge")
    opts = _put_options(ctx)
    md5_expected = checksums.content_md5_expected(ctx.headers)

    def verify(digest: BodyDigest) -> None:
        if md5_expected is not None and digest.md5 != md5_expected:
            raise S3Error("BadDigest")
        if ctx.checksum:
            opts.system_meta[f"x-amz-checksum-{ctx.checksum[0].lower()}"] = ctx.checksum[1]

    def precondition(current: ObjectInfo | None) -> None:
        conditions.check_write_conditions(ctx.headers, current_etag=current.etag if current else None)

    opts.verify = verify
    if "if-match" in ctx.headers or "if-none-match" in ctx.headers:
        opts.precondition = precondition
        # A write that will be refused should not cost an upload: check early, then again under the lock.
        try:
            current: ObjectInfo | None = await layer(ctx).get_object_info(ep.bucket, ep.key)
        except ObjectNotFound:
            current = None
        precondition(current)
    cfg = await bucket_config.config(ctx, ep.bucket)
    info = await layer(ctx).put_object(ep.bucket, ep.key, ctx.body(), opts,
                                       versioned=cfg.versioning == VERSIONING_ENABLED)
    headers = [("etag", f'"{info.etag}"')]
    if info.version_id != "null":
        headers.append(("x-amz-version-id", info.version_id))
    if ctx.checksum:
        headers.append((f"x-amz-checksum-{ctx.checksum[0].lower()}", ctx.checksum[1]))
        headers.append((objects_extra.CHECKSUM_TYPE_KEY, "FULL_OBJECT"))
    return Response(200, headers)


def object_headers(info: ObjectInfo) -> list[tuple[str, str]]:
    """The headers describing an object on GET / HEAD, its checksums excepted (see `_read_object`)."""
    headers = [
        ("etag", f'"{info.etag}"'),
        ("last-modified", http_date(info.last_modified)),
        ("accept-ranges", "bytes"),
        ("content-type", info.content_type or "binary/octet-stream"),
    ]
    for name, value in info.system_meta.items():
        if name in STORED_HEADERS or name == STORAGE_CLASS_KEY:
            headers.append((name, value))
    for name, value in info.user_meta.items():
        headers.append(("x-amz-meta-" + name, value))
    if info.version_id and info.version_id != "null":
        headers.append(("x-amz-version-id", info.version_id))
    return headers


def _apply_overrides(headers: list[tuple[str, str]], overrides: dict[str, str]) -> list[tuple[str, str]]:
    if not overrides:
        return headers
    replaced = {RESPONSE_OVERRIDES[k]: v for k, v in overrides.items() if k in RESPONSE_OVERRIDES}
    kept = [(n, v) for n, v in headers if n not in replaced]
    return kept + list(replaced.items())


async def get_object(ctx: RequestContext, ep: endpoints.GetObject) -> Response:
    return await _read_object(ctx, ep, with_body=True)


async def head_object(ctx: RequestContext, ep: endpoints.HeadObject) -> Response:
    return await _read_object(ctx, ep, with_body=False)


@dataclass(frozen=True)
class _Span:
    """The bytes start..end (inclusive) a GET / HEAD serves, and the headers that describe them."""

    start: int
    end: int
    partial: bool  # 206 with Content-Range
    headers: list[tuple[str, str]]


def _requested_span(ep: endpoints.GetObject | endpoints.HeadObject, info: ObjectInfo, version: ObjectVersion) -> _Span:
    """The whole object, a `Range`, or one part (`partNumber`; the router refuses both at once).

    A part of a multipart object carries `x-amz-mp-parts-count` and, with checksum mode, that
    part's checksums; any other object is one part, so partNumber=1 is all of it. Checksums are
    returned only for what they cover: never for a byte range.
    """
    whole = [(n, v) for n, v in info.system_meta.items()
             if n.startswith(checksums.HEADER_PREFIX) and n != objects_extra.CHECKSUM_TYPE_KEY]
    if whole:
        whole.append((objects_extra.CHECKSUM_TYPE_KEY, objects_extra.checksum_type(info)))
    sums = whole if ep.checksum_mode else []
    if ep.part_number is not None:
        sizes = part_sizes(version)
        if ep.part_number > len(sizes):
            raise S3Error("InvalidPartNumber")
        start = sum(sizes[: ep.part_number - 1])
        length = sizes[ep.part_number - 1]
        headers = []
        if "-" in info.etag and version.parts:
            headers.append(("x-amz-mp-parts-count", str(len(sizes))))
            part = version.parts[ep.part_number - 1]
            sums = [(checksums.header_name(n), v) for n, v in part.checksums.items()] if ep.checksum_mode else []
        return _Span(start, start + length - 1, length > 0, headers + sums)
    byte_range = ranges.parse_range(ep.range)
    if byte_range is None:
        return _Span(0, info.size - 1, False, sums)
    start, end = byte_range.resolve(info.size)
    return _Span(start, end, True, [])


async def _read_object(ctx: RequestContext, ep: endpoints.GetObject | endpoints.HeadObject, *,
                       with_body: bool) -> Response:
    try:
        info, view = await layer(ctx).open_object(ep.bucket, ep.key, ep.version_id)
    except LatestIsDeleteMarker as exc:
        return objects_extra.latest_marker_response(ctx, exc)
    if info.delete_marker:
        return objects_extra.marker_version_response(ctx, info, http_date(info.last_modified))
    conditions.check_read_conditions(ctx.headers, etag=info.etag, last_modified=info.last_modified)
    headers = _apply_overrides(object_headers(info), dict(ep.response_overrides))
    if with_body and objects_extra.tag_count(info):
        headers.append(("x-amz-tagging-count", str(objects_extra.tag_count(info))))
    span = _requested_span(ep, info, view.version)
    headers += span.headers
    status = 200
    if span.partial:
        status = 206
        headers.append(("content-range", ranges.content_range(span.start, span.end, info.size)))
    length = span.end - span.start + 1 if info.size else 0
    headers.append(("content-length", str(length)))
    if not with_body or length == 0:
        return Response(status, headers, b"")
    return Response(status, headers, layer(ctx).stream_object(ep.bucket, ep.key, view, span.start, span.end))


async def not_implemented(ctx: RequestContext, ep: Any) -> Response:
    raise S3Error("NotImplemented", "A header or query you provided implies functionality that is not implemented.")


HANDLERS: dict[type, Handler] = {
    endpoints.ListBuckets: list_buckets,
    endpoints.CreateBucket: create_bucket,
    endpoints.HeadBucket: head_bucket,
    endpoints.DeleteBucket: delete_bucket,
    endpoints.GetBucketLocation: get_bucket_location,
    endpoints.ListObjectsV2: list_objects_v2,
    endpoints.ListObjects: list_objects_v1,
    endpoints.PutObject: put_object,
    endpoints.GetObject: get_object,
    endpoints.HeadObject: head_object,
    **bucket_config.HANDLERS,
    **objects_extra.HANDLERS,
    **post_object.HANDLERS,
    **multipart.HANDLERS,
}


async def dispatch(ctx: RequestContext, endpoint: Any) -> Response:
    handler = HANDLERS.get(type(endpoint), not_implemented)
    response = await handler(ctx, endpoint)
    if "origin" in ctx.headers and not isinstance(endpoint, endpoints.CorsPreflight):
        response.headers.extend(await bucket_config.cors_headers(ctx, endpoint.bucket))
    return response

"""Object handlers beyond plain put/get: CopyObject, object tagging, GetObjectAttributes, and the
versioning-aware DeleteObject / DeleteObjects; plus the delete-marker answers of GET and HEAD.

Contract: handlers follow the S3 API reference (status, error codes, headers). Versioning follows
the bucket's state read through `bucket_config.config`: never versioned, Enabled (new versions get
UUID ids, deletes add delete markers) or Suspended (writes and deletes use the "null" version).
Object tags live in the version's system metadata under `TAGGING_KEY` (URL query syntax); changing
them is a metadata-only commit (`ObjectLayer.update_version`) that never rewrites the data. A copy
streams the source through the engine block by block; it never buffers the object.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from appliance.cluster.bucket_meta import VERSIONING_ENABLED
from appliance.engine.erasure_set import LatestIsDeleteMarker
from appliance.engine.metadata import NULL_VERSION, ObjectVersion
from appliance.engine.objects import ObjectInfo, PutOptions
from appliance.http import bucket_config
from appliance.http.context import RequestContext, Response
from appliance.s3 import checksums, conditions, endpoints, xml
from appliance.s3.errors import S3Error, error_body, from_exception

TAGGING_KEY = "x-amz-tagging"
CHECKSUM_PREFIX = "x-amz-checksum-"
CHECKSUM_TYPE_KEY = "x-amz-checksum-type"
MAX_COPY_SIZE = 5 * 1024**3
XML = ("content-type", "application/xml")


def _layer(ctx: RequestContext) -> Any:
    assert ctx.layer is not None
    return ctx.layer


# --- tags ---------------------------------------------------------------------------------------


def encode_tags(tags: dict[str, str]) -> str:
    return urlencode(list(tags.items()))


def decode_tags(info: ObjectInfo) -> dict[str, str]:
    return dict(parse_qsl(info.system_meta.get(TAGGING_KEY, ""), keep_blank_values=True))


def tags_from_header(headers: dict[str, str]) -> str | None:
    """The stored form of an `x-amz-tagging` request header, None when absent or empty."""
    value = headers.get("x-amz-tagging")
    if not value:
        return None
    tags = xml.parse_tagging_header(value)
    return encode_tags(tags) if tags else None


def tag_count(info: ObjectInfo) -> int:
    return len(decode_tags(info))


def version_headers(info: ObjectInfo) -> list[tuple[str, str]]:
    """x-amz-version-id (and x-amz-delete-marker) describing a version a request touched."""
    headers = []
    if info.delete_marker:
        headers.append(("x-amz-delete-marker", "true"))
    if info.version_id != NULL_VERSION or info.delete_marker:
        headers.append(("x-amz-version-id", info.version_id))
    return headers


def _refuse_marker(version_id: str | None) -> None:
    """Operations on a delete marker: 404 NoSuchKey when it is the latest, 405 when named by id."""
    if version_id is None:
        raise S3Error("NoSuchKey")
    raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.",
                  Method="GET", ResourceType="DeleteMarker")


# --- delete-marker answers of GET / HEAD --------------------------------------------------------


def latest_marker_response(ctx: RequestContext, exc: LatestIsDeleteMarker) -> Response:
    """GET/HEAD of a key whose latest version is a delete marker: 404 NoSuchKey with the marker's headers."""
    err = from_exception(exc)
    body = error_body(err, resource=ctx.raw_path, request_id=ctx.request_id)
    return Response(404, [XML, ("x-amz-delete-marker", "true"), ("x-amz-version-id", exc.version_id)], body)


def marker_version_response(ctx: RequestContext, info: ObjectInfo, last_modified: str) -> Response:
    """GET/HEAD naming a delete marker by version id: 405 MethodNotAllowed with the marker's headers."""
    err = S3Error("MethodNotAllowed", Method=ctx.method, ResourceType="DeleteMarker")
    body = error_body(err, resource=ctx.raw_path, request_id=ctx.request_id)
    headers = [XML, ("x-amz-delete-marker", "true"), ("x-amz-version-id", info.version_id),
               ("last-modified", last_modified), ("allow", "DELETE")]
    return Response(405, headers, body)


# --- object tagging -----------------------------------------------------------------------------


async def get_object_tagging(ctx: RequestContext, ep: endpoints.GetObjectTagging) -> Response:
    info: ObjectInfo = await _layer(ctx).get_object_info(ep.bucket, ep.key, ep.version_id)
    if info.delete_marker:
        _refuse_marker(ep.version_id)
    headers = [XML, *version_headers(info)]
    return Response(200, headers, xml.tagging(decode_tags(info)))


async def _set_tags(ctx: RequestContext, ep: Any, encoded: str | None) -> ObjectInfo:
    def change(v: ObjectVersion) -> None:
        if v.deleted:
            _refuse_marker(ep.version_id)
        if encoded is None:
            v.system_meta.pop(TAGGING_KEY, None)
        else:
            v.system_meta[TAGGING_KEY] = encoded

    info: ObjectInfo = await _layer(ctx).update_version(ep.bucket, ep.key, ep.version_id, change)
    return info


async def put_object_tagging(ctx: RequestContext, ep: endpoints.PutObjectTagging) -> Response:
    body = await ctx.read_all()
    md5_expected = checksums.content_md5_expected(ctx.headers)
    if md5_expected is not None and hashlib.md5(body).digest() != md5_expected:
        raise S3Error("BadDigest")
    tags = xml.parse_tagging(body)
    info = await _set_tags(ctx, ep, encode_tags(tags) if tags else None)
    return Response(200, version_headers(info))


async def delete_object_tagging(ctx: RequestContext, ep: endpoints.DeleteObjectTagging) -> Response:
    info = await _set_tags(ctx, ep, None)
    return Response(204, version_headers(info))


# --- GetObjectAttributes ------------------------------------------------------------------------


def checksum_type(info: ObjectInfo) -> str:
    """How the object's checksum covers it: as stored by CompleteMultipartUpload, else (a single
    upload, or a copy of one) FULL_OBJECT."""
    return info.system_meta.get(CHECKSUM_TYPE_KEY, "FULL_OBJECT")


async def get_object_attributes(ctx: RequestContext, ep: endpoints.GetObjectAttributes) -> Response:
    info, view = await _layer(ctx).open_object(ep.bucket, ep.key, ep.version_id)
    if info.delete_marker:
        _refuse_marker(ep.version_id)
    sums = {name: value for name, value in info.system_meta.items()
            if name.startswith(CHECKSUM_PREFIX) and name != CHECKSUM_TYPE_KEY}
    parts = None
    version_parts = view.version.parts
    multipart = "-" in info.etag
    if multipart and version_parts:
        after = [p for p in version_parts if p.number > ep.part_number_marker]
        page = after[: ep.max_parts]
        truncated = len(after) > len(page)
        parts = xml.AttributeParts(
            total_parts_count=len(version_parts), part_number_marker=ep.part_number_marker,
            next_part_number_marker=page[-1].number if truncated and page else None, max_parts=ep.max_parts,
            is_truncated=truncated,
            parts=[xml.AttributePart(p.number, p.size, dict(p.checksums)) for p in page],
        )
    body = xml.get_object_attributes(
        ep.attributes, etag=info.etag, size=info.size,
        storage_class=info.system_meta.get("x-amz-storage-class", "STANDARD"), checksums=sums,
        checksum_type=checksum_type(info) if sums else None, parts=parts,
    )
    headers = [XML, ("last-modified", _http_date(info)), *version_headers(info)]
    return Response(200, headers, body)


def _http_date(info: ObjectInfo) -> str:
    return format_datetime(info.last_modified, usegmt=True)


# --- CopyObject ---------------------------------------------------------------------------------


async def open_copy_source(
    ctx: RequestContext, src: endpoints.CopySource, source_conditions: Mapping[str, str]
) -> tuple[ObjectInfo, Any]:
    """The source of CopyObject / UploadPartCopy, opened for reading once its `x-amz-copy-source-if-*`
    conditions hold: NoSuchKey when its latest version is a delete marker, InvalidRequest when the
    request names a delete marker by version id."""
    try:
        info, view = await _layer(ctx).open_object(src.bucket, src.key, src.version_id)
    except LatestIsDeleteMarker:
        raise S3Error("NoSuchKey", Key=src.key) from None
    if info.delete_marker:
        raise S3Error("InvalidRequest",
                      "The source of a copy request may not specifically refer to a delete marker by version id.")
    conditions.check_copy_source_conditions(source_conditions, etag=info.etag, last_modified=info.last_modified)
    return info, view


async def copy_object(ctx: RequestContext, ep: endpoints.CopyObject) -> Response:
    # The handlers module holds the request-header -> metadata rules PutObject uses; it imports this
    # module for its table, so the reverse import waits until a request runs.
    from appliance.http import handlers

    src = ep.source
    info, view = await open_copy_source(ctx, src, ep.source_conditions)
    if info.size > MAX_COPY_SIZE:
        raise S3Error("InvalidRequest", "The specified copy source is larger than the maximum allowable size for a "
                      f"copy source: {MAX_COPY_SIZE}")
    cfg = await bucket_config.config(ctx, ep.bucket)
    if ep.metadata_directive == "REPLACE":
        opts = handlers._put_options(ctx)
    else:
        stored = {k: v for k, v in info.system_meta.items() if k in handlers.STORED_HEADERS}
        storage_class = ctx.headers.get(handlers.STORAGE_CLASS_KEY) or info.system_meta.get(handlers.STORAGE_CLASS_KEY)
        if storage_class and storage_class != "STANDARD":
            stored[handlers.STORAGE_CLASS_KEY] = storage_class
        opts = PutOptions(content_type=info.content_type, user_meta=dict(info.user_meta), system_meta=stored,
                          parity=handlers.parity_for_storage_class(ctx, storage_class))
    opts.system_meta.pop(TAGGING_KEY, None)
    tags = tags_from_header(ctx.headers) if ep.tagging_directive == "REPLACE" else info.system_meta.get(TAGGING_KEY)
    if tags:
        opts.system_meta[TAGGING_KEY] = tags
    if "-" not in info.etag:  # the same bytes: a whole-object checksum still holds (a multipart one does not)
        opts.system_meta.update({k: v for k, v in info.system_meta.items() if k.startswith(CHECKSUM_PREFIX)})

    if "if-match" in ctx.headers or "if-none-match" in ctx.headers:
        def precondition(current: ObjectInfo | None) -> None:
            conditions.check_write_conditions(ctx.headers, current_etag=current.etag if current else None)

        opts.precondition = precondition
    body = _layer(ctx).stream_object(src.bucket, src.key, view, 0, info.size - 1) if info.size else _empty()
    new = await _layer(ctx).put_object(ep.bucket, ep.key, body, opts,
                                       versioned=cfg.versioning == VERSIONING_ENABLED)
    sums = {k: v for k, v in new.system_meta.items() if k.startswith(CHECKSUM_PREFIX)}
    headers = [XML]
    if new.version_id != NULL_VERSION:
        headers.append(("x-amz-version-id", new.version_id))
    if info.version_id != NULL_VERSION:
        headers.append(("x-amz-copy-source-version-id", info.version_id))
    return Response(200, headers, xml.copy_object_result(new.etag, new.last_modified, sums))


async def _empty() -> AsyncIterator[bytes]:
    """The body of a zero-byte source."""
    empty: tuple[bytes, ...] = ()
    for chunk in empty:
        yield chunk


# --- deletes ------------------------------------------------------------------------------------


async def delete_version(ctx: RequestContext, bucket: str, key: str, version_id: str | None) -> ObjectInfo | None:
    """S3's delete for the bucket's versioning state: what was removed, or the delete marker added."""
    cfg = await bucket_config.config(ctx, bucket)
    result: ObjectInfo | None = await _layer(ctx).delete_object(bucket, key, version_id, versioning=cfg.versioning)
    return result


async def delete_object(ctx: RequestContext, ep: endpoints.DeleteObject) -> Response:
    # delete_version reads the bucket's configuration first: that read is the NoSuchBucket check.
    info = await delete_version(ctx, ep.bucket, ep.key, ep.version_id)
    headers: list[tuple[str, str]] = []
    if info is not None:
        headers = version_headers(info)
    elif ep.version_id is not None:
        headers = [("x-amz-version-id", ep.version_id)]
    return Response(204, headers)


async def delete_objects(ctx: RequestContext, ep: endpoints.DeleteObjects) -> Response:
    body = await ctx.read_all()
    md5_expected = checksums.content_md5_expected(ctx.headers)
    if md5_expected is not None and hashlib.md5(body).digest() != md5_expected:
        raise S3Error("BadDigest")
    quiet, targets = xml.parse_delete_objects(body)
    await _layer(ctx).head_bucket(ep.bucket)
    deleted: list[tuple[str, str | None, bool, str | None]] = []
    errors = []
    for key, version_id in targets:
        try:
            info = await delete_version(ctx, ep.bucket, key, version_id)
        except Exception as exc:
            err = from_exception(exc)
            errors.append((key, version_id, err.code, err.message))
            continue
        if quiet:
            continue
        if info is not None and info.delete_marker:
            deleted.append((key, version_id, True, info.version_id))
        else:
            deleted.append((key, version_id, False, None))
    return Response(200, [XML], xml.delete_result(deleted, errors))


HANDLERS: dict[type, Any] = {
    endpoints.CopyObject: copy_object,
    endpoints.GetObjectTagging: get_object_tagging,
    endpoints.PutObjectTagging: put_object_tagging,
    endpoints.DeleteObjectTagging: delete_object_tagging,
    endpoints.GetObjectAttributes: get_object_attributes,
    endpoints.DeleteObject: delete_object,
    endpoints.DeleteObjects: delete_objects,
}

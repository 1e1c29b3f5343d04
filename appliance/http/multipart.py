"""S3 multipart upload handlers (reading one part, `partNumber`, is GetObject's: see `handlers.py`).

Contract: same as `handlers.py` (one parsed endpoint in, one `Response` out, bodies streamed, never
buffered), whose helpers it reuses; `handlers.HANDLERS` registers everything in `HANDLERS` below.
The engine's multipart errors (UploadNotFound, InvalidPart, PartTooSmall) map to S3 codes in
`s3/errors.py` like every other domain error. Checksums follow S3's flexible checksums: CreateMultipartUpload fixes an
algorithm and a type (COMPOSITE: the checksum of the parts' checksums, "-N"; FULL_OBJECT: the CRC
of the whole object, combined from the parts' CRCs); every part then carries a checksum of that
algorithm (verified when the client sends one, computed here when it does not).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from appliance.cluster.bucket_meta import VERSIONING_ENABLED
from appliance.engine.errors import InvalidPart, ObjectNotFound
from appliance.engine.metadata import PartInfo
from appliance.engine.multipart import Upload
from appliance.engine.objects import BodyDigest, ObjectInfo, PutOptions
from appliance.http import handlers as base
from appliance.http.context import RequestContext, Response
from appliance.http.objects_extra import CHECKSUM_TYPE_KEY
from appliance.s3 import checksums, conditions, endpoints, ranges, xml
from appliance.s3.errors import S3Error

MAX_PART_SIZE = 5 * 1024**3
XML = ("content-type", "application/xml")


async def _upload(ctx: RequestContext, ep: Any) -> Upload:
    return await base.layer(ctx).multipart(ep.key).get_upload(ep.bucket, ep.key, ep.upload_id)


def _checksum_settings(headers: dict[str, str]) -> tuple[str | None, str | None]:
    """(algorithm, type) of a new upload from x-amz-checksum-algorithm / x-amz-checksum-type."""
    raw_algorithm = headers.get("x-amz-checksum-algorithm")
    raw_type = headers.get(CHECKSUM_TYPE_KEY)
    if raw_algorithm is None:
        if raw_type is not None:
            raise S3Error("InvalidRequest", "The x-amz-checksum-type header can only be used with the "
                                            "x-amz-checksum-algorithm header.")
        return None, None
    algorithm = raw_algorithm.strip().upper()
    if algorithm not in checksums.ALGORITHMS:
        raise S3Error("InvalidRequest", "Checksum algorithm provided is unsupported. Please try again with any of "
                                        "the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
    kind = (raw_type or ("FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE")).strip().upper()
    if kind not in ("COMPOSITE", "FULL_OBJECT"):
        raise S3Error("InvalidRequest", "Value for x-amz-checksum-type header is invalid.")
    if kind == "FULL_OBJECT" and algorithm not in checksums.CRC_ALGORITHMS:
        raise S3Error("InvalidRequest", f"The {algorithm} checksum algorithm does not support the FULL_OBJECT "
                                        "checksum type.")
    if kind == "COMPOSITE" and algorithm == "CRC64NVME":
        raise S3Error("InvalidRequest", "The CRC64NVME checksum algorithm does not support the COMPOSITE "
                                        "checksum type.")
    return algorithm, kind


def _sent_algorithm(headers: dict[str, str]) -> str | None:
    """The checksum algorithm a part request carries (header, trailer or SDK announcement)."""
    sent = checksums.from_headers(headers)
    if sent is not None:
        return sent[0]
    for name in headers.get("x-amz-trailer", "").split(","):
        name = name.strip().lower()
        if name.startswith(checksums.HEADER_PREFIX):
            return name[len(checksums.HEADER_PREFIX):].upper()
    return None


async def _summed(body: AsyncIterator[bytes], summer: checksums.Checksum) -> AsyncIterator[bytes]:
    async for chunk in body:
        summer.update(chunk)
        yield chunk


# --- create, abort ------------------------------------------------------------------------------


async def create_multipart_upload(ctx: RequestContext, ep: endpoints.CreateMultipartUpload) -> Response:
    opts = base._put_options(ctx)
    algorithm, kind = _checksum_settings(ctx.headers)
    await base.layer(ctx).head_bucket(ep.bucket)
    upload = await base.layer(ctx).multipart(ep.key).create(
        ep.bucket, ep.key, opts, checksum_algorithm=algorithm, checksum_type=kind, owner=base.owner(ctx)[1])
    headers = [XML]
    if algorithm is not None and kind is not None:
        headers += [("x-amz-checksum-algorithm", algorithm), (CHECKSUM_TYPE_KEY, kind)]
    return Response(200, headers, xml.initiate_multipart_upload(ep.bucket, ep.key, upload.upload_id))


async def abort_multipart_upload(ctx: RequestContext, ep: endpoints.AbortMultipartUpload) -> Response:
    await base.layer(ctx).head_bucket(ep.bucket)
    await base.layer(ctx).multipart(ep.key).abort(ep.bucket, ep.key, ep.upload_id)
    return Response(204)


# --- parts --------------------------------------------------------------------------------------


async def _store_part(
    ctx: RequestContext, upload: Upload, number: int, body: AsyncIterator[bytes], *, sent: str | None,
    md5_expected: bytes | None,
) -> PartInfo:
    algorithm = upload.checksum_algorithm
    if algorithm is not None and sent is not None and sent != algorithm:
        raise S3Error("InvalidRequest", f"Checksum Type mismatch occurred, expected checksum Type: "
                                        f"{algorithm.lower()}, actual checksum Type: {sent.lower()}")
    own = checksums.Checksum(algorithm) if algorithm is not None and sent is None else None
    if own is not None:
        body = _summed(body, own)

    def verify(digest: BodyDigest) -> dict[str, str]:
        if md5_expected is not None and digest.md5 != md5_expected:
            raise S3Error("BadDigest")
        if own is not None:
            return {own.algorithm: own.b64()}
        if ctx.checksum is not None:
            return {ctx.checksum[0]: ctx.checksum[1]}
        return {}

    return await base.layer(ctx).multipart(upload.key).put_part(upload, number, body, verify)


def _checksum_headers(part: PartInfo) -> list[tuple[str, str]]:
    return [(checksums.header_name(name), value) for name, value in part.checksums.items()]


async def upload_part(ctx: RequestContext, ep: endpoints.UploadPart) -> Response:
    length = ctx.decoded_length()
    if length is None and "chunked" not in ctx.headers.get("transfer-encoding", ""):
        raise S3Error("MissingContentLength")
    if length is not None and length > MAX_PART_SIZE:
        raise S3Error("EntityTooLarge")
    md5_expected = checksums.content_md5_expected(ctx.headers)
    sent = _sent_algorithm(ctx.headers)
    upload = await _upload(ctx, ep)
    part = await _store_part(ctx, upload, ep.part_number, ctx.body(), sent=sent, md5_expected=md5_expected)
    return Response(200, [("etag", f'"{part.etag}"'), *_checksum_headers(part)])


async def upload_part_copy(ctx: RequestContext, ep: endpoints.UploadPartCopy) -> Response:
    upload = await _upload(ctx, ep)
    src = ep.source
    objects = base.layer(ctx)
    info, view = await base.objects_extra.open_copy_source(ctx, src, ep.source_conditions)
    start, end = 0, info.size - 1
    if ep.source_range is not None:
        start, end = ep.source_range
        ranges.check_copy_source_range(start, end, info.size)
    if end - start + 1 > MAX_PART_SIZE:
        raise S3Error("InvalidRequest", "The specified copy source is larger than the maximum allowable size for a "
                                        "copy source: 5368709120")

    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""  # an async generator that yields nothing

    body = objects.stream_object(src.bucket, src.key, view, start, end) if end >= start else nothing()
    part = await _store_part(ctx, upload, ep.part_number, body, sent=None, md5_expected=None)
    headers = [XML, *_checksum_headers(part)]
    if info.version_id and info.version_id != "null":
        headers.append(("x-amz-copy-source-version-id", info.version_id))
    return Response(200, headers, xml.copy_part_result(part.etag, _when(part.mod_time_ns)))


async def list_parts(ctx: RequestContext, ep: endpoints.ListParts) -> Response:
    upload = await _upload(ctx, ep)
    parts = [q.info for q in await base.layer(ctx).multipart(ep.key).list_parts(upload)
             if q.info.number > ep.part_number_marker]
    page = parts[: ep.max_parts]
    truncated = len(parts) > len(page)
    who = base.owner(ctx) if not upload.owner else _owner_of(upload.owner)
    body = xml.list_parts(
        bucket=ep.bucket, key=ep.key, upload_id=ep.upload_id, initiator=who, owner=who,
        storage_class=upload.system_meta.get(base.STORAGE_CLASS_KEY, "STANDARD"),
        part_number_marker=ep.part_number_marker,
        next_part_number_marker=page[-1].number if page else None, max_parts=ep.max_parts,
        is_truncated=truncated, checksum_algorithm=upload.checksum_algorithm,
        parts=[xml.PartEntry(p.number, _when(p.mod_time_ns), p.etag, p.size, dict(p.checksums)) for p in page],
    )
    return Response(200, [XML], body)


def _when(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def _owner_of(access_key: str) -> tuple[str, str]:
    """The (ID, DisplayName) S3 shows for a user, as `handlers.owner` derives it."""
    return hashlib.sha256(access_key.encode()).hexdigest(), access_key


async def list_multipart_uploads(ctx: RequestContext, ep: endpoints.ListMultipartUploads) -> Response:
    uploads = await base.layer(ctx).list_multipart_uploads(ep.bucket, ep.prefix)
    key_marker = ep.key_marker.encode()
    entries: list[xml.UploadEntry] = []
    prefixes: list[str] = []
    truncated = False
    last: tuple[str, str | None] | None = None
    for u in uploads:
        k = u.key.encode()
        if ep.key_marker:
            if ep.delimiter and ep.key_marker.endswith(ep.delimiter) and u.key.startswith(ep.key_marker):
                continue
            if k < key_marker or (k == key_marker and (not ep.upload_id_marker or u.upload_id <= ep.upload_id_marker)):
                continue
        common = None
        if ep.delimiter:
            cut = u.key.find(ep.delimiter, len(ep.prefix))
            if cut >= 0:
                common = u.key[: cut + len(ep.delimiter)]
        if common is not None and prefixes and prefixes[-1] == common:
            continue
        if len(entries) + len(prefixes) >= ep.max_uploads:
            truncated = True
            break
        if common is not None:
            prefixes.append(common)
            last = (common, None)
        else:
            who = _owner_of(u.owner)
            entries.append(xml.UploadEntry(u.key, u.upload_id, _when(u.initiated_ns), who, who,
                                           u.system_meta.get(base.STORAGE_CLASS_KEY, "STANDARD"),
                                           u.checksum_algorithm))
            last = (u.key, u.upload_id)
    body = xml.list_multipart_uploads(
        bucket=ep.bucket, prefix=ep.prefix, delimiter=ep.delimiter, key_marker=ep.key_marker,
        upload_id_marker=ep.upload_id_marker, next_key_marker=last[0] if truncated and last else None,
        next_upload_id_marker=last[1] if truncated and last else None, max_uploads=ep.max_uploads,
        encoding_type=ep.encoding_type, is_truncated=truncated, uploads=entries, common_prefixes=prefixes,
    )
    return Response(200, [XML], body)


# --- complete -----------------------------------------------------------------------------------


def _object_checksums(
    upload: Upload, requested: dict[int, dict[str, str]]
) -> Callable[[list[PartInfo]], dict[str, str]]:
    """The function that computes the object's checksums from its chosen parts (see module docstring)."""

    def compute(parts: list[PartInfo]) -> dict[str, str]:
        for p in parts:
            for name, value in requested.get(p.number, {}).items():
                if p.checksums.get(name.upper()) != value:
                    raise InvalidPart(f"part {p.number}: its {name} checksum does not match")
        algorithm, kind = upload.checksum_algorithm, upload.checksum_type
        if algorithm is None or kind is None:
            return {}
        if any(algorithm not in p.checksums for p in parts):
            raise InvalidPart(f"a part has no {algorithm} checksum")
        digests = [checksums.decode_value(algorithm, p.checksums[algorithm]) for p in parts]
        if kind == "FULL_OBJECT":
            value = base64.b64encode(checksums.combine_crc(algorithm, [
                (d, p.size) for d, p in zip(digests, parts, strict=True)])).decode()
        else:
            value = checksums.composite(algorithm, digests)
        return {checksums.header_name(algorithm): value, CHECKSUM_TYPE_KEY: kind}

    return compute


async def complete_multipart_upload(ctx: RequestContext, ep: endpoints.CompleteMultipartUpload) -> Response:
    requested = xml.parse_complete_multipart_upload(await ctx.read_all())
    upload = await _upload(ctx, ep)
    opts = PutOptions()

    def precondition(current: ObjectInfo | None) -> None:
        conditions.check_write_conditions(ctx.headers, current_etag=current.etag if current else None)

    if "if-match" in ctx.headers or "if-none-match" in ctx.headers:
        opts.precondition = precondition
        try:
            current: ObjectInfo | None = await base.layer(ctx).get_object_info(ep.bucket, ep.key)
        except ObjectNotFound:
            current = None
        precondition(current)
    cfg = await base.bucket_config.config(ctx, ep.bucket)
    info = await base.layer(ctx).multipart(ep.key).complete(
        upload, [(n, etag) for n, etag, _ in requested], opts,
        _object_checksums(upload, {n: sums for n, _, sums in requested}),
        versioned=cfg.versioning == VERSIONING_ENABLED)
    host = ctx.headers.get("host", "localhost")
    location = f"http://{host}/{quote(ep.bucket)}/{quote(ep.key)}"
    sums = {name: value for name, value in info.system_meta.items()
            if name.startswith(checksums.HEADER_PREFIX) and name != CHECKSUM_TYPE_KEY}
    headers = [XML]
    if info.version_id and info.version_id != "null":
        headers.append(("x-amz-version-id", info.version_id))
    if CHECKSUM_TYPE_KEY in info.system_meta:
        headers.append((CHECKSUM_TYPE_KEY, info.system_meta[CHECKSUM_TYPE_KEY]))
    return Response(200, headers, xml.complete_multipart_upload(location, ep.bucket, ep.key, info.etag, sums))


HANDLERS: dict[type, base.Handler] = {
    endpoints.CreateMultipartUpload: create_multipart_upload,
    endpoints.UploadPart: upload_part,
    endpoints.UploadPartCopy: upload_part_copy,
    endpoints.CompleteMultipartUpload: complete_multipart_upload,
    endpoints.AbortMultipartUpload: abort_multipart_upload,
    endpoints.ListParts: list_parts,
    endpoints.ListMultipartUploads: list_multipart_uploads,
}

"""Bucket configuration handlers: versioning, tags, CORS (including preflight and response headers),
and ListObjectVersions.

Contract: each handler takes a parsed endpoint and answers as S3 does; configuration is read and
written through `ObjectLayer.bucket_meta` (quorum-stored with the bucket, cached per worker for at
most a second, see `cluster/bucket_meta.py`). `cors_headers` gives the Access-Control-* headers a
normal response carries when the request's Origin matches a rule of the bucket; it never fails the
request it decorates.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from appliance.cluster.bucket_meta import BucketConfig
from appliance.engine.errors import EngineError
from appliance.http.context import RequestContext, Response
from appliance.s3 import checksums, endpoints, xml
from appliance.s3.errors import S3Error

XML = ("content-type", "application/xml")
CORS_VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"


def _layer(ctx: RequestContext) -> Any:
    assert ctx.layer is not None
    return ctx.layer


async def config(ctx: RequestContext, bucket: str) -> BucketConfig:
    """The bucket's configuration; `BucketNotFound` when there is no such bucket."""
    result: BucketConfig = await _layer(ctx).bucket_meta.get(bucket)
    return result


async def _xml_body(ctx: RequestContext) -> bytes:
    body = await ctx.read_all()
    md5_expected = checksums.content_md5_expected(ctx.headers)
    if md5_expected is not None and hashlib.md5(body).digest() != md5_expected:
        raise S3Error("BadDigest")
    return body


# --- versioning ---------------------------------------------------------------------------------


async def get_bucket_versioning(ctx: RequestContext, ep: endpoints.GetBucketVersioning) -> Response:
    cfg = await config(ctx, ep.bucket)
    return Response(200, [XML], xml.versioning(cfg.versioning))


async def put_bucket_versioning(ctx: RequestContext, ep: endpoints.PutBucketVersioning) -> Response:
    status = xml.parse_versioning(await _xml_body(ctx))
    await _layer(ctx).bucket_meta.update(ep.bucket, lambda c: dataclasses.replace(c, versioning=status))
    return Response(200)


# --- bucket tagging -----------------------------------------------------------------------------


async def get_bucket_tagging(ctx: RequestContext, ep: endpoints.GetBucketTagging) -> Response:
    cfg = await config(ctx, ep.bucket)
    if cfg.tags is None:
        raise S3Error("NoSuchTagSet", BucketName=ep.bucket)
    return Response(200, [XML], xml.tagging(cfg.tags))


async def put_bucket_tagging(ctx: RequestContext, ep: endpoints.PutBucketTagging) -> Response:
    tags = xml.parse_tagging(await _xml_body(ctx), bucket=True)
    await _layer(ctx).bucket_meta.update(ep.bucket, lambda c: dataclasses.replace(c, tags=tags))
    return Response(204)


async def delete_bucket_tagging(ctx: RequestContext, ep: endpoints.DeleteBucketTagging) -> Response:
    await _layer(ctx).bucket_meta.update(ep.bucket, lambda c: dataclasses.replace(c, tags=None))
    return Response(204)


# --- CORS ---------------------------------------------------------------------------------------


def _rule_to_map(rule: xml.CorsRule) -> dict[str, Any]:
    return {
        "id": rule.id, "allowed_origins": list(rule.allowed_origins), "allowed_methods": list(rule.allowed_methods),
        "allowed_headers": list(rule.allowed_headers), "expose_headers": list(rule.expose_headers),
        "max_age_seconds": rule.max_age_seconds,
    }


def _rule_from_map(doc: dict[str, Any]) -> xml.CorsRule:
    return xml.CorsRule(
        allowed_origins=tuple(doc.get("allowed_origins", ())), allowed_methods=tuple(doc.get("allowed_methods", ())),
        allowed_headers=tuple(doc.get("allowed_headers", ())), expose_headers=tuple(doc.get("expose_headers", ())),
        max_age_seconds=doc.get("max_age_seconds"), id=doc.get("id"),
    )


def cors_rules(cfg: BucketConfig) -> list[xml.CorsRule]:
    return [_rule_from_map(doc) for doc in cfg.cors or []]


async def get_bucket_cors(ctx: RequestContext, ep: endpoints.GetBucketCors) -> Response:
    cfg = await config(ctx, ep.bucket)
    if cfg.cors is None:
        raise S3Error("NoSuchCORSConfiguration", BucketName=ep.bucket)
    return Response(200, [XML], xml.cors(cors_rules(cfg)))


async def put_bucket_cors(ctx: RequestContext, ep: endpoints.PutBucketCors) -> Response:
    rules = [_rule_to_map(r) for r in xml.parse_cors(await _xml_body(ctx))]
    await _layer(ctx).bucket_meta.update(ep.bucket, lambda c: dataclasses.replace(c, cors=rules))
    return Response(200)


async def delete_bucket_cors(ctx: RequestContext, ep: endpoints.DeleteBucketCors) -> Response:
    await _layer(ctx).bucket_meta.update(ep.bucket, lambda c: dataclasses.replace(c, cors=None))
    return Response(204)


def wildcard_match(pattern: str, value: str, *, fold: bool = False) -> bool:
    """S3's CORS match: `pattern` may hold one `*`, which stands for any run of characters."""
    if fold:
        pattern, value = pattern.lower(), value.lower()
    head, star, tail = pattern.partition("*")
    if not star:
        return pattern == value
    return len(value) >= len(head) + len(tail) and value.startswith(head) and value.endswith(tail)


def match_rule(
    rules: list[xml.CorsRule], origin: str, method: str, request_headers: tuple[str, ...] = ()
) -> xml.CorsRule | None:
    """The first rule allowing `origin`, `method` and every one of `request_headers` (AWS: first match wins)."""
    for rule in rules:
        if method not in rule.allowed_methods:
            continue
        if not any(wildcard_match(o, origin) for o in rule.allowed_origins):
            continue
        if all(any(wildcard_match(h, name, fold=True) for h in rule.allowed_headers) for name in request_headers):
            return rule
    return None


def _allow_origin(rule: xml.CorsRule, origin: str) -> list[tuple[str, str]]:
    if "*" in rule.allowed_origins:
        return [("access-control-allow-origin", "*")]
    return [("access-control-allow-origin", origin), ("access-control-allow-credentials", "true")]


def _rule_headers(rule: xml.CorsRule, origin: str) -> list[tuple[str, str]]:
    headers = _allow_origin(rule, origin)
    headers.append(("access-control-allow-methods", ", ".join(rule.allowed_methods)))
    if rule.expose_headers:
        headers.append(("access-control-expose-headers", ", ".join(rule.expose_headers)))
    if rule.max_age_seconds is not None:
        headers.append(("access-control-max-age", str(rule.max_age_seconds)))
    return headers


async def cors_preflight(ctx: RequestContext, ep: endpoints.CorsPreflight) -> Response:
    cfg = await config(ctx, ep.bucket)
    rule = match_rule(cors_rules(cfg), ep.origin, ep.method, ep.request_headers)
    if rule is None:
        raise S3Error("AccessForbidden", "CORSResponse: This CORS request is not allowed. This is usually because "
                      "the evalution of Origin, request method / Access-Control-Request-Method or "
                      "Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.", status=403)
    headers = _rule_headers(rule, ep.origin)
    if ep.request_headers:
        headers.append(("access-control-allow-headers", ", ".join(ep.request_headers)))
    headers.append(("vary", CORS_VARY))
    return Response(200, headers)


async def cors_headers(ctx: RequestContext, bucket: str) -> list[tuple[str, str]]:
    """Access-Control-* headers for a response to a request carrying Origin; [] when no rule matches."""
    origin = ctx.headers.get("origin")
    if not origin or not bucket:
        return []
    try:
        cfg = await config(ctx, bucket)
    except EngineError:  # the bucket is gone or unreadable: the response itself already says so
        return []
    rule = match_rule(cors_rules(cfg), origin, ctx.method)
    if rule is None:
        return []
    return [*_rule_headers(rule, origin), ("vary", CORS_VARY)]


async def error_cors_headers(ctx: RequestContext) -> list[tuple[str, str]]:
    """The Access-Control-* headers of an error response, as AWS adds them to a 403 or a 404 too.

    A failed preflight carries none, and neither does a request that named no bucket.
    """
    if ctx.layer is None or isinstance(ctx.endpoint, endpoints.CorsPreflight):
        return []
    try:
        return await cors_headers(ctx, getattr(ctx.endpoint, "bucket", ""))
    except S3Error:  # a malformed bucket name: the error response itself already says so
        return []


# --- ListObjectVersions -------------------------------------------------------------------------


async def list_object_versions(ctx: RequestContext, ep: endpoints.ListObjectVersions) -> Response:
    if ep.version_id_marker and not ep.key_marker:
        raise S3Error("InvalidArgument", "A version-id marker cannot be specified without a key marker.",
                      ArgumentName="version-id-marker", ArgumentValue=ep.version_id_marker)
    page = await _layer(ctx).list_versions(
        ep.bucket, prefix=ep.prefix, delimiter=ep.delimiter, key_marker=ep.key_marker,
        version_id_marker=ep.version_id_marker, max_keys=ep.max_keys,
    )
    user = ctx.auth.access_key if ctx.auth else ""
    who = (hashlib.sha256(user.encode()).hexdigest(), user)
    rows = [
        xml.VersionEntry(
            key=v.key, version_id=v.version_id, is_latest=v.is_latest, last_modified=v.last_modified, etag=v.etag,
            size=v.size, storage_class=v.system_meta.get("x-amz-storage-class", "STANDARD"), owner=who,
            delete_marker=v.delete_marker,
        )
        for v in page.versions
    ]
    body = xml.list_object_versions(
        bucket=ep.bucket, prefix=ep.prefix, delimiter=ep.delimiter, key_marker=ep.key_marker,
        version_id_marker=ep.version_id_marker, next_key_marker=page.next_key_marker,
        next_version_id_marker=page.next_version_id_marker, max_keys=ep.max_keys, encoding_type=ep.encoding_type,
        is_truncated=page.is_truncated, versions=rows, common_prefixes=page.prefixes,
    )
    return Response(200, [XML], body)


HANDLERS: dict[type, Any] = {
    endpoints.GetBucketVersioning: get_bucket_versioning,
    endpoints.PutBucketVersioning: put_bucket_versioning,
    endpoints.GetBucketTagging: get_bucket_tagging,
    endpoints.PutBucketTagging: put_bucket_tagging,
    endpoints.DeleteBucketTagging: delete_bucket_tagging,
    endpoints.GetBucketCors: get_bucket_cors,
    endpoints.PutBucketCors: put_bucket_cors,
    endpoints.DeleteBucketCors: delete_bucket_cors,
    endpoints.CorsPreflight: cors_preflight,
    endpoints.ListObjectVersions: list_object_versions,
}

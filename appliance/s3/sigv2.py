"""AWS Signature Version 2 for S3 (HMAC-SHA1): header and presigned-URL authentication, sans-IO.

Contract: `authenticate()` returns None when the request carries no V2 authentication, an
`AuthResult` (payload_mode UNSIGNED-PAYLOAD, empty signing key and scope) when the signature
verifies, and raises `S3Error` otherwise. The string to sign is built the way botocore's
`HmacV1Auth` builds it, which is what S3 expects: header values are stripped but not collapsed,
the resource is the path exactly as sent, and sub-resource values are percent-decoded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import unquote

from appliance.s3.errors import S3Error
from appliance.s3.sigv4 import (
    UNSIGNED_PAYLOAD,
    AuthResult,
    check_skew,
    format_amz_date,
    lookup_access_key,
    parse_amz_date,
    parse_http_date,
    query_pairs,
    signature_mismatch,
    signatures_equal,
    utc_now,
)

# Query parameters that name a sub-resource and so are part of the signed resource. This is the
# union of the list in the S3 V2 documentation and the one botocore signs, so both kinds of
# client verify.
SUB_RESOURCES = frozenset(
    {
        "accelerate", "acl", "analytics", "cors", "defaultObjectAcl", "delete", "inventory", "lifecycle",
        "location", "logging", "metrics", "notification", "object-lock", "partNumber", "policy",
        "replication", "requestPayment", "restore", "select", "select-type", "storageClass", "tagging",
        "torrent", "uploadId", "uploads", "versionId", "versioning", "versions", "website",
        "response-cache-control", "response-content-disposition", "response-content-encoding",
        "response-content-language", "response-content-type", "response-expires",
    }
)
_QUERY_AUTH_REQUIRED = "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters"


def sign_string(secret: str, string_to_sign: str) -> str:
    """The base64 HMAC-SHA1 of `string_to_sign`, as V2 signatures are written."""
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def canonical_resource(raw_path: str, query_string: str, vhost_bucket: str | None = None) -> str:
    """`/bucket/key` as sent, then the sub-resources sorted by name with decoded values."""
    resource = (f"/{vhost_bucket}" if vhost_bucket else "") + raw_path
    subs = []
    for item in query_string.split("&"):
        name, sep, value = item.partition("=")
        if name in SUB_RESOURCES:
            subs.append((name, f"{name}={unquote(value)}" if sep else name))
    subs.sort(key=lambda sub: sub[0])
    if subs:
        resource += "?" + "&".join(text for _, text in subs)
    return resource


def v2_result(access_key: str, signature: str, *, presigned: bool) -> AuthResult:
    """What a verified V2 signature (header, query or POST form) yields: no signing key, no scope."""
    return AuthResult(
        access_key=access_key,
        payload_mode=UNSIGNED_PAYLOAD,
        presigned=presigned,
        signature=signature,
        signing_key=b"",
        amz_date="",
        scope="",
    )


def string_to_sign(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    date: str,
    *,
    vhost_bucket: str | None = None,
    query_headers: Mapping[str, str] | None = None,
) -> str:
    """The V2 string to sign; `query_headers` are header values a presigned URL carries as parameters."""
    fields = dict(query_headers or {})
    fields.update(headers)
    amz = sorted((name, value.strip()) for name, value in fields.items() if name.startswith("x-amz-"))
    lines = [method, fields.get("content-md5", "").strip(), fields.get("content-type", "").strip(), date]
    lines.extend(f"{name}:{value}" for name, value in amz)
    lines.append(canonical_resource(raw_path, query_string, vhost_bucket))
    return "\n".join(lines)


def authenticate(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    lookup_secret: Callable[[str], str | None],
    *,
    now: datetime | None = None,
    vhost_bucket: str | None = None,
) -> AuthResult | None:
    """Verify a V2 Authorization header or a V2 presigned URL; None when neither is present."""
    moment = utc_now(now)
    authorization = headers.get("authorization")
    if authorization is not None and authorization.startswith("AWS "):
        return _authenticate_header(
            method, raw_path, query_string, headers, authorization, lookup_secret, moment, vhost_bucket
        )
    params = dict(reversed(query_pairs(query_string)))
    if "Signature" in params or "AWSAccessKeyId" in params:
        return _authenticate_query(method, raw_path, query_string, headers, params, lookup_secret, moment,
                                   vhost_bucket)
    return None


def _authenticate_header(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    authorization: str,
    lookup_secret: Callable[[str], str | None],
    now: datetime,
    vhost_bucket: str | None,
) -> AuthResult:
    access_key, sep, provided = authorization[len("AWS "):].strip().rpartition(":")
    if not sep or not access_key or not provided:
        raise S3Error(
            "InvalidArgument",
            "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
            ArgumentName="Authorization",
            ArgumentValue=authorization,
        )
    amz_date = headers.get("x-amz-date")
    if amz_date is not None:
        request_time = parse_http_date(amz_date) or parse_amz_date(amz_date)
    else:
        request_time = parse_http_date(headers.get("date", ""))
    if request_time is None:
        raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
    check_skew(request_time, now)
    secret = lookup_access_key(access_key, lookup_secret)
    if amz_date is None:
        candidates = [string_to_sign(method, raw_path, query_string, headers, headers.get("date", "").strip(),
                                     vhost_bucket=vhost_bucket)]
    else:
        # x-amz-date replaces Date. The SDKs sign an empty Date line and x-amz-date among the amz
        # headers; AWS's own documented example moves its value to the Date line instead. Both
        # bind the same request, so both are accepted.
        without = {name: value for name, value in headers.items() if name != "x-amz-date"}
        candidates = [
            string_to_sign(method, raw_path, query_string, headers, "", vhost_bucket=vhost_bucket),
            string_to_sign(method, raw_path, query_string, without, amz_date.strip(), vhost_bucket=vhost_bucket),
        ]
    if not any(signatures_equal(sign_string(secret, sts), provided) for sts in candidates):
        raise signature_mismatch(access_key, candidates[0], provided)
    return AuthResult(
        access_key=access_key,
        payload_mode=UNSIGNED_PAYLOAD,
        presigned=False,
        signature=provided,
        signing_key=b"",
        amz_date=format_amz_date(request_time),
        scope="",
    )


def _authenticate_query(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    params: Mapping[str, str],
    lookup_secret: Callable[[str], str | None],
    now: datetime,
    vhost_bucket: str | None,
) -> AuthResult:
    access_key = params.get("AWSAccessKeyId", "")
    provided = params.get("Signature", "")
    expires = params.get("Expires", "")
    if not (access_key and provided and expires):
        raise S3Error("AccessDenied", _QUERY_AUTH_REQUIRED)
    if not expires.isdigit():
        raise S3Error("AccessDenied", f"Invalid date (should be seconds since epoch): {expires}")
    if now.timestamp() > int(expires):
        raise S3Error(
            "AccessDenied",
            "Request has expired",
            Expires=datetime.fromtimestamp(int(expires), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            ServerTime=now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    secret = lookup_access_key(access_key, lookup_secret)
    # A V2 presigned URL carries the signed x-amz-*, Content-MD5 and Content-Type values as query
    # parameters; a header actually sent takes precedence, so it must match what was signed.
    query_headers = {
        name.lower(): value
        for name, value in params.items()
        if name.lower().startswith("x-amz-") or name.lower() in ("content-md5", "content-type")
    }
    sts = string_to_sign(
        method, raw_path, query_string, headers, expires, vhost_bucket=vhost_bucket, query_headers=query_headers
    )
    if not signatures_equal(sign_string(secret, sts), provided):
        raise signature_mismatch(access_key, sts, provided)
    return v2_result(access_key, provided, presigned=True)

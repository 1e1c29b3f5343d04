"""AWS Signature Version 4 for S3: header and presigned-URL authentication, sans-IO.

Contract: `authenticate()` takes a request exactly as received (method, percent-encoded path, raw
query, lower-case headers) and either returns None (the request carries no authentication at all),
returns an `AuthResult` naming the caller, or raises `S3Error` with the code AWS would send. It
never reads the body: the caller verifies the payload against `AuthResult.payload_mode` (a sha256,
UNSIGNED-PAYLOAD, or a STREAMING-* mode handed to `appliance.s3.chunked`). Signature V2 requests
are recognised here and verified by `appliance.s3.sigv2`.

The canonical request follows S3's rules, not the generic SigV4 ones: the path is decoded and
re-encoded once (no double encoding, no dot-segment normalisation), and every `x-amz-*` header
present must be signed, so a presigned URL cannot be widened by adding headers to it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_to_bytes

from appliance.s3.errors import S3Error

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
PAYLOAD_MODES = (UNSIGNED_PAYLOAD, STREAMING_UNSIGNED_TRAILER, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER)
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_SKEW = timedelta(minutes=15)
MAX_EXPIRES = 7 * 24 * 3600

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)
_CREDENTIAL_SHAPE = 'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
_NO_DATE = "AWS authentication requires a valid Date or x-amz-date header"
_PRESIGN_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date",
                   "X-Amz-SignedHeaders", "X-Amz-Expires")


@dataclass(frozen=True)
class AuthResult:
    """Who signed a request and how its body is to be checked.

    `presigned` is true when the signature was made in advance of the request (query string or
    POST policy) rather than carried in its Authorization header. V2 results have an empty
    `signing_key` and `scope`; a V2 presigned result has an empty `amz_date`.
    """

    access_key: str
    payload_mode: str
    presigned: bool
    signature: str
    # Derived from the secret: kept out of repr so that logging a result cannot leak it.
    signing_key: bytes = field(repr=False)
    amz_date: str
    scope: str


@dataclass(frozen=True)
class Credential:
    """The parts of `AKID/YYYYMMDD/region/service/aws4_request`."""

    access_key: str
    date: str
    region: str
    service: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{TERMINATOR}"


def derive_signing_key(secret: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """The SigV4 signing key for one day, region and service (`date` is YYYYMMDD)."""
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign_string(signing_key: bytes, string_to_sign: str) -> str:
    """The lower-case hex HMAC-SHA256 of `string_to_sign` under a derived signing key."""
    return hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def signatures_equal(expected: str, provided: str) -> bool:
    """Constant-time comparison that tolerates non-ASCII garbage in the provided value."""
    return hmac.compare_digest(expected.encode(), provided.encode("utf-8", "replace"))


def uri_encode(raw: bytes, *, keep_slash: bool) -> str:
    """S3's URI encoding: every byte but A-Za-z0-9-._~ (and '/' in paths) as upper-case %XX."""
    return quote(raw, safe="/" if keep_slash else "")


def query_pairs(query_string: str) -> list[tuple[str, str]]:
    """Decoded (name, value) pairs of a raw query string, in order.

    '+' decodes to a space, as in HTML forms; an item without '=' has an empty value.
    """
    pairs = []
    for item in query_string.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((_decode_query_part(name), _decode_query_part(value)))
    return pairs


def _decode_query_part(part: str) -> str:
    return unquote_to_bytes(part.replace("+", " ")).decode("utf-8", "surrogateescape")


def _encode_query_part(part: str) -> str:
    return uri_encode(part.encode("utf-8", "surrogateescape"), keep_slash=False)


def canonical_uri(raw_path: str) -> str:
    """The path decoded once and re-encoded with S3's rules."""
    return uri_encode(unquote_to_bytes(raw_path), keep_slash=True) or "/"


def canonical_query(query_string: str, *, exclude: str | None = None) -> str:
    """Every query pair re-encoded, sorted by encoded name then value; `exclude` is left out."""
    encoded = sorted(
        (_encode_query_part(name), _encode_query_part(value))
        for name, value in query_pairs(query_string)
        if name != exclude
    )
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_headers(headers: Mapping[str, str], signed: list[str]) -> str:
    """`name:value\\n` for each signed header, values trimmed and inner whitespace collapsed."""
    return "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed)


def format_amz_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(AMZ_DATE_FORMAT)


def parse_amz_date(value: str) -> datetime | None:
    """An ISO 8601 basic timestamp (20130524T000000Z) as an aware datetime, or None if malformed."""
    if not _AMZ_DATE.fullmatch(value):
        return None
    try:
        return datetime.strptime(value, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def parse_http_date(value: str) -> datetime | None:
    """An RFC 7231 Date header as an aware datetime, or None if malformed."""
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def utc_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def check_skew(request_time: datetime, now: datetime) -> None:
    """RequestTimeTooSkewed when the request's clock is more than 15 minutes from ours."""
    if abs(request_time - now) > MAX_SKEW:
        raise S3Error(
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
            RequestTime=request_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            ServerTime=now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            MaxAllowedSkewMilliseconds=str(int(MAX_SKEW.total_seconds() * 1000)),
        )


def parse_credential(value: str, *, amz_date: str, region: str, code: str, prefix: str) -> Credential:
    """Split and check a credential; errors use `code` and start with `prefix`, as AWS words them."""
    parts = value.rsplit("/", 4)
    if len(parts) != 5 or not all(parts):
        raise S3Error(code, prefix + _CREDENTIAL_SHAPE)
    credential = Credential(parts[0], parts[1], parts[2], parts[3])
    if parts[4] != TERMINATOR:
        raise S3Error(code, f'{prefix}incorrect terminal "{parts[4]}". This endpoint uses "{TERMINATOR}".')
    if credential.service != SERVICE:
        raise S3Error(
            code, f'{prefix}incorrect service "{credential.service}". This endpoint belongs to "{SERVICE}".'
        )
    if credential.region != region:
        raise S3Error(
            code, f"{prefix}the region '{credential.region}' is wrong; expecting '{region}'", Region=region
        )
    if credential.date != amz_date[:8]:
        raise S3Error(
            code,
            f'{prefix}Invalid credential date "{credential.date}". '
            f'This date is not the same as X-Amz-Date: "{amz_date[:8]}".',
        )
    return credential


def lookup_access_key(access_key: str, lookup_secret: Callable[[str], str | None]) -> str:
    secret = lookup_secret(access_key)
    if secret is None:
        raise S3Error(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            AWSAccessKeyId=access_key,
        )
    return secret


def signature_mismatch(
    access_key: str, string_to_sign: str, provided: str, canonical_request: str | None = None
) -> S3Error:
    """SignatureDoesNotMatch with the details AWS includes so a client author can debug it."""
    error = S3Error(
        "SignatureDoesNotMatch",
        _SIGNATURE_MISMATCH,
        AWSAccessKeyId=access_key,
        StringToSign=string_to_sign,
        SignatureProvided=provided,
    )
    if canonical_request is not None:
        error.extra["CanonicalRequest"] = canonical_request
    return error


def authenticate(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    lookup_secret: Callable[[str], str | None],
    *,
    now: datetime | None = None,
    region: str = "us-east-1",
    vhost_bucket: str | None = None,
) -> AuthResult | None:
    """Authenticate a request signed with SigV4 or SigV2; None when it carries no authentication.

    `vhost_bucket` is the bucket named by the Host header of a virtual-hosted-style request; only
    SigV2 needs it, because its string to sign names the bucket even when the path does not.
    """
    params = dict(reversed(query_pairs(query_string)))
    authorization = headers.get("authorization")
    mechanisms = [
        authorization is not None,
        "X-Amz-Algorithm" in params,
        "Signature" in params or "AWSAccessKeyId" in params,
    ]
    if sum(mechanisms) > 1:
        raise S3Error(
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
            "string parameter or the Authorization header should be specified",
            ArgumentName="Authorization",
            ArgumentValue=authorization or "null",
        )
    moment = utc_now(now)
    if authorization is not None and authorization.startswith(ALGORITHM + " "):
        return _authenticate_header(method, raw_path, query_string, headers, lookup_secret, moment, region)
    if authorization is not None and not authorization.startswith("AWS "):
        raise S3Error(
            "InvalidArgument",
            "Unsupported Authorization Type",
            ArgumentName="Authorization",
            ArgumentValue=authorization,
        )
    if mechanisms[1]:
        return _authenticate_query(method, raw_path, query_string, params, headers, lookup_secret, moment, region)
    if not any(mechanisms):
        return None
    # sigv2 builds on this module's types, so it is imported here rather than at the top.
    from appliance.s3 import sigv2

    return sigv2.authenticate(
        method, raw_path, query_string, headers, lookup_secret, now=moment, vhost_bucket=vhost_bucket
    )


def _parse_authorization(value: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in value[len(ALGORITHM):].split(","):
        name, sep, field_value = item.strip().partition("=")
        if sep:
            fields[name.strip()] = field_value.strip()
    if not all(fields.get(name) for name in ("Credential", "SignedHeaders", "Signature")):
        raise S3Error(
            "AuthorizationHeaderMalformed",
            "The authorization header is malformed; the authorization header requires three components: "
            "Credential, SignedHeaders, and Signature.",
        )
    return fields


def _payload_mode(value: str) -> str:
    if value in PAYLOAD_MODES:
        return value
    if _SHA256_HEX.fullmatch(value):
        return value.lower()
    raise S3Error(
        "InvalidArgument",
        "x-amz-content-sha256 must be " + ", ".join(PAYLOAD_MODES) + " or a valid sha256 value.",
        ArgumentName="x-amz-content-sha256",
        ArgumentValue=value,
    )


def _signed_header_names(value: str, headers: Mapping[str, str]) -> list[str]:
    names = [name.strip().lower() for name in value.split(";") if name.strip()]
    unsigned = sorted(
        name for name in headers if (name == "host" or name.startswith("x-amz-")) and name not in names
    )
    if "host" not in names and "host" not in unsigned:
        unsigned.insert(0, "host")
    if unsigned:
        raise S3Error(
            "AccessDenied",
            "There were headers present in the request which were not signed",
            HeadersNotSigned=", ".join(unsigned),
        )
    return names


def _verify(
    method: str,
    raw_path: str,
    canonical_query_string: str,
    headers: Mapping[str, str],
    signed: list[str],
    payload: str,
    amz_date: str,
    credential: Credential,
    provided: str,
    lookup_secret: Callable[[str], str | None],
) -> bytes:
    """Check the signature and return the signing key it was made with."""
    secret = lookup_access_key(credential.access_key, lookup_secret)
    canonical_request = "\n".join(
        [
            method,
            canonical_uri(raw_path),
            canonical_query_string,
            canonical_headers(headers, signed),
            ";".join(signed),
            payload,
        ]
    )
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, credential.scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    signing_key = derive_signing_key(secret, credential.date, credential.region, credential.service)
    if not signatures_equal(sign_string(signing_key, string_to_sign), provided):
        raise signature_mismatch(
            credential.access_key, string_to_sign, provided, canonical_request
        )
    return signing_key


def _authenticate_header(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    lookup_secret: Callable[[str], str | None],
    now: datetime,
    region: str,
) -> AuthResult:
    fields = _parse_authorization(headers["authorization"])
    content_sha256 = headers.get("x-amz-content-sha256")
    if content_sha256 is None:
        raise S3Error("InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
    payload_mode = _payload_mode(content_sha256)
    if "x-amz-date" in headers:
        amz_date = headers["x-amz-date"]
        request_time = parse_amz_date(amz_date)
    else:
        request_time = parse_http_date(headers.get("date", ""))
        amz_date = format_amz_date(request_time) if request_time else ""
    if request_time is None:
        raise S3Error("AccessDenied", _NO_DATE)
    credential = parse_credential(
        fields["Credential"],
        amz_date=amz_date,
        region=region,
        code="AuthorizationHeaderMalformed",
        prefix="The authorization header is malformed; ",
    )
    signed = _signed_header_names(fields["SignedHeaders"], headers)
    check_skew(request_time, now)
    signing_key = _verify(
        method, raw_path, canonical_query(query_string), headers, signed, content_sha256, amz_date, credential,
        fields["Signature"], lookup_secret,
    )
    return AuthResult(
        access_key=credential.access_key,
        payload_mode=payload_mode,
        presigned=False,
        signature=fields["Signature"],
        signing_key=signing_key,
        amz_date=amz_date,
        scope=credential.scope,
    )


def _query_error(message: str) -> S3Error:
    return S3Error("AuthorizationQueryParametersError", message)


def _authenticate_query(
    method: str,
    raw_path: str,
    query_string: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    lookup_secret: Callable[[str], str | None],
    now: datetime,
    region: str,
) -> AuthResult:
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise _query_error(f'X-Amz-Algorithm only supports "{ALGORITHM}"')
    if not all(params.get(name) for name in _PRESIGN_PARAMS):
        raise _query_error(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
            "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
        )
    amz_date = params["X-Amz-Date"]
    request_time = parse_amz_date(amz_date)
    if request_time is None:
        raise _query_error("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    expires_text = params["X-Amz-Expires"]
    if not expires_text.lstrip("-").isdigit():
        raise _query_error("X-Amz-Expires should be a number")
    expires = int(expires_text)
    if expires < 0:
        raise _query_error("X-Amz-Expires must be non-negative")
    if expires > MAX_EXPIRES:
        raise _query_error(f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES}")
    if expires == 0:
        raise _query_error(f"X-Amz-Expires must be between 1 and {MAX_EXPIRES} seconds")
    credential = parse_credential(
        params["X-Amz-Credential"],
        amz_date=amz_date,
        region=region,
        code="AuthorizationQueryParametersError",
        prefix="Error parsing the X-Amz-Credential parameter; ",
    )
    if request_time - now > MAX_SKEW:
        raise S3Error("AccessDenied", "Request is not valid yet")
    deadline = request_time + timedelta(seconds=expires)
    if now > deadline:
        expired = S3Error("AccessDenied", "Request has expired")
        # Element names with hyphens cannot be keyword arguments.
        expired.extra.update(
            {
                "X-Amz-Expires": expires_text,
                "Expires": deadline.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "ServerTime": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
        raise expired
    signed = _signed_header_names(params["X-Amz-SignedHeaders"], headers)
    content_sha256 = params.get("X-Amz-Content-Sha256", headers.get("x-amz-content-sha256", UNSIGNED_PAYLOAD))
    payload_mode = _payload_mode(content_sha256)
    signing_key = _verify(
        method, raw_path, canonical_query(query_string, exclude="X-Amz-Signature"), headers, signed,
        content_sha256, amz_date, credential, params["X-Amz-Signature"], lookup_secret,
    )
    return AuthResult(
        access_key=credential.access_key,
        payload_mode=payload_mode,
        presigned=True,
        signature=params["X-Amz-Signature"],
        signing_key=signing_key,
        amz_date=amz_date,
        scope=credential.scope,
    )

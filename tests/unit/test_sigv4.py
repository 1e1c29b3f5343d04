"""SigV4 authentication: AWS's published S3 vectors, botocore round trips, and every way to fail."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import botocore.auth
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from appliance.s3 import sigv4
from appliance.s3.errors import S3Error

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SECRETS = {AK: SK, "AKIDROUNDTRIP": "rt/secret+key=="}
lookup = SECRETS.get
EMPTY = hashlib.sha256(b"").hexdigest()
VECTOR_NOW = datetime(2013, 5, 24, 0, 5, tzinfo=UTC)
HOST = "examplebucket.s3.amazonaws.com"


def authorization(signed_headers: str, signature: str, scope: str = "20130524/us-east-1/s3/aws4_request") -> str:
    return f"AWS4-HMAC-SHA256 Credential={AK}/{scope},SignedHeaders={signed_headers},Signature={signature}"


# From "Authenticating Requests: Using the Authorization Header (AWS Signature Version 4)".
# id, method, raw path, query, headers (without authorization), signed headers, signature
AWS_VECTORS = [
    (
        "get-object-range", "GET", "/test.txt", "",
        {"host": HOST, "range": "bytes=0-9", "x-amz-content-sha256": EMPTY, "x-amz-date": "20130524T000000Z"},
        "host;range;x-amz-content-sha256;x-amz-date",
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    ),
    (
        "put-object", "PUT", "/test$file.text", "",
        {
            "host": HOST,
            "date": "Fri, 24 May 2013 00:00:00 GMT",
            "x-amz-date": "20130524T000000Z",
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
            "x-amz-content-sha256": hashlib.sha256(b"Welcome to Amazon S3.").hexdigest(),
        },
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    ),
    (
        "get-bucket-lifecycle", "GET", "/", "lifecycle",
        {"host": HOST, "x-amz-content-sha256": EMPTY, "x-amz-date": "20130524T000000Z"},
        "host;x-amz-content-sha256;x-amz-date",
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
    ),
    (
        "list-objects", "GET", "/", "max-keys=2&prefix=J",
        {"host": HOST, "x-amz-content-sha256": EMPTY, "x-amz-date": "20130524T000000Z"},
        "host;x-amz-content-sha256;x-amz-date",
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
    ),
    (
        # "Signature Calculations for the Authorization Header: Transferring Payload in Multiple Chunks".
        "chunked-upload-seed", "PUT", "/examplebucket/chunkObject.txt", "",
        {
            "host": "s3.amazonaws.com",
            "x-amz-date": "20130524T000000Z",
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "content-encoding": "aws-chunked",
            "x-amz-decoded-content-length": "66560",
            "content-length": "66824",
        },
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
        "x-amz-storage-class",
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
    ),
]
PRESIGNED_QUERY = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2F"
    "aws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature="
    "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
)


def vector(name: str) -> tuple[str, str, str, dict[str, str]]:
    row = next(r for r in AWS_VECTORS if r[0] == name)
    headers = dict(row[4])
    headers["authorization"] = authorization(row[5], row[6])
    return row[1], row[2], row[3], headers


@pytest.mark.parametrize(("name", "method", "path", "query", "headers", "signed", "signature"), AWS_VECTORS,
                         ids=[r[0] for r in AWS_VECTORS])
def test_aws_vectors(
    name: str, method: str, path: str, query: str, headers: dict[str, str], signed: str, signature: str
) -> None:
    result = sigv4.authenticate(method, path, query, {**headers, "authorization": authorization(signed, signature)},
                                lookup, now=VECTOR_NOW)
    assert result is not None
    assert result.access_key == AK
    assert result.signature == signature
    assert result.payload_mode == headers["x-amz-content-sha256"]
    assert not result.presigned
    assert result.amz_date == "20130524T000000Z"
    assert result.scope == "20130524/us-east-1/s3/aws4_request"
    assert result.signing_key == sigv4.derive_signing_key(SK, "20130524", "us-east-1")


def test_aws_presigned_vector() -> None:
    result = sigv4.authenticate("GET", "/test.txt", PRESIGNED_QUERY, {"host": HOST}, lookup, now=VECTOR_NOW)
    assert result is not None
    assert result.presigned
    assert result.payload_mode == "UNSIGNED-PAYLOAD"
    assert result.signature == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"


def test_signature_helpers_match_the_documented_key() -> None:
    # The chunked-upload example lists its seed string to sign; signing it must give the seed signature.
    key = sigv4.derive_signing_key(SK, "20130524", "us-east-1")
    string_to_sign = (
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
        "cee3fed04b70f867d036f722359b0b1f2f0e5dc0efadbc082b76c4c60e316455"
    )
    assert sigv4.sign_string(key, string_to_sign) == "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"


def test_anonymous_request_is_none() -> None:
    assert sigv4.authenticate("GET", "/b/k", "prefix=x", {"host": HOST}, lookup) is None


def test_sigv2_header_is_dispatched() -> None:
    headers = {"host": "awsexamplebucket1.s3.amazonaws.com", "date": "Tue, 27 Mar 2007 19:36:42 +0000",
               "authorization": f"AWS {AK}:qgk2+6Sv9/oM7G3qLEjTH1a1l1g="}
    result = sigv4.authenticate("GET", "/photos/puppy.jpg", "", headers, lookup,
                                now=datetime(2007, 3, 27, 19, 40, tzinfo=UTC), vhost_bucket="awsexamplebucket1")
    assert result is not None and result.access_key == AK and result.signing_key == b""


CANONICAL_URIS = [
    ("/", "/"),
    ("", "/"),
    ("/test$file.text", "/test%24file.text"),
    ("/b/a%20b", "/b/a%20b"),
    ("/b/a+b", "/b/a%2Bb"),
    ("/b/a%2Bb", "/b/a%2Bb"),
    ("/b/a%2bb", "/b/a%2Bb"),
    ("/b/~x", "/b/~x"),
    ("/b/%7Ex", "/b/~x"),
    ("/b//x/./../y", "/b//x/./../y"),
    ("/b/a%2Fb", "/b/a/b"),
    ("/b/%D0%BA", "/b/%D0%BA"),
    ("/b/%25", "/b/%25"),
]


@pytest.mark.parametrize(("raw", "canonical"), CANONICAL_URIS)
def test_canonical_uri(raw: str, canonical: str) -> None:
    assert sigv4.canonical_uri(raw) == canonical


CANONICAL_QUERIES = [
    ("", ""),
    ("acl", "acl="),
    ("prefix=J&max-keys=2", "max-keys=2&prefix=J"),
    ("a=2&a=1&b", "a=1&a=2&b="),
    ("k=a+b", "k=a%20b"),
    ("k=a%2Bb", "k=a%2Bb"),
    ("k=%2f~", "k=%2F~"),
    ("k=/", "k=%2F"),
    ("k=%C3%BC", "k=%C3%BC"),
    ("&&x=1&&", "x=1"),
]


@pytest.mark.parametrize(("raw", "canonical"), CANONICAL_QUERIES)
def test_canonical_query(raw: str, canonical: str) -> None:
    assert sigv4.canonical_query(raw) == canonical


# --- round trips through real botocore ---------------------------------------------------------


class Captured(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def _raise_captured(request: Any, **_: Any) -> None:
    raise Captured(request)


@pytest.fixture(params=["default", "python"])
def signer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run client round trips with botocore's default signers (CRT ones when awscrt is installed)
    and with its pure-Python ones."""
    if request.param == "python":
        monkeypatch.setitem(botocore.auth.AUTH_TYPE_MAPS, "s3v4", S3SigV4Auth)
        monkeypatch.setitem(botocore.auth.AUTH_TYPE_MAPS, "s3v4-query", S3SigV4QueryAuth)
    return str(request.param)


def client(region: str = "us-east-1") -> Any:
    """A boto3 S3 client whose requests are captured instead of sent."""
    s3 = boto3.client(
        "s3",
        endpoint_url="https://s3.example.test",
        region_name=region,
        aws_access_key_id="AKIDROUNDTRIP",
        aws_secret_access_key=SECRETS["AKIDROUNDTRIP"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    s3.meta.events.register("before-send.s3", _raise_captured)
    return s3


def wire(request: Any) -> tuple[str, str, str, dict[str, str]]:
    """What the server sees of a prepared botocore request: method, raw path, raw query, headers."""
    url = urlsplit(request.url)
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        text = value.decode() if isinstance(value, bytes) else value
        headers[name.lower()] = f"{headers[name.lower()]},{text}" if name.lower() in headers else text
    headers.setdefault("host", url.netloc)
    return request.method, url.path, url.query, headers


def captured(call: Callable[[], object]) -> Any:
    with pytest.raises(Captured) as info:
        call()
    return info.value.request


KEYS = ["plain.txt", "ключ/файл.txt", "with space.txt", "a+b=c&d.txt", "tilde~x", "double//slash", "dot/./x/../y",
        "percent%2Fx", "emoji😀", "!$'()*,;:@[]"]


@pytest.mark.parametrize("key", KEYS)
def test_botocore_client_put_object(signer: str, key: str) -> None:
    request = captured(lambda: client().put_object(Bucket="bkt", Key=key, Body=b"hello", Metadata={"m": " a  b "},
                                                   ChecksumAlgorithm="SHA256"))
    method, path, query, headers = wire(request)
    result = sigv4.authenticate(method, path, query, headers, lookup)
    assert result is not None and result.access_key == "AKIDROUNDTRIP"


QUERIES: list[dict[str, Any]] = [
    {"Prefix": "a b+c~ü", "Delimiter": "/"},
    {"Prefix": "%41&=", "StartAfter": "ключ", "MaxKeys": 7},
    {"Prefix": "", "ContinuationToken": "tok/en+=="},
]


@pytest.mark.parametrize("params", QUERIES)
def test_botocore_client_list_objects(signer: str, params: dict[str, Any]) -> None:
    method, path, query, headers = wire(captured(lambda: client().list_objects_v2(Bucket="bkt", **params)))
    result = sigv4.authenticate(method, path, query, headers, lookup)
    assert result is not None and result.payload_mode == EMPTY


@pytest.mark.parametrize("key", KEYS)
def test_botocore_presigned_get(signer: str, key: str) -> None:
    url = urlsplit(client().generate_presigned_url(
        "get_object", Params={"Bucket": "bkt", "Key": key, "ResponseContentDisposition": "attachment; a=b+c"},
        ExpiresIn=600,
    ))
    result = sigv4.authenticate("GET", url.path, url.query, {"host": url.netloc}, lookup)
    assert result is not None and result.presigned and result.payload_mode == "UNSIGNED-PAYLOAD"


def test_botocore_presigned_put_with_signed_metadata(signer: str) -> None:
    url = urlsplit(client().generate_presigned_url(
        "put_object", Params={"Bucket": "bkt", "Key": "k", "Metadata": {"who": "me"}}, ExpiresIn=600
    ))
    headers = {"host": url.netloc, "x-amz-meta-who": "me"}
    assert sigv4.authenticate("PUT", url.path, url.query, headers, lookup) is not None
    with pytest.raises(S3Error) as info:
        sigv4.authenticate("PUT", url.path, url.query, {**headers, "x-amz-meta-who": "you"}, lookup)
    assert info.value.code == "SignatureDoesNotMatch"


# Direct use of the pure-Python signers (the client above may use the CRT ones when awscrt is present).
DIRECT = [
    ("GET", "/bkt/%D0%BA%D0%BB%D1%8E%D1%87%20x", [("prefix", "a b"), ("acl", "")], {}, b""),
    ("PUT", "/bkt/a%2Bb/~c", [], {"x-amz-meta-x": "  spaced   out  ", "content-type": "text/plain"}, b"data"),
    ("POST", "/bkt/k", [("uploads", "")], {"x-amz-acl": "private"}, b""),
    ("DELETE", "/bkt//k", [("versionId", "3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo")], {},
     b""),
]


@pytest.mark.parametrize(("method", "path", "params", "headers", "body"), DIRECT)
def test_botocore_s3sigv4auth(
    method: str, path: str, params: list[tuple[str, str]], headers: dict[str, str], body: bytes
) -> None:
    request = AWSRequest(method=method, url=f"http://s3.example.test{path}", params=params, headers=headers,
                         data=body)
    S3SigV4Auth(Credentials("AKIDROUNDTRIP", SECRETS["AKIDROUNDTRIP"]), "s3", "us-east-1").add_auth(request)
    method, raw_path, query, wire_headers = wire(request.prepare())
    result = sigv4.authenticate(method, raw_path, query, wire_headers, lookup)
    assert result is not None and result.payload_mode == hashlib.sha256(body).hexdigest()


def test_botocore_s3sigv4queryauth() -> None:
    request = AWSRequest(method="GET", url="https://s3.example.test/bkt/a%20b", params={"versionId": "x y"})
    S3SigV4QueryAuth(Credentials("AKIDROUNDTRIP", SECRETS["AKIDROUNDTRIP"]), "s3", "us-east-1",
                     expires=60).add_auth(request)
    method, raw_path, query, headers = wire(request.prepare())
    result = sigv4.authenticate(method, raw_path, query, headers, lookup)
    assert result is not None and result.presigned


# --- tampering: every signed part of a real request ---------------------------------------------

Wire = tuple[str, str, str, dict[str, str]]


def _with_header(name: str, value: str | None) -> Callable[[Wire], Wire]:
    def change(w: Wire) -> Wire:
        headers = dict(w[3])
        if value is None:
            del headers[name]
        else:
            headers[name] = value
        return w[0], w[1], w[2], headers

    return change


def _signature_changed(w: Wire) -> Wire:
    auth = w[3]["authorization"]
    last = "0" if auth[-1] != "0" else "1"
    return _with_header("authorization", auth[:-1] + last)(w)


TAMPERED: list[tuple[str, Callable[[Wire], Wire], str]] = [
    ("method", lambda w: ("POST", w[1], w[2], w[3]), "SignatureDoesNotMatch"),
    ("path", lambda w: (w[0], w[1] + "x", w[2], w[3]), "SignatureDoesNotMatch"),
    ("path-case", lambda w: (w[0], w[1].upper(), w[2], w[3]), "SignatureDoesNotMatch"),
    ("query-value", lambda w: (w[0], w[1], w[2].replace("tagging", "acl"), w[3]), "SignatureDoesNotMatch"),
    ("query-added", lambda w: (w[0], w[1], w[2] + "&versionId=1", w[3]), "SignatureDoesNotMatch"),
    ("query-removed", lambda w: (w[0], w[1], "", w[3]), "SignatureDoesNotMatch"),
    ("host", _with_header("host", "evil.example.test"), "SignatureDoesNotMatch"),
    ("meta-value", _with_header("x-amz-meta-m", "other"), "SignatureDoesNotMatch"),
    ("meta-removed", _with_header("x-amz-meta-m", None), "SignatureDoesNotMatch"),
    ("body-hash", _with_header("x-amz-content-sha256", hashlib.sha256(b"other").hexdigest()),
     "SignatureDoesNotMatch"),
    ("body-unsigned", _with_header("x-amz-content-sha256", "UNSIGNED-PAYLOAD"), "SignatureDoesNotMatch"),
    ("date-by-a-second", lambda w: _with_header("x-amz-date", _shift(w[3]["x-amz-date"], 1))(w),
     "SignatureDoesNotMatch"),
    ("signature", _signature_changed, "SignatureDoesNotMatch"),
    ("unsigned-amz-header", _with_header("x-amz-acl", "public-read"), "AccessDenied"),
    ("no-content-sha256", _with_header("x-amz-content-sha256", None), "InvalidRequest"),
    ("bad-content-sha256", _with_header("x-amz-content-sha256", "abc"), "InvalidArgument"),
]


def _shift(amz_date: str, seconds: int) -> str:
    moment = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ") + timedelta(seconds=seconds)
    return moment.strftime("%Y%m%dT%H%M%SZ")


@pytest.mark.parametrize(("change", "code"), [(t[1], t[2]) for t in TAMPERED], ids=[t[0] for t in TAMPERED])
def test_tampered_request(change: Callable[[Wire], Wire], code: str) -> None:
    body = b"<Tagging><TagSet/></Tagging>"
    request = AWSRequest(method="PUT", url="http://s3.example.test/bkt/k%20ey", params={"tagging": ""},
                         headers={"x-amz-meta-m": "v"}, data=body)
    S3SigV4Auth(Credentials("AKIDROUNDTRIP", SECRETS["AKIDROUNDTRIP"]), "s3", "us-east-1").add_auth(request)
    original = wire(request.prepare())
    assert sigv4.authenticate(*original, lookup) is not None
    with pytest.raises(S3Error) as info:
        sigv4.authenticate(*change(original), lookup)
    assert info.value.code == code


# --- header-auth errors on the AWS GET-object vector ---------------------------------------------

GET_OBJECT = vector("get-object-range")
GOOD_AUTH = GET_OBJECT[3]["authorization"]


def _auth_replaced(old: str, new: str) -> dict[str, str]:
    return {**GET_OBJECT[3], "authorization": GOOD_AUTH.replace(old, new)}


HEADER_ERRORS: list[tuple[str, dict[str, str], dict[str, Any], str, dict[str, str]]] = [
    ("skew-ahead", GET_OBJECT[3], {"now": VECTOR_NOW + timedelta(minutes=16)}, "RequestTimeTooSkewed",
     {"MaxAllowedSkewMilliseconds": "900000"}),
    ("skew-behind", GET_OBJECT[3], {"now": VECTOR_NOW - timedelta(minutes=21)}, "RequestTimeTooSkewed", {}),
    ("wrong-region", GET_OBJECT[3], {"region": "eu-west-1"}, "AuthorizationHeaderMalformed",
     {"Region": "eu-west-1"}),
    ("unknown-key", _auth_replaced(AK, "AKIDUNKNOWN"), {}, "InvalidAccessKeyId", {"AWSAccessKeyId": "AKIDUNKNOWN"}),
    ("wrong-service", _auth_replaced("/s3/", "/ec2/"), {}, "AuthorizationHeaderMalformed", {}),
    ("wrong-terminator", _auth_replaced("aws4_request", "aws4_requests"), {}, "AuthorizationHeaderMalformed", {}),
    ("credential-date", _auth_replaced("/20130524/", "/20130523/"), {}, "AuthorizationHeaderMalformed", {}),
    ("short-credential", _auth_replaced(f"{AK}/20130524/", ""), {}, "AuthorizationHeaderMalformed", {}),
    ("no-signature", _auth_replaced(",Signature=", ",Sig="), {}, "AuthorizationHeaderMalformed", {}),
    ("host-unsigned", _auth_replaced("SignedHeaders=host;", "SignedHeaders="), {}, "AccessDenied",
     {"HeadersNotSigned": "host"}),
    ("amz-header-unsigned", _auth_replaced("x-amz-content-sha256;", ""), {}, "AccessDenied",
     {"HeadersNotSigned": "x-amz-content-sha256"}),
    ("no-date", {k: v for k, v in GET_OBJECT[3].items() if k != "x-amz-date"}, {}, "AccessDenied", {}),
    ("bad-date", {**GET_OBJECT[3], "x-amz-date": "2013-05-24T00:00:00Z"}, {}, "AccessDenied", {}),
    ("unsupported-scheme", {**GET_OBJECT[3], "authorization": "Bearer abc"}, {}, "InvalidArgument", {}),
    ("sigv4a", {**GET_OBJECT[3], "authorization": GOOD_AUTH.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256")},
     {}, "InvalidArgument", {}),
]


@pytest.mark.parametrize(("headers", "kwargs", "code", "extra"), [row[1:] for row in HEADER_ERRORS],
                         ids=[row[0] for row in HEADER_ERRORS])
def test_header_auth_errors(headers: dict[str, str], kwargs: dict[str, Any], code: str, extra: dict[str, str]) -> None:
    options: dict[str, Any] = {"now": VECTOR_NOW, **kwargs}
    with pytest.raises(S3Error) as info:
        sigv4.authenticate("GET", "/test.txt", "", headers, lookup, **options)
    assert info.value.code == code
    assert extra.items() <= info.value.extra.items()


def test_wrong_region_message_names_the_expected_region() -> None:
    with pytest.raises(S3Error) as info:
        sigv4.authenticate(*GET_OBJECT, lookup, now=VECTOR_NOW, region="eu-west-1")
    assert "expecting 'eu-west-1'" in info.value.message
    assert info.value.status == 400


def test_skew_just_inside_the_window_is_accepted() -> None:
    request_time = datetime(2013, 5, 24, tzinfo=UTC)
    for now in (request_time + timedelta(minutes=15), request_time - timedelta(minutes=15)):
        assert sigv4.authenticate(*GET_OBJECT, lookup, now=now) is not None


def test_two_mechanisms_are_refused() -> None:
    with pytest.raises(S3Error) as info:
        sigv4.authenticate("GET", "/test.txt", PRESIGNED_QUERY, GET_OBJECT[3], lookup, now=VECTOR_NOW)
    assert info.value.code == "InvalidArgument"


# --- presigned errors on the AWS presigned vector ------------------------------------------------


def _query(**changes: str | None) -> str:
    pairs = [item.split("=", 1) for item in PRESIGNED_QUERY.split("&")]
    out = []
    for name, value in pairs:
        if name in changes:
            if changes[name] is None:
                continue
            value = quote(str(changes[name]), safe="")
        out.append(f"{name}={value}")
    return "&".join(out)


PRESIGNED_ERRORS: list[tuple[str, str, dict[str, str], datetime, str, str]] = [
    ("expired", PRESIGNED_QUERY, {}, VECTOR_NOW + timedelta(days=1, seconds=1), "AccessDenied",
     "Request has expired"),
    ("not-yet-valid", PRESIGNED_QUERY, {}, VECTOR_NOW - timedelta(minutes=21), "AccessDenied",
     "Request is not valid yet"),
    ("expires-over-a-week", _query(**{"X-Amz-Expires": "604801"}), {}, VECTOR_NOW,
     "AuthorizationQueryParametersError", "less than a week"),
    ("expires-zero", _query(**{"X-Amz-Expires": "0"}), {}, VECTOR_NOW, "AuthorizationQueryParametersError", ""),
    ("expires-negative", _query(**{"X-Amz-Expires": "-5"}), {}, VECTOR_NOW, "AuthorizationQueryParametersError",
     "non-negative"),
    ("expires-text", _query(**{"X-Amz-Expires": "soon"}), {}, VECTOR_NOW, "AuthorizationQueryParametersError", ""),
    ("no-signature", _query(**{"X-Amz-Signature": None}), {}, VECTOR_NOW, "AuthorizationQueryParametersError", ""),
    ("algorithm", _query(**{"X-Amz-Algorithm": "AWS4-HMAC-SHA512"}), {}, VECTOR_NOW,
     "AuthorizationQueryParametersError", ""),
    ("bad-date", _query(**{"X-Amz-Date": "20130524"}), {}, VECTOR_NOW, "AuthorizationQueryParametersError", ""),
    ("wrong-region", _query(**{"X-Amz-Credential": f"{AK}/20130524/eu-west-1/s3/aws4_request"}), {}, VECTOR_NOW,
     "AuthorizationQueryParametersError", "expecting 'us-east-1'"),
    ("unknown-key", _query(**{"X-Amz-Credential": "AKIDNOPE/20130524/us-east-1/s3/aws4_request"}), {},
     VECTOR_NOW, "InvalidAccessKeyId", ""),
    ("tampered-expires", _query(**{"X-Amz-Expires": "86401"}), {}, VECTOR_NOW, "SignatureDoesNotMatch", ""),
    ("tampered-query", PRESIGNED_QUERY + "&versionId=1", {}, VECTOR_NOW, "SignatureDoesNotMatch", ""),
    ("unsigned-amz-header", PRESIGNED_QUERY, {"x-amz-acl": "public-read"}, VECTOR_NOW, "AccessDenied",
     "not signed"),
    ("copy-source-smuggled", PRESIGNED_QUERY, {"x-amz-copy-source": "/other/secret"}, VECTOR_NOW, "AccessDenied",
     "not signed"),
]


@pytest.mark.parametrize(("query", "headers", "now", "code", "message"), [row[1:] for row in PRESIGNED_ERRORS],
                         ids=[row[0] for row in PRESIGNED_ERRORS])
def test_presigned_errors(query: str, headers: dict[str, str], now: datetime, code: str, message: str) -> None:
    with pytest.raises(S3Error) as info:
        sigv4.authenticate("GET", "/test.txt", query, {"host": HOST, **headers}, lookup, now=now)
    assert info.value.code == code
    assert message in info.value.message


def test_presigned_tampered_path() -> None:
    with pytest.raises(S3Error) as info:
        sigv4.authenticate("GET", "/test.txu", PRESIGNED_QUERY, {"host": HOST}, lookup, now=VECTOR_NOW)
    assert info.value.code == "SignatureDoesNotMatch"
    assert "CanonicalRequest" in info.value.extra


def test_presigned_last_second_is_accepted() -> None:
    now = VECTOR_NOW - timedelta(minutes=5) + timedelta(seconds=86400)
    assert sigv4.authenticate("GET", "/test.txt", PRESIGNED_QUERY, {"host": HOST}, lookup, now=now) is not None


def test_signing_key_is_not_in_repr() -> None:
    result = sigv4.authenticate(*GET_OBJECT, lookup, now=VECTOR_NOW)
    assert result is not None
    assert "signing_key" not in repr(result)


def test_expired_error_carries_the_aws_details() -> None:
    with pytest.raises(S3Error) as info:
        sigv4.authenticate("GET", "/test.txt", PRESIGNED_QUERY, {"host": HOST}, lookup,
                           now=datetime(2013, 5, 26, tzinfo=UTC))
    assert info.value.extra == {"X-Amz-Expires": "86400", "Expires": "2013-05-25T00:00:00Z",
                                "ServerTime": "2013-05-26T00:00:00Z"}

"""SigV2 authentication: AWS's documented examples, botocore HmacV1 round trips, and failures."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import formatdate, parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.utils import percent_encode_sequence

from appliance.s3 import sigv2, sigv4
from appliance.s3.errors import S3Error

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SECRETS = {AK: SK, "AKIDV2": "v2/secret+key"}
lookup = SECRETS.get
BUCKET = "awsexamplebucket1"
HOST = f"{BUCKET}.s3.us-west-1.amazonaws.com"

# From "Authenticating Requests (AWS Signature Version 2)", virtual-hosted style on awsexamplebucket1.
# id, method, raw path, query, headers (without authorization), signature
AWS_EXAMPLES = [
    ("object-get", "GET", "/photos/puppy.jpg", "", {"date": "Tue, 27 Mar 2007 19:36:42 +0000"},
     "qgk2+6Sv9/oM7G3qLEjTH1a1l1g="),
    ("object-put", "PUT", "/photos/puppy.jpg", "",
     {"date": "Tue, 27 Mar 2007 21:15:45 +0000", "content-type": "image/jpeg", "content-length": "94328"},
     "iqRzw+ileNPu1fhspnRs8nOjjIA="),
    ("list", "GET", "/", "prefix=photos&max-keys=50&marker=puppy",
     {"date": "Tue, 27 Mar 2007 19:42:41 +0000", "user-agent": "Mozilla/5.0"}, "m0WP8eCtspQl5Ahe6L1SozdX9YA="),
    ("fetch-acl", "GET", "/", "acl", {"date": "Tue, 27 Mar 2007 19:44:46 +0000"}, "82ZHiFIjc+WbcwFKGUVEQspPn+0="),
    # Path style, with x-amz-date overriding Date.
    ("delete", "DELETE", "/awsexamplebucket1/photos/puppy.jpg", "",
     {"host": "s3.us-west-1.amazonaws.com", "date": "Tue, 27 Mar 2007 21:20:27 +0000",
      "x-amz-date": "Tue, 27 Mar 2007 21:20:26 +0000", "user-agent": "dotnet"}, "XbyTlbQdu9Xw5o8P4iMwPktxQd8="),
]


@pytest.mark.parametrize(("method", "path", "query", "headers", "signature"), [r[1:] for r in AWS_EXAMPLES],
                         ids=[r[0] for r in AWS_EXAMPLES])
def test_aws_examples(method: str, path: str, query: str, headers: dict[str, str], signature: str) -> None:
    all_headers = {"host": HOST, **headers, "authorization": f"AWS {AK}:{signature}"}
    now = parsedate_to_datetime(headers["date"]) + timedelta(minutes=1)
    vhost = None if path.startswith(f"/{BUCKET}/") else BUCKET
    result = sigv2.authenticate(method, path, query, all_headers, lookup, now=now, vhost_bucket=vhost)
    assert result is not None
    assert result.access_key == AK
    assert result.signature == signature
    assert result.payload_mode == "UNSIGNED-PAYLOAD"
    assert result.signing_key == b"" and not result.presigned
    # The same request dispatched through sigv4.authenticate gives the same answer.
    assert sigv4.authenticate(method, path, query, all_headers, lookup, now=now, vhost_bucket=vhost) == result


RESOURCES = [
    ("/b/k", "", None, "/b/k"),
    ("/k", "", "b", "/b/k"),
    ("/", "", "b", "/b/"),
    ("/b/k", "versionId=3&acl", None, "/b/k?acl&versionId=3"),
    ("/b/k", "uploadId=a%2Fb&partNumber=2&max-parts=5", None, "/b/k?partNumber=2&uploadId=a/b"),
    ("/b/k", "response-content-type=text%2Fplain&x=1", None, "/b/k?response-content-type=text/plain"),
    ("/b/a%20b", "prefix=p", None, "/b/a%20b"),
    ("/b/k", "acl=", None, "/b/k?acl="),
]


@pytest.mark.parametrize(("path", "query", "vhost", "resource"), RESOURCES)
def test_canonical_resource(path: str, query: str, vhost: str | None, resource: str) -> None:
    assert sigv2.canonical_resource(path, query, vhost) == resource


def test_x_amz_date_replaces_date() -> None:
    # As botocore's predecessor and the JavaScript SDK sign it: an empty Date line, x-amz-date as an amz header.
    amz_date = formatdate(time.time(), usegmt=True)
    sts = f"DELETE\n\n\n\nx-amz-date:{amz_date}\nx-amz-meta-a:b\n/b/k"
    headers = {"x-amz-date": amz_date, "date": "Tue, 27 Mar 2007 21:20:27 +0000", "x-amz-meta-a": " b ",
               "authorization": f"AWS AKIDV2:{sigv2.sign_string(SECRETS['AKIDV2'], sts)}"}
    assert sigv2.authenticate("DELETE", "/b/k", "", headers, lookup) is not None


# --- botocore round trips ------------------------------------------------------------------------


def wire(request: Any) -> tuple[str, str, str, dict[str, str]]:
    url = urlsplit(request.url)
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        text = value.decode() if isinstance(value, bytes) else value
        headers[name.lower()] = f"{headers[name.lower()]},{text}" if name.lower() in headers else text
    headers.setdefault("host", url.netloc)
    return request.method, url.path, url.query, headers


ROUND_TRIPS: list[tuple[str, str, dict[str, str], dict[str, str]]] = [
    ("GET", "/bkt/plain.txt", {}, {}),
    ("PUT", "/bkt/%D0%BA%D0%BB%D1%8E%D1%87%20a%2Bb~c",
     {"content-type": "text/plain", "content-md5": "1B2M2Y8AsgTpgAmY7PhCfg==", "x-amz-meta-who": "me",
      "x-amz-acl": "private"}, {}),
    ("GET", "/bkt/k", {}, {"versionId": "v/1+2", "response-content-disposition": "attachment; x=y"}),
    ("PUT", "/bkt/k", {"x-amz-meta-b": "  two  spaces "}, {"uploadId": "up/1", "partNumber": "3"}),
    ("GET", "/bkt", {}, {"prefix": "a b", "delimiter": "/", "acl": ""}),
]


def url(path: str, params: dict[str, str]) -> str:
    """The URL as botocore's serializer builds it: the query is part of what HmacV1 signs."""
    query = percent_encode_sequence(params)
    return f"http://s3.example.test{path}" + (f"?{query}" if query else "")


@pytest.mark.parametrize(("method", "path", "headers", "params"), ROUND_TRIPS)
def test_botocore_hmacv1(method: str, path: str, headers: dict[str, str], params: dict[str, str]) -> None:
    request = AWSRequest(method=method, url=url(path, params), headers=headers)
    HmacV1Auth(Credentials("AKIDV2", SECRETS["AKIDV2"])).add_auth(request)
    result = sigv2.authenticate(*wire(request.prepare()), lookup)
    assert result is not None and result.access_key == "AKIDV2" and not result.presigned


@pytest.mark.parametrize(("method", "path", "headers", "params"), ROUND_TRIPS)
def test_botocore_hmacv1_query(method: str, path: str, headers: dict[str, str], params: dict[str, str]) -> None:
    request = AWSRequest(method=method, url=url(path, params), headers=headers)
    HmacV1QueryAuth(Credentials("AKIDV2", SECRETS["AKIDV2"]), expires=60).add_auth(request)
    method, raw_path, query, _ = wire(request.prepare())
    # A browser follows the URL: none of the signed headers travels as a header.
    result = sigv2.authenticate(method, raw_path, query, {"host": "s3.example.test"}, lookup)
    assert result is not None and result.presigned


class Captured(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def _raise_captured(request: Any, **_: Any) -> None:
    raise Captured(request)


@pytest.mark.parametrize("style", ["path", "virtual"])
@pytest.mark.parametrize("key", ["k", "ключ a+b~c", "dir//x"])
def test_botocore_client_v2(style: str, key: str) -> None:
    s3 = boto3.client(
        "s3", endpoint_url="http://s3.example.test", region_name="us-east-1", aws_access_key_id="AKIDV2",
        aws_secret_access_key=SECRETS["AKIDV2"],
        config=Config(signature_version="s3", s3={"addressing_style": style}, retries={"max_attempts": 1}),
    )
    s3.meta.events.register("before-send.s3", _raise_captured)
    with pytest.raises(Captured) as info:
        s3.put_object(Bucket="bkt", Key=key, Body=b"x", Metadata={"m": "v"}, ACL="private")
    method, path, query, headers = wire(info.value.request)
    vhost = "bkt" if style == "virtual" else None
    assert sigv2.authenticate(method, path, query, headers, lookup, vhost_bucket=vhost) is not None

    url = urlsplit(s3.generate_presigned_url("get_object", Params={"Bucket": "bkt", "Key": key}, ExpiresIn=60))
    result = sigv2.authenticate("GET", url.path, url.query, {"host": url.netloc}, lookup, vhost_bucket=vhost)
    assert result is not None and result.presigned


# --- failures ------------------------------------------------------------------------------------

NOW = datetime.now(UTC)


def signed(method: str = "GET", path: str = "/bkt/k", query: str = "", **headers: str) -> dict[str, str]:
    all_headers = {"host": "s3.example.test", "date": formatdate(NOW.timestamp(), usegmt=True), **headers}
    sts = sigv2.string_to_sign(method, path, query, all_headers, all_headers["date"])
    return {**all_headers, "authorization": f"AWS AKIDV2:{sigv2.sign_string(SECRETS['AKIDV2'], sts)}"}


def presigned(expires: int, path: str = "/bkt/k") -> str:
    sts = sigv2.string_to_sign("GET", path, "", {}, str(expires))
    signature = sigv2.sign_string(SECRETS["AKIDV2"], sts).replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    return f"AWSAccessKeyId=AKIDV2&Expires={expires}&Signature={signature}"


FAILURES: list[tuple[str, str, str, str, dict[str, str], str]] = [
    ("tampered-path", "GET", "/bkt/other", "", signed(), "SignatureDoesNotMatch"),
    ("tampered-method", "PUT", "/bkt/k", "", signed(), "SignatureDoesNotMatch"),
    ("tampered-subresource", "GET", "/bkt/k", "acl", signed(), "SignatureDoesNotMatch"),
    ("tampered-amz-header", "GET", "/bkt/k", "", {**signed(**{"x-amz-acl": "private"}), "x-amz-acl": "public-read"},
     "SignatureDoesNotMatch"),
    ("added-amz-header", "GET", "/bkt/k", "", {**signed(), "x-amz-copy-source": "/a/b"}, "SignatureDoesNotMatch"),
    ("tampered-content-type", "PUT", "/bkt/k", "", {**signed("PUT", **{"content-type": "a/b"}),
                                                   "content-type": "text/html"}, "SignatureDoesNotMatch"),
    ("unknown-key", "GET", "/bkt/k", "", {**signed(), "authorization": "AWS NOPE:abc="}, "InvalidAccessKeyId"),
    ("malformed", "GET", "/bkt/k", "", {**signed(), "authorization": "AWS AKIDV2"}, "InvalidArgument"),
    ("skewed", "GET", "/bkt/k", "",
     {**signed(), "date": formatdate((NOW - timedelta(minutes=16)).timestamp(), usegmt=True)},
     "RequestTimeTooSkewed"),
    ("no-date", "GET", "/bkt/k", "", {k: v for k, v in signed().items() if k != "date"}, "AccessDenied"),
    ("query-expired", "GET", "/bkt/k", presigned(int(time.time()) - 1), {}, "AccessDenied"),
    ("query-tampered", "GET", "/bkt/x", presigned(int(time.time()) + 86400), {}, "SignatureDoesNotMatch"),
    ("query-missing-expires", "GET", "/bkt/k", "AWSAccessKeyId=AKIDV2&Signature=abc", {}, "AccessDenied"),
    ("query-bad-expires", "GET", "/bkt/k", "AWSAccessKeyId=AKIDV2&Signature=abc&Expires=soon", {}, "AccessDenied"),
]


@pytest.mark.parametrize(("method", "path", "query", "headers", "code"), [f[1:] for f in FAILURES],
                         ids=[f[0] for f in FAILURES])
def test_failures(method: str, path: str, query: str, headers: dict[str, str], code: str) -> None:
    with pytest.raises(S3Error) as info:
        # The rows were signed when the module was collected: judge them at that moment, not after
        # however long the rest of the suite took.
        sigv2.authenticate(method, path, query, {"host": "s3.example.test", **headers}, lookup, now=NOW)
    assert info.value.code == code


def test_untampered_controls_pass() -> None:
    assert sigv2.authenticate("GET", "/bkt/k", "", signed(), lookup, now=NOW) is not None
    assert sigv2.authenticate("GET", "/bkt/k", presigned(int(time.time()) + 86400), {}, lookup) is not None


def test_no_v2_authentication_is_none() -> None:
    assert sigv2.authenticate("GET", "/bkt/k", "prefix=a", {"host": "h"}, lookup) is None

"""SigV4 header authentication: what a correct signature allows and how each kind of bad one fails.

Requests are signed by botocore; raw exchanges (tests.functional.rawhttp) show the exact status and
error document for deviations botocore cannot be asked to make (a body swapped after signing).
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable

import pytest

from tests.functional.payloads import body, error_of, status_of
from tests.functional.rawhttp import encode_path, shifted_clock, signed_request
from tests.harness import CairnServer, S3Client

UNSIGNED = "UNSIGNED-PAYLOAD"


def test_wrong_secret(server: CairnServer, bucket: str) -> None:
    client = server.client(secret_key=server.secret_key + "x")
    assert error_of(client.list_buckets) == (403, "SignatureDoesNotMatch")
    assert error_of(lambda: client.put_object(Bucket=bucket, Key="k", Body=b"x")) == (403, "SignatureDoesNotMatch")


def test_unknown_access_key(server: CairnServer, bucket: str) -> None:
    client = server.client(access_key="NOSUCHKEY0000000", secret_key="whatever-secret")
    assert error_of(client.list_buckets) == (403, "InvalidAccessKeyId")
    assert error_of(lambda: client.get_object(Bucket=bucket, Key="k")) == (403, "InvalidAccessKeyId")


def test_anonymous_is_denied(server: CairnServer, s3: S3Client, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="private", Body=b"secret")
    anonymous = server.anonymous_client()
    assert error_of(anonymous.list_buckets) == (403, "AccessDenied")
    assert error_of(lambda: anonymous.get_object(Bucket=bucket, Key="private")) == (403, "AccessDenied")
    assert error_of(lambda: anonymous.put_object(Bucket=bucket, Key="new", Body=b"x")) == (403, "AccessDenied")
    assert error_of(lambda: anonymous.list_objects_v2(Bucket=bucket)) == (403, "AccessDenied")
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="new")) == (404, "404")


@pytest.mark.parametrize("size", [0, 1, 200 * 1024, 3 * 1024 * 1024 + 5])
def test_unsigned_payload_is_accepted(server: CairnServer, bucket: str, size: int) -> None:
    client = server.client(s3={"addressing_style": "path", "payload_signing_enabled": False})
    data = body(size, seed="unsigned")
    assert status_of(client.put_object(Bucket=bucket, Key="u", Body=data)) == 200
    assert client.get_object(Bucket=bucket, Key="u")["Body"].read() == data


def test_raw_unsigned_payload_put(server: CairnServer, s3: S3Client, bucket: str) -> None:
    response = signed_request(server, "PUT", encode_path(bucket, "raw-unsigned"), body=b"hello", payload_hash=UNSIGNED)
    assert response.status == 200, response.body
    assert s3.get_object(Bucket=bucket, Key="raw-unsigned")["Body"].read() == b"hello"


# (what was signed, what was sent, the claimed x-amz-content-sha256): a validly signed request whose
# body does not match the hash it claims.
TAMPERED = [
    ("body swapped after signing", b"hello world", b"hello WORLD", None),
    ("longer body", b"hello", b"hello, and more", None),
    ("claimed hash of other bytes", b"real body", b"real body", hashlib.sha256(b"other").hexdigest()),
    ("claimed empty-body hash", b"not empty", b"not empty", hashlib.sha256(b"").hexdigest()),
]


@pytest.mark.parametrize(("case", "signed", "sent", "claimed"), TAMPERED, ids=[row[0] for row in TAMPERED])
def test_payload_hash_mismatch(server: CairnServer, s3: S3Client, bucket: str, case: str, signed: bytes,
                               sent: bytes, claimed: str | None) -> None:
    key = "tampered"
    response = signed_request(server, "PUT", encode_path(bucket, key), body=signed, send_body=sent,
                              payload_hash=claimed, headers={"Content-Length": str(len(sent))})
    assert response.status == 400, (case, response.status, response.body)
    assert response.error_fields()["Code"] == "XAmzContentSHA256Mismatch"
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key=key)) == (404, "404"), "a rejected PUT left an object"


@pytest.mark.parametrize("minutes", [-20, 20, -24 * 60])
def test_clock_skew(server: CairnServer, bucket: str, minutes: int) -> None:
    client = server.client()
    with shifted_clock(datetime.timedelta(minutes=minutes)):
        assert error_of(client.list_buckets) == (403, "RequestTimeTooSkewed")
        assert error_of(lambda: client.put_object(Bucket=bucket, Key="skewed", Body=b"x")) == (403, "RequestTimeTooSkewed")


def test_small_skew_is_fine(server: CairnServer) -> None:
    client = server.client()
    with shifted_clock(datetime.timedelta(minutes=4)):
        assert status_of(client.list_buckets()) == 200


def test_signature_for_another_region(server: CairnServer, bucket: str) -> None:
    response = signed_request(server, "GET", encode_path(bucket), query=[("list-type", "2")], region="eu-west-1")
    assert response.status == 400, response.body
    assert response.error_fields()["Code"] == "AuthorizationHeaderMalformed"


@pytest.mark.parametrize("header", ["x-amz-meta-a", "Content-Type"])
def test_signed_header_changed_after_signing(server: CairnServer, s3: S3Client, bucket: str, header: str) -> None:
    path = encode_path(bucket, "tampered-header")
    good = signed_request(server, "PUT", path, body=b"x", headers={header: "one"})
    assert good.status == 200, good.body
    response = signed_request(server, "PUT", path, body=b"y", headers={header: "one"}, send_headers={header: "two"})
    assert response.status == 403, response.body
    assert response.error_fields()["Code"] == "SignatureDoesNotMatch"
    assert s3.get_object(Bucket=bucket, Key="tampered-header")["Body"].read() == b"x"


# (method, path builder, expected status, code) for the error document check.
ERROR_DOCUMENTS: list[tuple[str, Callable[[str], str], int, str]] = [
    ("GET", lambda b: encode_path(b, "missing-key"), 404, "NoSuchKey"),
    ("GET", lambda b: encode_path(b + "-absent", "k"), 404, "NoSuchBucket"),
    ("DELETE", lambda b: encode_path(b + "-absent"), 404, "NoSuchBucket"),
]


@pytest.mark.parametrize(("method", "path_of", "status", "code"), ERROR_DOCUMENTS)
def test_error_document(server: CairnServer, bucket: str, method: str, path_of: Callable[[str], str],
                        status: int, code: str) -> None:
    path = path_of(bucket)
    response = signed_request(server, method, path)
    assert response.status == status, response.body
    assert response.headers.get("content-type", "").startswith("application/xml")
    fields = response.error_fields()
    assert fields["Code"] == code
    assert fields["Message"]
    assert fields["Resource"] == path
    assert fields["RequestId"]
    assert fields["RequestId"] == response.headers.get("x-amz-request-id")


def test_error_document_for_bad_signature(server: CairnServer) -> None:
    response = signed_request(server, "GET", "/", secret_key="wrong-secret-key")
    assert response.status == 403
    fields = response.error_fields()
    assert fields["Code"] == "SignatureDoesNotMatch"
    assert fields["Message"] and fields["RequestId"]
    assert fields["RequestId"] == response.headers.get("x-amz-request-id")

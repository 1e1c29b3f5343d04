"""CopyObject, object and bucket tagging, bucket CORS (configuration, preflight, response headers) and
GetObjectAttributes through boto3, the AWS CLI and raw HTTP against a real server.

Browsers never sign an OPTIONS preflight, so those requests go out unsigned with `requests`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.functional.payloads import body, error_of, etag_of
from tests.harness import S3Client, fresh_bucket_name, run_aws, start_server

CORS_RULES = [
    {"AllowedOrigins": ["https://app.example.com"], "AllowedMethods": ["GET", "PUT"],
     "AllowedHeaders": ["x-amz-*", "content-type"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600, "ID": "app"},
    {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]},
]


def enable(s3: S3Client, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


# --- CopyObject ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1000, 3 * 1024 * 1024 + 17])
def test_copy_keeps_bytes_and_metadata(s3: S3Client, bucket: str, size: int) -> None:
    data = body(size, seed="copy")
    s3.put_object(Bucket=bucket, Key="src", Body=data, ContentType="text/x-src", Metadata={"a": "1"},
                  Tagging="t=1")
    result = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert result["CopyObjectResult"]["ETag"] == etag_of(data)
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == data
    assert got["ContentType"] == "text/x-src" and got["Metadata"] == {"a": "1"} and got["TagCount"] == 1


@pytest.mark.parametrize(("directive", "metadata", "tag_directive", "tags"), [
    ("COPY", {"a": "1"}, "COPY", [{"Key": "t", "Value": "1"}]),
    ("REPLACE", {"b": "2"}, "REPLACE", [{"Key": "n", "Value": "v"}]),
    ("REPLACE", {"b": "2"}, "COPY", [{"Key": "t", "Value": "1"}]),
])
def test_copy_directives(s3: S3Client, bucket: str, directive: str, metadata: dict[str, str], tag_directive: str,
                         tags: list[dict[str, str]]) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"data", Metadata={"a": "1"}, Tagging="t=1")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource=f"{bucket}/src", MetadataDirective=directive,
                   Metadata={"b": "2"}, TaggingDirective=tag_directive, Tagging="n=v")
    assert s3.head_object(Bucket=bucket, Key="dst")["Metadata"] == metadata
    assert s3.get_object_tagging(Bucket=bucket, Key="dst")["TagSet"] == tags


def test_copy_onto_itself(s3: S3Client, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"same", Metadata={"old": "1"})
    assert error_of(lambda: s3.copy_object(Bucket=bucket, Key="k", CopySource=f"{bucket}/k")) == (400,
                                                                                                   "InvalidRequest")
    s3.copy_object(Bucket=bucket, Key="k", CopySource=f"{bucket}/k", MetadataDirective="REPLACE",
                   Metadata={"new": "2"})
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"same" and got["Metadata"] == {"new": "2"}


@pytest.mark.parametrize(("header", "matches", "expected"), [
    ("CopySourceIfMatch", True, 200), ("CopySourceIfMatch", False, 412),
    ("CopySourceIfNoneMatch", True, 412), ("CopySourceIfNoneMatch", False, 200),
])
def test_copy_source_conditions(s3: S3Client, bucket: str, header: str, matches: bool, expected: int) -> None:
    put = s3.put_object(Bucket=bucket, Key="src", Body=b"cond")
    etag = put["ETag"] if matches else '"0123456789abcdef0123456789abcdef"'

    def copy() -> Any:
        return s3.copy_object(Bucket=bucket, Key="dst", CopySource=f"{bucket}/src", **{header: etag})

    if expected == 200:
        assert copy()["CopyObjectResult"]["ETag"] == put["ETag"]
    else:
        assert error_of(copy) == (412, "PreconditionFailed")


def test_copy_versioned_source(s3: S3Client, bucket: str) -> None:
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="src", Body=b"first")
    s3.put_object(Bucket=bucket, Key="src", Body=b"second")
    result = s3.copy_object(Bucket=bucket, Key="dst",
                            CopySource={"Bucket": bucket, "Key": "src", "VersionId": v1["VersionId"]})
    assert result["CopySourceVersionId"] == v1["VersionId"] and result["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"first"
    marker = s3.delete_object(Bucket=bucket, Key="src")
    assert error_of(lambda: s3.copy_object(Bucket=bucket, Key="d2", CopySource=f"{bucket}/src")) == (404, "NoSuchKey")
    assert error_of(lambda: s3.copy_object(
        Bucket=bucket, Key="d2", CopySource={"Bucket": bucket, "Key": "src", "VersionId": marker["VersionId"]},
    )) == (400, "InvalidRequest")


# --- object tagging -----------------------------------------------------------------------------


def test_object_tagging_round_trip(s3: S3Client, bucket: str) -> None:
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"tagged", Tagging="a=1&b=two")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == [{"Key": "a", "Value": "1"},
                                                                      {"Key": "b", "Value": "two"}]
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": "c", "Value": "3"}]})
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["TagCount"] == 1 and got["Body"].read() == b"tagged" and got["ETag"] == put["ETag"]
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k")


def test_object_tagging_by_version(s3: S3Client, bucket: str) -> None:
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"1")["VersionId"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"2")
    done = s3.put_object_tagging(Bucket=bucket, Key="k", VersionId=v1,
                                 Tagging={"TagSet": [{"Key": "old", "Value": "yes"}]})
    assert done["VersionId"] == v1
    assert s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=v1)["TagSet"] == [{"Key": "old", "Value": "yes"}]
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    s3.delete_object(Bucket=bucket, Key="k")
    assert error_of(lambda: s3.get_object_tagging(Bucket=bucket, Key="k")) == (404, "NoSuchKey")


@pytest.mark.parametrize(("tagging", "code"), [
    ({"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]}, "BadRequest"),
    ({"TagSet": [{"Key": "aws:x", "Value": "v"}]}, "InvalidTag"),
])
def test_object_tagging_refused(s3: S3Client, bucket: str, tagging: dict[str, Any], code: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert error_of(lambda: s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagging)) == (400, code)


# --- bucket tagging -----------------------------------------------------------------------------


def test_bucket_tagging(s3: S3Client, bucket: str) -> None:
    assert error_of(lambda: s3.get_bucket_tagging(Bucket=bucket)) == (404, "NoSuchTagSet")
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "team", "Value": "storage"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "team", "Value": "storage"}]
    s3.delete_bucket_tagging(Bucket=bucket)
    assert error_of(lambda: s3.get_bucket_tagging(Bucket=bucket)) == (404, "NoSuchTagSet")


def test_bucket_tagging_awscli(server: Any, bucket: str) -> None:
    run_aws(server, "s3api", "put-bucket-tagging", "--bucket", bucket,
            "--tagging", "TagSet=[{Key=env,Value=test}]")
    got = json.loads(run_aws(server, "s3api", "get-bucket-tagging", "--bucket", bucket).stdout)
    assert got["TagSet"] == [{"Key": "env", "Value": "test"}]


# --- CORS ---------------------------------------------------------------------------------------


def test_bucket_cors_configuration(s3: S3Client, bucket: str) -> None:
    assert error_of(lambda: s3.get_bucket_cors(Bucket=bucket)) == (404, "NoSuchCORSConfiguration")
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": CORS_RULES})
    rules = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert rules[0]["ID"] == "app" and rules[0]["MaxAgeSeconds"] == 600 and rules[1]["AllowedOrigins"] == ["*"]
    s3.delete_bucket_cors(Bucket=bucket)
    assert error_of(lambda: s3.get_bucket_cors(Bucket=bucket)) == (404, "NoSuchCORSConfiguration")


PREFLIGHTS = [
    # origin, method, requested headers, status, Access-Control-Allow-Origin
    ("https://app.example.com", "PUT", "x-amz-meta-a, Content-Type", 200, "https://app.example.com"),
    ("https://app.example.com", "DELETE", "", 403, None),
    ("https://app.example.com", "PUT", "authorization", 403, None),
    ("https://other.example.org", "GET", "", 200, "*"),
    ("https://other.example.org", "PUT", "", 403, None),
]


@pytest.mark.parametrize(("origin", "method", "request_headers", "status", "allow_origin"), PREFLIGHTS)
def test_cors_preflight(server: Any, s3: S3Client, bucket: str, origin: str, method: str, request_headers: str,
                        status: int, allow_origin: str | None) -> None:
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": CORS_RULES})
    headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if request_headers:
        headers["Access-Control-Request-Headers"] = request_headers
    response = requests.options(f"{server.endpoint}/{bucket}/some/key", headers=headers, timeout=10)
    assert response.status_code == status
    assert response.headers.get("Access-Control-Allow-Origin") == allow_origin
    if status == 200 and allow_origin != "*":
        assert response.headers["Access-Control-Allow-Methods"] == "GET, PUT"
        assert response.headers["Access-Control-Max-Age"] == "600"
        assert response.headers["Access-Control-Allow-Headers"] == "x-amz-meta-a, content-type"
    if status == 403:
        assert "AccessForbidden" in response.text


def test_cors_preflight_without_configuration(server: Any, bucket: str) -> None:
    response = requests.options(f"{server.endpoint}/{bucket}",
                                headers={"Origin": "https://a.example", "Access-Control-Request-Method": "GET"},
                                timeout=10)
    assert response.status_code == 403


def test_cors_headers_on_normal_responses(s3: S3Client, bucket: str) -> None:
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": CORS_RULES})
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    seen: dict[str, str] = {}

    def add_origin(request: Any, **kwargs: Any) -> None:
        request.headers["Origin"] = "https://app.example.com"

    def keep(http_response: Any, **kwargs: Any) -> None:
        seen.update({k.lower(): v for k, v in http_response.headers.items()})

    s3.meta.events.register("before-sign.s3.GetObject", add_origin)
    s3.meta.events.register("after-call.s3.GetObject", keep)
    try:
        s3.get_object(Bucket=bucket, Key="k")["Body"].read()
    finally:
        s3.meta.events.unregister("before-sign.s3.GetObject", add_origin)
        s3.meta.events.unregister("after-call.s3.GetObject", keep)
    assert seen["access-control-allow-origin"] == "https://app.example.com"
    assert seen["access-control-expose-headers"] == "ETag"
    assert "Origin" in seen["vary"]


CORS_ERRORS = [
    # method, signed by a presigned URL, origin, status, code, Access-Control-Allow-Origin
    ("GET", False, "https://app.example.com", 403, "AccessDenied", "https://app.example.com"),
    ("GET", True, "https://app.example.com", 404, "NoSuchKey", "https://app.example.com"),
    ("GET", True, "https://other.example.org", 404, "NoSuchKey", "*"),
    ("PUT", False, "https://app.example.com", 403, "AccessDenied", "https://app.example.com"),
    ("DELETE", False, "https://app.example.com", 403, "AccessDenied", None),
    ("GET", True, None, 404, "NoSuchKey", None),
]


@pytest.mark.parametrize(("method", "presigned", "origin", "status", "code", "allow_origin"), CORS_ERRORS)
def test_cors_headers_on_error_responses(server: Any, s3: S3Client, bucket: str, method: str, presigned: bool,
                                         origin: str | None, status: int, code: str,
                                         allow_origin: str | None) -> None:
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": CORS_RULES})
    url = f"{server.endpoint}/{bucket}/missing"
    if presigned:
        operation = {"GET": "get_object", "PUT": "put_object", "DELETE": "delete_object"}[method]
        url = s3.generate_presigned_url(operation, Params={"Bucket": bucket, "Key": "missing"}, ExpiresIn=60)
    headers = {"Origin": origin} if origin else {}
    response = requests.request(method, url, headers=headers, data=b"x" if method == "PUT" else None, timeout=10)
    assert response.status_code == status and f"<Code>{code}</Code>" in response.text
    assert response.headers.get("Access-Control-Allow-Origin") == allow_origin
    if allow_origin == "https://app.example.com":
        assert response.headers["Access-Control-Expose-Headers"] == "ETag"
        assert "Origin" in response.headers["Vary"]


def test_no_cors_headers_for_a_missing_bucket(server: Any) -> None:
    response = requests.get(f"{server.endpoint}/no-such-bucket-cors/k", headers={"Origin": "https://a.example"},
                            timeout=10)
    assert response.status_code in (403, 404) and "Access-Control-Allow-Origin" not in response.headers


def test_cors_change_seen_by_every_worker(tmp_path: Path) -> None:
    server = start_server(tmp_path, drives=4, workers=2)
    try:
        s3 = server.client()
        bucket = fresh_bucket_name()
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": CORS_RULES})
        time.sleep(1.2)  # the documented bound: each worker caches a bucket's configuration for 1 s
        for _ in range(8):  # new connections spread over both workers
            response = requests.options(f"{server.endpoint}/{bucket}/k", timeout=10,
                                        headers={"Origin": "https://x.example", "Access-Control-Request-Method": "GET",
                                                 "Connection": "close"})
            assert response.status_code == 200
    finally:
        server.close()


# --- GetObjectAttributes ------------------------------------------------------------------------


def test_get_object_attributes(s3: S3Client, bucket: str) -> None:
    data = b"attributes"
    put = s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm="SHA256", StorageClass="STANDARD")
    got = s3.get_object_attributes(Bucket=bucket, Key="k",
                                   ObjectAttributes=["ETag", "Checksum", "ObjectSize", "StorageClass"])
    assert got["ETag"] == put["ETag"].strip('"')
    assert got["ObjectSize"] == len(data) and got["StorageClass"] == "STANDARD"
    assert got["Checksum"]["ChecksumSHA256"] == put["ChecksumSHA256"]
    assert "ObjectParts" not in got


def test_get_object_attributes_versioned(s3: S3Client, bucket: str) -> None:
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"12345")["VersionId"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"1")
    got = s3.get_object_attributes(Bucket=bucket, Key="k", VersionId=v1, ObjectAttributes=["ObjectSize"])
    assert got["ObjectSize"] == 5 and got["VersionId"] == v1


def test_get_object_attributes_multipart(s3: S3Client, bucket: str) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    sizes = [5 * 1024 * 1024, 5 * 1024 * 1024, 100]
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=n,
                                                      Body=body(size, seed=n))["ETag"]}
             for n, size in enumerate(sizes, start=1)]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={"Parts": parts})
    got = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts", "ObjectSize"],
                                   MaxParts=2)
    assert got["ObjectSize"] == sum(sizes)
    object_parts = got["ObjectParts"]
    assert object_parts["TotalPartsCount"] == 3 and object_parts["IsTruncated"] is True
    assert [p["Size"] for p in object_parts["Parts"]] == sizes[:2]
    rest = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"],
                                    PartNumberMarker=object_parts["NextPartNumberMarker"])
    assert [p["PartNumber"] for p in rest["ObjectParts"]["Parts"]] == [3]


def test_copy_multipart_source(s3: S3Client, bucket: str) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    data = [body(5 * 1024 * 1024, seed="p1"), body(1234, seed="p2")]
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=n,
                                                      Body=chunk)["ETag"]}
             for n, chunk in enumerate(data, start=1)]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={"Parts": parts})
    result = s3.copy_object(Bucket=bucket, Key="copy", CopySource=f"{bucket}/mp")
    assert result["CopyObjectResult"]["ETag"] == etag_of(b"".join(data))
    assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == b"".join(data)

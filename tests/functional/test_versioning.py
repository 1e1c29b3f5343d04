"""Bucket versioning through boto3 and the AWS CLI against a real server.

Covers the versioning states (never, Enabled, Suspended), version ids on PUT, delete markers, GET /
HEAD / DELETE by version id with their exact status codes and headers, ListObjectVersions with its
pagination, DeleteObjects reporting markers, BucketNotEmpty for a bucket holding only versions, and
a versioned object read back after half the drives lost it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.functional.payloads import body, error_of, etag_of, status_of
from tests.harness import S3Client, fresh_bucket_name, run_aws, start_server


def enable(s3: S3Client, bucket: str, status: str = "Enabled") -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def headers_of(exc: ClientError) -> dict[str, str]:
    return dict(exc.response["ResponseMetadata"]["HTTPHeaders"])


def client_error(call: Any) -> ClientError:
    with pytest.raises(ClientError) as info:
        call()
    return info.value


def versions_of(s3: S3Client, bucket: str, **kwargs: Any) -> list[tuple[str, str, bool, bool]]:
    """(key, version id, is latest, delete marker) rows of every page, in the server's order."""
    rows: list[tuple[str, str, bool, bool]] = []
    page = s3.list_object_versions(Bucket=bucket, **kwargs)
    while True:
        entries = [(v, False) for v in page.get("Versions", [])] + [(m, True) for m in page.get("DeleteMarkers", [])]
        # boto3 splits versions and markers; restore the wire order (key, then newest first).
        entries.sort(key=lambda e: (e[0]["Key"].encode(), -e[0]["LastModified"].timestamp()))
        rows += [(e["Key"], e["VersionId"], e["IsLatest"], marker) for e, marker in entries]
        if not page["IsTruncated"]:
            return rows
        page = s3.list_object_versions(Bucket=bucket, KeyMarker=page["NextKeyMarker"],
                                       VersionIdMarker=page.get("NextVersionIdMarker", ""), **kwargs)


@pytest.mark.parametrize(("status", "expected"), [(None, None), ("Enabled", "Enabled"), ("Suspended", "Suspended")])
def test_get_bucket_versioning(s3: S3Client, bucket: str, status: str | None, expected: str | None) -> None:
    if status:
        enable(s3, bucket, status)
    got = s3.get_bucket_versioning(Bucket=bucket)
    assert got.get("Status") == expected


def test_enabled_versions_markers_and_reads(s3: S3Client, bucket: str) -> None:
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two")
    assert v1["VersionId"] != v2["VersionId"] and len(v1["VersionId"]) == 36
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    old = s3.get_object(Bucket=bucket, Key="k", VersionId=v1["VersionId"])
    assert old["Body"].read() == b"one" and old["VersionId"] == v1["VersionId"]
    assert s3.head_object(Bucket=bucket, Key="k", VersionId=v1["VersionId"])["ETag"] == etag_of(b"one")

    marker = s3.delete_object(Bucket=bucket, Key="k")
    assert marker["DeleteMarker"] is True and marker["VersionId"] not in (v1["VersionId"], v2["VersionId"])
    err = client_error(lambda: s3.get_object(Bucket=bucket, Key="k"))
    assert err.response["Error"]["Code"] == "NoSuchKey"
    assert headers_of(err)["x-amz-delete-marker"] == "true"
    assert headers_of(err)["x-amz-version-id"] == marker["VersionId"]
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="k"))[0] == 404
    err = client_error(lambda: s3.get_object(Bucket=bucket, Key="k", VersionId=marker["VersionId"]))
    assert err.response["Error"]["Code"] == "MethodNotAllowed"
    assert headers_of(err)["x-amz-delete-marker"] == "true"
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="k", VersionId=marker["VersionId"]))[0] == 405
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert versions_of(s3, bucket) == [
        ("k", marker["VersionId"], True, True), ("k", v2["VersionId"], False, False),
        ("k", v1["VersionId"], False, False),
    ]

    removed = s3.delete_object(Bucket=bucket, Key="k", VersionId=marker["VersionId"])
    assert removed["DeleteMarker"] is True and removed["VersionId"] == marker["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    gone = s3.delete_object(Bucket=bucket, Key="k", VersionId=v1["VersionId"])
    assert gone["VersionId"] == v1["VersionId"] and "DeleteMarker" not in gone
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key="k", VersionId=v1["VersionId"])) == (404, "NoSuchVersion")
    assert versions_of(s3, bucket) == [("k", v2["VersionId"], True, False)]


def test_suspended_uses_the_null_version(s3: S3Client, bucket: str) -> None:
    enable(s3, bucket)
    kept = s3.put_object(Bucket=bucket, Key="k", Body=b"versioned")
    enable(s3, bucket, "Suspended")
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"null-1")
    assert "VersionId" not in first
    s3.put_object(Bucket=bucket, Key="k", Body=b"null-2")
    rows = versions_of(s3, bucket)
    assert rows == [("k", "null", True, False), ("k", kept["VersionId"], False, False)]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"null-2"
    marker = s3.delete_object(Bucket=bucket, Key="k")
    assert marker["DeleteMarker"] is True and marker["VersionId"] == "null"
    assert versions_of(s3, bucket) == [("k", "null", True, True), ("k", kept["VersionId"], False, False)]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=kept["VersionId"])["Body"].read() == b"versioned"


def test_unversioned_delete_removes(s3: S3Client, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert "DeleteMarker" not in s3.delete_object(Bucket=bucket, Key="k")
    assert versions_of(s3, bucket) == []


@pytest.mark.parametrize("max_keys", [1, 2, 3, 1000])
def test_list_versions_pages(s3: S3Client, bucket: str, max_keys: int) -> None:
    enable(s3, bucket)
    expected: list[tuple[str, str, bool, bool]] = []
    for key in ("a", "b/1", "b/2", "c"):
        ids = [s3.put_object(Bucket=bucket, Key=key, Body=key.encode() * n)["VersionId"] for n in range(1, 4)]
        expected += [(key, vid, i == 0, False) for i, vid in enumerate(reversed(ids))]
    assert versions_of(s3, bucket, MaxKeys=max_keys) == expected
    assert versions_of(s3, bucket, MaxKeys=max_keys, Prefix="b/") == [r for r in expected if r[0].startswith("b/")]
    page = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["b/"]
    assert {v["Key"] for v in page["Versions"]} == {"a", "c"}


def test_delete_objects_reports_markers(s3: S3Client, bucket: str) -> None:
    enable(s3, bucket)
    v = s3.put_object(Bucket=bucket, Key="a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="b", Body=b"b")
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a", "VersionId": v["VersionId"]},
                                                                   {"Key": "b"}]})
    by_key = {d["Key"]: d for d in result["Deleted"]}
    assert by_key["a"]["VersionId"] == v["VersionId"] and "DeleteMarker" not in by_key["a"]
    assert by_key["b"]["DeleteMarker"] is True and by_key["b"]["DeleteMarkerVersionId"]
    marker_id = by_key["b"]["DeleteMarkerVersionId"]
    again = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "b", "VersionId": marker_id}]})
    assert again["Deleted"][0]["DeleteMarker"] is True and again["Deleted"][0]["DeleteMarkerVersionId"] == marker_id


def test_delete_bucket_refuses_versions_and_markers(s3: S3Client, bucket: str) -> None:
    enable(s3, bucket)
    v = s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    marker = s3.delete_object(Bucket=bucket, Key="k")
    assert error_of(lambda: s3.delete_bucket(Bucket=bucket)) == (409, "BucketNotEmpty")
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v["VersionId"])
    assert error_of(lambda: s3.delete_bucket(Bucket=bucket)) == (409, "BucketNotEmpty")
    s3.delete_object(Bucket=bucket, Key="k", VersionId=marker["VersionId"])
    assert status_of(s3.delete_bucket(Bucket=bucket)) == 204


def test_awscli_versioning(server: Any, s3: S3Client, bucket: str) -> None:
    run_aws(server, "s3api", "put-bucket-versioning", "--bucket", bucket,
            "--versioning-configuration", "Status=Enabled")
    got = json.loads(run_aws(server, "s3api", "get-bucket-versioning", "--bucket", bucket).stdout)
    assert got["Status"] == "Enabled"
    s3.put_object(Bucket=bucket, Key="k", Body=b"1")
    s3.put_object(Bucket=bucket, Key="k", Body=b"2")
    listed = json.loads(run_aws(server, "s3api", "list-object-versions", "--bucket", bucket).stdout)
    assert len(listed["Versions"]) == 2 and sum(v["IsLatest"] for v in listed["Versions"]) == 1


def test_versions_survive_two_wiped_drives(tmp_path: Path) -> None:
    server = start_server(tmp_path, drives=4)
    try:
        s3 = server.client()
        bucket = fresh_bucket_name()
        s3.create_bucket(Bucket=bucket)
        enable(s3, bucket)
        data = {n: body(size, seed=n) for n, size in ((1, 1000), (2, 3 * 1024 * 1024))}
        ids = {n: s3.put_object(Bucket=bucket, Key="obj", Body=payload)["VersionId"] for n, payload in data.items()}
        for drive in server.drives[:2]:
            shutil.rmtree(drive / bucket / "obj")
        for n, payload in data.items():
            got = s3.get_object(Bucket=bucket, Key="obj", VersionId=ids[n])
            assert got["Body"].read() == payload
        assert [r[1] for r in versions_of(s3, bucket)] == [ids[2], ids[1]]
    finally:
        server.close()

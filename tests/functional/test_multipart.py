"""Multipart upload end to end with real clients: boto3's transfer manager, the AWS CLI, s3api calls.

Large files go up in parts and come back byte-identical (compared by sha256); the explicit API
flows check every error code of the multipart operations; a multipart object must survive the
loss of 2 of 4 drives' folders.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import zlib
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from tests.functional.payloads import MiB, body, error_of, file_digest, write_stream
from tests.harness import CairnServer, S3Client, fresh_bucket_name, run_aws, start_server

PART = 5 * MiB


def upload_parts(s3: S3Client, bucket: str, key: str, parts: list[bytes], **create: Any) -> tuple[str, list[dict[str, Any]]]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    done = []
    for number, data in enumerate(parts, start=1):
        resp = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data)
        done.append({"PartNumber": number, "ETag": resp["ETag"]})
    return upload_id, done


def multipart_etag(parts: list[bytes]) -> str:
    return f'"{hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()}-{len(parts)}"'


def test_boto3_transfer_manager_40mib(s3: S3Client, bucket: str, tmp_path: Path) -> None:
    src = write_stream(tmp_path / "up.bin", 40 * MiB, seed="boto3")
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=8)
    s3.upload_file(str(src.path), bucket, "big/file.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big/file.bin")
    assert head["ContentLength"] == 40 * MiB and head["ETag"].endswith('-5"')
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["ETag"], o["Size"]) for o in listed] == [("big/file.bin", head["ETag"], 40 * MiB)]
    s3.download_file(bucket, "big/file.bin", str(tmp_path / "down.bin"), Config=config)
    assert file_digest(tmp_path / "down.bin") == src.sha256
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_awscli_cp_200mib(server: CairnServer, tmp_path: Path) -> None:
    name = fresh_bucket_name()
    run_aws(server, "s3", "mb", f"s3://{name}")
    src = write_stream(tmp_path / "up.bin", 200 * MiB, seed="cli")
    run_aws(server, "s3", "cp", str(src.path), f"s3://{name}/cli/big.bin")
    head = server.client().head_object(Bucket=name, Key="cli/big.bin")
    assert head["ContentLength"] == 200 * MiB and head["ETag"].endswith('-25"')  # 8 MiB CLI chunks
    run_aws(server, "s3", "cp", f"s3://{name}/cli/big.bin", str(tmp_path / "down.bin"))
    assert file_digest(tmp_path / "down.bin") == src.sha256


def test_s3api_flow(server: CairnServer, s3: S3Client, bucket: str, tmp_path: Path) -> None:
    """create / upload-part / list-parts / complete through `aws s3api`, as a script would."""
    import json

    parts = [body(PART, seed="p1"), body(1000, seed="p2")]
    created = json.loads(run_aws(server, "s3api", "create-multipart-upload", "--bucket", bucket, "--key", "api",
                                 "--content-type", "text/plain", "--metadata", "color=blue").stdout)
    upload_id = created["UploadId"]
    done = []
    for number, data in enumerate(parts, start=1):
        (tmp_path / f"p{number}").write_bytes(data)
        out = json.loads(run_aws(server, "s3api", "upload-part", "--bucket", bucket, "--key", "api", "--upload-id",
                                 upload_id, "--part-number", str(number), "--body", str(tmp_path / f"p{number}")).stdout)
        done.append({"PartNumber": number, "ETag": out["ETag"]})
    listed = json.loads(run_aws(server, "s3api", "list-parts", "--bucket", bucket, "--key", "api", "--upload-id",
                                upload_id).stdout)
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed["Parts"]] == [
        (1, PART, done[0]["ETag"]), (2, 1000, done[1]["ETag"])]
    (tmp_path / "mpu.json").write_text(json.dumps({"Parts": done}))
    out = json.loads(run_aws(server, "s3api", "complete-multipart-upload", "--bucket", bucket, "--key", "api",
                             "--upload-id", upload_id, "--multipart-upload", f"file://{tmp_path / 'mpu.json'}").stdout)
    assert out["ETag"] == multipart_etag(parts) and out["Key"] == "api"
    got = s3.get_object(Bucket=bucket, Key="api")
    assert got["Body"].read() == b"".join(parts)
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"color": "blue"}
    assert error_of(lambda: s3.complete_multipart_upload(
        Bucket=bucket, Key="api", UploadId=upload_id, MultipartUpload={"Parts": done})) == (404, "NoSuchUpload")


def _complete(s3: S3Client, bucket: str, key: str, upload_id: str, parts: list[dict[str, Any]]) -> Any:
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})


BAD_COMPLETES = [
    pytest.param(lambda done: [done[1], done[0]], (400, "InvalidPartOrder"), id="descending"),
    pytest.param(lambda done: [done[0], {"PartNumber": 2, "ETag": '"' + "0" * 32 + '"'}], (400, "InvalidPart"),
                 id="etag-mismatch"),
    pytest.param(lambda done: [done[0], {"PartNumber": 7, "ETag": done[1]["ETag"]}], (400, "InvalidPart"),
                 id="unknown-part"),
    pytest.param(lambda done: [done[1], done[2]], (400, "EntityTooSmall"), id="small-part-not-last"),
]


@pytest.mark.parametrize(("pick", "expected"), BAD_COMPLETES)
def test_complete_errors(s3: S3Client, bucket: str, pick: Any, expected: tuple[int, str]) -> None:
    upload_id, done = upload_parts(s3, bucket, "k", [body(PART, seed=1), body(10, seed=2), body(10, seed=3)])
    assert error_of(lambda: _complete(s3, bucket, "k", upload_id, pick(done))) == expected
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="k")) == (404, "404")
    assert len(s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)["Parts"]) == 3


UNKNOWN_UPLOAD_CALLS = [
    pytest.param(lambda s3, b, u: s3.upload_part(Bucket=b, Key="k", UploadId=u, PartNumber=1, Body=b"x"), id="upload-part"),
    pytest.param(lambda s3, b, u: s3.list_parts(Bucket=b, Key="k", UploadId=u), id="list-parts"),
    pytest.param(lambda s3, b, u: s3.abort_multipart_upload(Bucket=b, Key="k", UploadId=u), id="abort"),
    pytest.param(lambda s3, b, u: _complete(s3, b, "k", u, [{"PartNumber": 1, "ETag": '"x"'}]), id="complete"),
]


@pytest.mark.parametrize("call", UNKNOWN_UPLOAD_CALLS)
@pytest.mark.parametrize("upload_id", ["0" * 32, "not-an-upload", "aborted"])
def test_unknown_upload_is_no_such_upload(s3: S3Client, bucket: str, call: Any, upload_id: str) -> None:
    if upload_id == "aborted":
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
        assert s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id)[
            "ResponseMetadata"]["HTTPStatusCode"] == 204
    assert error_of(lambda: call(s3, bucket, upload_id)) == (404, "NoSuchUpload")


def test_part_replacement_and_list_parts_pages(s3: S3Client, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    for n in range(1, 6):
        s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=n, Body=body(100, seed=n))
    new = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=3, Body=b"replaced")
    seen = []
    marker = 0
    while True:
        page = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id, MaxParts=2, PartNumberMarker=marker)
        seen += [(p["PartNumber"], p["Size"]) for p in page["Parts"]]
        if not page["IsTruncated"]:
            break
        marker = page["NextPartNumberMarker"]
    assert seen == [(1, 100), (2, 100), (3, 8), (4, 100), (5, 100)]
    wrong = error_of(lambda: s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=b"abc",
                                            ContentMD5=base64.b64encode(hashlib.md5(b"abd").digest()).decode()))
    assert wrong == (400, "BadDigest")
    _complete(s3, bucket, "k", upload_id, [{"PartNumber": 3, "ETag": new["ETag"]}])
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"replaced"


def test_list_multipart_uploads_pages(s3: S3Client, bucket: str) -> None:
    keys = ["a/1", "a/2", "b", "b", "c/x/y", "d"]
    ids = [(k, s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"]) for k in keys]
    expected = sorted(ids)
    seen: list[tuple[str, str]] = []
    params: dict[str, str] = {}
    pages = 0
    while True:
        page = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=2, **params)
        pages += 1
        seen += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        if not page["IsTruncated"]:
            break
        params = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
    assert seen == expected and pages == 3
    grouped = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["a/", "c/"]
    assert [u["Key"] for u in grouped["Uploads"]] == ["b", "b", "d"]
    under = s3.list_multipart_uploads(Bucket=bucket, Prefix="a/")
    assert [u["Key"] for u in under["Uploads"]] == ["a/1", "a/2"]
    after = s3.list_multipart_uploads(Bucket=bucket, KeyMarker="b")
    assert [u["Key"] for u in after["Uploads"]] == ["c/x/y", "d"]


def test_get_and_head_by_part_number(s3: S3Client, bucket: str) -> None:
    parts = [body(PART, seed=1), body(PART + 3, seed=2), body(77, seed=3)]
    upload_id, done = upload_parts(s3, bucket, "k", parts)
    _complete(s3, bucket, "k", upload_id, done)
    for number, data in enumerate(parts, start=1):
        got = s3.get_object(Bucket=bucket, Key="k", PartNumber=number)
        start = sum(len(p) for p in parts[: number - 1])
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"] == f"bytes {start}-{start + len(data) - 1}/{sum(map(len, parts))}"
        assert got["PartsCount"] == 3 and got["ETag"] == multipart_etag(parts)
        assert got["Body"].read() == data
    head = s3.head_object(Bucket=bucket, Key="k", PartNumber=2)
    assert head["ContentLength"] == PART + 3 and head["PartsCount"] == 3
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key="k", PartNumber=4)) == (416, "InvalidPartNumber")
    s3.put_object(Bucket=bucket, Key="single", Body=b"hello")
    single = s3.get_object(Bucket=bucket, Key="single", PartNumber=1)
    assert single["Body"].read() == b"hello" and "PartsCount" not in single


def test_upload_part_copy_with_range(s3: S3Client, bucket: str) -> None:
    source = body(12 * MiB, seed="src")
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="copy")["UploadId"]
    first, last = 1000, 1000 + PART
    p1 = s3.upload_part_copy(Bucket=bucket, Key="copy", UploadId=upload_id, PartNumber=1,
                             CopySource={"Bucket": bucket, "Key": "src"}, CopySourceRange=f"bytes={first}-{last}")
    p2 = s3.upload_part(Bucket=bucket, Key="copy", UploadId=upload_id, PartNumber=2, Body=b"tail")
    assert p1["CopyPartResult"]["ETag"] == f'"{hashlib.md5(source[first:last + 1]).hexdigest()}"'
    bad_range = error_of(lambda: s3.upload_part_copy(Bucket=bucket, Key="copy", UploadId=upload_id, PartNumber=3,
                                                     CopySource={"Bucket": bucket, "Key": "src"},
                                                     CopySourceRange=f"bytes=0-{12 * MiB}"))
    assert bad_range == (400, "InvalidArgument")
    failed_condition = error_of(lambda: s3.upload_part_copy(
        Bucket=bucket, Key="copy", UploadId=upload_id, PartNumber=3, CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceIfMatch='"0123"'))
    assert failed_condition == (412, "PreconditionFailed")
    _complete(s3, bucket, "copy", upload_id, [{"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]},
                                              {"PartNumber": 2, "ETag": p2["ETag"]}])
    assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == source[first : last + 1] + b"tail"


def test_checksums_composite_and_full_object(s3: S3Client, bucket: str) -> None:
    parts = [body(PART, seed=1), body(999, seed=2)]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="sha", ChecksumAlgorithm="SHA256")["UploadId"]
    done = []
    for n, data in enumerate(parts, start=1):
        resp = s3.upload_part(Bucket=bucket, Key="sha", UploadId=upload_id, PartNumber=n, Body=data,
                              ChecksumAlgorithm="SHA256")
        done.append({"PartNumber": n, "ETag": resp["ETag"], "ChecksumSHA256": resp["ChecksumSHA256"]})
    out = _complete(s3, bucket, "sha", upload_id, done)
    composite = hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest()
    assert out["ChecksumSHA256"] == f"{base64.b64encode(composite).decode()}-2"
    head = s3.head_object(Bucket=bucket, Key="sha", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == out["ChecksumSHA256"]

    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="crc", ChecksumAlgorithm="CRC32",
                                           ChecksumType="FULL_OBJECT")["UploadId"]
    done = []
    for n, data in enumerate(parts, start=1):
        resp = s3.upload_part(Bucket=bucket, Key="crc", UploadId=upload_id, PartNumber=n, Body=data,
                              ChecksumAlgorithm="CRC32")
        done.append({"PartNumber": n, "ETag": resp["ETag"], "ChecksumCRC32": resp["ChecksumCRC32"]})
    out = _complete(s3, bucket, "crc", upload_id, done)
    whole = zlib.crc32(b"".join(parts)).to_bytes(4, "big")
    assert out["ChecksumCRC32"] == base64.b64encode(whole).decode()


def test_conditional_complete(s3: S3Client, bucket: str) -> None:
    upload_id, done = upload_parts(s3, bucket, "k", [b"first"])
    _complete(s3, bucket, "k", upload_id, done)
    upload_id, done = upload_parts(s3, bucket, "k", [b"second"])
    refused = error_of(lambda: s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": done}, IfNoneMatch="*"))
    assert refused == (412, "PreconditionFailed")
    current = s3.head_object(Bucket=bucket, Key="k")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": done},
                                 IfMatch=current)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"second"


def test_multipart_object_survives_two_wiped_drives(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "srv")
    try:
        s3 = srv.client()
        name = fresh_bucket_name()
        s3.create_bucket(Bucket=name)
        parts = [body(PART, seed=1), body(PART, seed=2), body(2 * MiB + 1, seed=3)]
        upload_id, done = upload_parts(s3, name, "dir/obj", parts)
        _complete(s3, name, "dir/obj", upload_id, done)
        for drive in (srv.drives[0], srv.drives[2]):
            for child in drive.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        got = s3.get_object(Bucket=name, Key="dir/obj", Range=f"bytes={PART - 5}-{PART + 5}")["Body"].read()
        assert got == (parts[0] + parts[1])[PART - 5 : PART + 6]
        assert hashlib.sha256(s3.get_object(Bucket=name, Key="dir/obj")["Body"].read()).digest() == \
            hashlib.sha256(b"".join(parts)).digest()
    finally:
        srv.close()

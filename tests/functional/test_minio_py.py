"""minio-py, MinIO's own Python SDK, against the server: bucket calls, objects, multipart, listing, presign.

The client talks path-style SigV4 over plain HTTP to the module's server. `fput_object` with a
6 MiB part size sends a 20 MiB file as a four-part multipart upload; a presigned GET is fetched
with `requests`, which carries no credentials of its own.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import requests
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from tests.functional.payloads import MiB, body, etag_of, file_digest, write_stream
from tests.harness import REGION, CairnServer, fresh_bucket_name


@pytest.fixture(scope="module")
def minio(server: CairnServer) -> Minio:
    return Minio(f"{server.host}:{server.port}", access_key=server.access_key,
                 secret_key=server.secret_key, secure=False, region=REGION)


@pytest.fixture
def minio_bucket(minio: Minio) -> str:
    name = fresh_bucket_name("minio")
    minio.make_bucket(name)
    return name


def test_bucket_calls(minio: Minio) -> None:
    name = fresh_bucket_name("minio")
    assert not minio.bucket_exists(name)
    minio.make_bucket(name)
    assert minio.bucket_exists(name)
    assert name in [bucket.name for bucket in minio.list_buckets()]
    with pytest.raises(S3Error) as exists:
        minio.make_bucket(name)
    assert exists.value.code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")
    minio.remove_bucket(name)
    assert not minio.bucket_exists(name)
    with pytest.raises(S3Error) as missing:
        minio.remove_bucket(name)
    assert missing.value.code == "NoSuchBucket"


@pytest.mark.parametrize("size", [0, 1, 300 * 1024, 3 * MiB + 17])
def test_put_get_stat(minio: Minio, minio_bucket: str, size: int) -> None:
    data = body(size, seed="minio-put")
    result = minio.put_object(minio_bucket, "dir/obj.bin", io.BytesIO(data), length=size,
                              content_type="application/x-test", metadata={"color": "blue"})
    assert f'"{result.etag}"' == etag_of(data)

    stat = minio.stat_object(minio_bucket, "dir/obj.bin")
    assert stat.size == size
    assert stat.content_type == "application/x-test"
    assert f'"{stat.etag}"' == etag_of(data)
    assert stat.metadata is not None and stat.metadata.get("x-amz-meta-color") == "blue"

    response = minio.get_object(minio_bucket, "dir/obj.bin")
    try:
        assert response.read() == data
    finally:
        response.close()
        response.release_conn()
    if size > 20:
        ranged = minio.get_object(minio_bucket, "dir/obj.bin", offset=10, length=10)
        try:
            assert ranged.read() == data[10:20]
        finally:
            ranged.close()
            ranged.release_conn()


def test_missing_object_is_no_such_key(minio: Minio, minio_bucket: str) -> None:
    with pytest.raises(S3Error) as missing:
        minio.stat_object(minio_bucket, "nope")
    assert missing.value.code in ("NoSuchKey", "ResponseCode404")  # HEAD has no body to name the code
    with pytest.raises(S3Error) as missing_get:
        minio.get_object(minio_bucket, "nope")
    assert missing_get.value.code == "NoSuchKey"


def test_fput_object_multipart(minio: Minio, minio_bucket: str, tmp_path: Path) -> None:
    source = write_stream(tmp_path / "up.bin", 20 * MiB, seed="minio-mp")
    result = minio.fput_object(minio_bucket, "big/up.bin", str(source.path), part_size=6 * MiB)
    assert result.etag is not None and result.etag.endswith("-4"), result.etag  # 6 + 6 + 6 + 2 MiB
    assert minio.stat_object(minio_bucket, "big/up.bin").size == source.size
    minio.fget_object(minio_bucket, "big/up.bin", str(tmp_path / "down.bin"))
    assert file_digest(tmp_path / "down.bin") == source.sha256


def test_list_prefix_recursive(minio: Minio, minio_bucket: str) -> None:
    keys = ["a.txt", "logs/2026/01.log", "logs/2026/02.log", "logs/top.log", "media/x.bin"]
    for key in keys:
        minio.put_object(minio_bucket, key, io.BytesIO(key.encode()), length=len(key))

    # minio-py yields a page's objects before its common prefixes, so the shallow listings are sorted.
    flat = sorted((o.object_name, o.is_dir) for o in minio.list_objects(minio_bucket))
    assert flat == [("a.txt", False), ("logs/", True), ("media/", True)]
    under = sorted((o.object_name, o.is_dir) for o in minio.list_objects(minio_bucket, prefix="logs/"))
    assert under == [("logs/2026/", True), ("logs/top.log", False)]
    deep = [o.object_name for o in minio.list_objects(minio_bucket, prefix="logs/", recursive=True)]
    assert deep == ["logs/2026/01.log", "logs/2026/02.log", "logs/top.log"]
    every = {o.object_name: o.size for o in minio.list_objects(minio_bucket, recursive=True)}
    assert every == {key: len(key) for key in keys}
    assert [o.object_name for o in minio.list_objects(minio_bucket, recursive=True,
                                                      start_after="logs/2026/02.log")] == \
        ["logs/top.log", "media/x.bin"]


def test_presigned_get_with_requests(minio: Minio, minio_bucket: str) -> None:
    data = body(5000, seed="presign")
    minio.put_object(minio_bucket, "shared/file name.bin", io.BytesIO(data), length=len(data))
    url = minio.presigned_get_object(minio_bucket, "shared/file name.bin")
    got = requests.get(url, timeout=30)
    assert got.status_code == 200, got.text
    assert got.content == data
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    denied = requests.get(tampered, timeout=30)
    assert denied.status_code == 403, denied.text


def test_remove_objects(minio: Minio, minio_bucket: str) -> None:
    keys = [f"batch/{i:03d}" for i in range(30)]
    for key in keys:
        minio.put_object(minio_bucket, key, io.BytesIO(b"x"), length=1)
    doomed = [DeleteObject(key) for key in keys[:20]] + [DeleteObject("batch/never-written")]
    errors = list(minio.remove_objects(minio_bucket, doomed))
    assert errors == []
    left = [o.object_name for o in minio.list_objects(minio_bucket, prefix="batch/", recursive=True)]
    assert left == keys[20:]
    minio.remove_object(minio_bucket, keys[20])
    assert len(list(minio.list_objects(minio_bucket, recursive=True))) == 9

"""Server pools on one node: a deployment grown from pool `a/d{1...4}` to `a/d{1...4} b/d{1...4}`.

The module's server first runs with pool a alone and stores small and multi-block objects, a
versioned key, listing fodder and an unfinished multipart upload; it is then restarted with both
pools, and every test checks the grown deployment with boto3: old objects read back byte-identical,
an old key keeps its pool when overwritten, new keys land in both pools (the pools share one
filesystem, so their free space, and so their weights, are equal), listings of keys and versions
merge both pools page by page, the old upload completes, buckets exist on pool b's drives, and a
bucket holding objects in either pool cannot be deleted. Where an object lives is read from the
drive folders (`<bucket>/<key path>/%meta`). The last test restarts with a pool left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.engine.names import META_NAME, key_to_path
from tests.functional.payloads import MiB, body, error_of
from tests.harness import CairnServer, S3Client, ServerError, fresh_bucket_name

pytestmark = pytest.mark.timeout(120)

POOLS = ("a", "b")
PART = 5 * MiB
OLD_SIZES = {"old/empty": 0, "old/small": 1000, "old/block": MiB, "old/multi-block": 3 * MiB + 17}
OLD_LISTED = [f"mix/old{n:02d}" for n in range(12)]
NEW_LISTED = [f"mix/new{n:02d}" for n in range(12)]


def pool_arg(root: Path, pool: str) -> Path:
    """The ellipsis argument of one pool: four drive folders `<root>/<pool>/d1..d4`."""
    for d in range(1, 5):
        (root / pool / f"d{d}").mkdir(parents=True, exist_ok=True)
    return root / pool / "d{1...4}"


def pool_server(root: Path, pools: tuple[str, ...]) -> CairnServer:
    """A server (not started) whose drive arguments are one ellipsis argument per pool."""
    return CairnServer(root, [pool_arg(root, p) for p in pools], workers=1, parity=None, extra_args=(), env=None)


def pools_holding(root: Path, bucket: str, key: str) -> set[str]:
    """The pools with the key's metadata on at least one of their drives."""
    return {p for p in POOLS if any((root / p / f"d{d}" / bucket / key_to_path(key) / META_NAME).exists()
                                    for d in range(1, 5))}


@dataclass
class Grown:
    server: CairnServer
    s3: S3Client
    plain: str
    versioned: str
    versions: list[tuple[str, bytes]]  # (version id, body) of versioned/doc, oldest first
    upload_id: str
    first_part: bytes
    first_etag: str

    def holding(self, bucket: str, key: str) -> set[str]:
        return pools_holding(self.server.root, bucket, key)


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grown]:
    root = tmp_path_factory.mktemp("pools")
    with pool_server(root, ("a",)) as server:
        server.start()
        s3 = server.client()
        plain, versioned = fresh_bucket_name("plain"), fresh_bucket_name("versioned")
        s3.create_bucket(Bucket=plain)
        s3.create_bucket(Bucket=versioned)
        s3.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})
        for key, size in OLD_SIZES.items():
            s3.put_object(Bucket=plain, Key=key, Body=body(size, key))
        for key in OLD_LISTED:
            s3.put_object(Bucket=plain, Key=key, Body=key.encode())
        versions = []
        for n in range(3):
            data = body(1000 + n, f"doc{n}")
            versions.append((s3.put_object(Bucket=versioned, Key="doc", Body=data)["VersionId"], data))
        first_part = body(PART, "part1")
        upload_id = s3.create_multipart_upload(Bucket=plain, Key="upload")["UploadId"]
        first_etag = s3.upload_part(Bucket=plain, Key="upload", UploadId=upload_id, PartNumber=1,
                                    Body=first_part)["ETag"]
        server.stop()
        server.drives = [pool_arg(root, p) for p in POOLS]
        server.start()
        yield Grown(server, server.client(), plain, versioned, versions, upload_id, first_part, first_etag)


@pytest.mark.parametrize("key", list(OLD_SIZES))
def test_old_objects_read_back_byte_identical(grown: Grown, key: str) -> None:
    got = grown.s3.get_object(Bucket=grown.plain, Key=key)["Body"].read()
    assert got == body(OLD_SIZES[key], key)
    assert grown.holding(grown.plain, key) == {"a"}


def test_old_versions_read_back(grown: Grown) -> None:
    for version_id, data in grown.versions:
        got = grown.s3.get_object(Bucket=grown.versioned, Key="doc", VersionId=version_id)["Body"].read()
        assert got == data
    assert grown.s3.get_object(Bucket=grown.versioned, Key="doc")["Body"].read() == grown.versions[-1][1]


@pytest.mark.parametrize("key", ["old/small", "old/multi-block"])
def test_overwrite_of_old_key_stays_in_pool_a(grown: Grown, key: str) -> None:
    data = body(2 * MiB + 5, f"overwrite {key}")
    grown.s3.put_object(Bucket=grown.plain, Key=key, Body=data)
    assert grown.holding(grown.plain, key) == {"a"}
    assert grown.s3.get_object(Bucket=grown.plain, Key=key)["Body"].read() == data
    listed = grown.s3.list_objects_v2(Bucket=grown.plain, Prefix=key)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [(key, len(data))]


def test_new_version_of_old_versioned_key_stays_in_pool_a(grown: Grown) -> None:
    # The module's versioned key was written before pool b existed: its next version must join it.
    grown.s3.put_object(Bucket=grown.versioned, Key="doc", Body=b"after growth")
    assert grown.holding(grown.versioned, "doc") == {"a"}
    listed = grown.s3.list_object_versions(Bucket=grown.versioned, Prefix="doc")["Versions"]
    assert [v["VersionId"] for v in listed][1:] == [vid for vid, _ in reversed(grown.versions)]


def test_new_keys_spread_over_both_pools(grown: Grown) -> None:
    bucket = fresh_bucket_name("spread")
    grown.s3.create_bucket(Bucket=bucket)
    keys = [f"spread/{n:03d}" for n in range(40)]
    for key in keys:
        grown.s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    where = {key: grown.holding(bucket, key) for key in keys}
    assert all(len(pools) == 1 for pools in where.values()), where
    in_b = sum(1 for pools in where.values() if pools == {"b"})
    # Equal free space, equal weights: 40 draws give 20 +- 10 with overwhelming probability.
    assert 10 <= in_b <= 30, where
    for key in keys:
        assert grown.s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()


@pytest.mark.parametrize("page_size", [1, 5, 1000])
def test_listing_merges_both_pools_page_by_page(grown: Grown, page_size: int) -> None:
    for key in NEW_LISTED:
        grown.s3.put_object(Bucket=grown.plain, Key=key, Body=key.encode())
    assert {p for key in NEW_LISTED for p in grown.holding(grown.plain, key)} == set(POOLS)
    v2: list[str] = []
    kwargs: dict[str, str] = {}
    while True:
        page = grown.s3.list_objects_v2(Bucket=grown.plain, Prefix="mix/", MaxKeys=page_size, **kwargs)
        v2 += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        kwargs = {"ContinuationToken": page["NextContinuationToken"]}
    v1: list[str] = []
    marker = ""
    while True:
        page = grown.s3.list_objects(Bucket=grown.plain, Prefix="mix/", MaxKeys=page_size, Marker=marker)
        v1 += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        marker = v1[-1]
    assert v2 == v1 == sorted(OLD_LISTED + NEW_LISTED)
    top = grown.s3.list_objects_v2(Bucket=grown.plain, Delimiter="/", MaxKeys=page_size)
    assert top["CommonPrefixes"][0]["Prefix"] == "mix/"


@pytest.mark.parametrize("page_size", [1, 3, 1000])
def test_version_listing_merges_both_pools_page_by_page(grown: Grown, page_size: int) -> None:
    bucket = fresh_bucket_name("vlist")
    grown.s3.create_bucket(Bucket=bucket)
    grown.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    expected: list[tuple[str, str]] = []
    for n in range(10):
        key = f"k{n:02d}"
        ids = [grown.s3.put_object(Bucket=bucket, Key=key, Body=f"{key} v{v}".encode())["VersionId"] for v in range(2)]
        marker_id = grown.s3.delete_object(Bucket=bucket, Key=key)["VersionId"]
        expected += [(key, marker_id), *((key, vid) for vid in reversed(ids))]
    assert {p for n in range(10) for p in grown.holding(bucket, f"k{n:02d}")} == set(POOLS)
    listed: list[tuple[str, str]] = []
    latest: list[str] = []
    kwargs: dict[str, str] = {}
    while True:
        page = grown.s3.list_object_versions(Bucket=bucket, MaxKeys=page_size, **kwargs)
        entries = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        entries.sort(key=lambda e: (e["Key"], -e["LastModified"].timestamp()))
        listed += [(e["Key"], e["VersionId"]) for e in entries]
        latest += [e["Key"] for e in entries if e["IsLatest"]]
        if not page["IsTruncated"]:
            break
        kwargs = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
    assert sorted(listed) == sorted(expected) and len(listed) == len(expected)
    assert latest == [f"k{n:02d}" for n in range(10)]


def test_upload_begun_before_growth_completes(grown: Grown) -> None:
    s3, bucket = grown.s3, grown.plain
    listed = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in listed] == [("upload", grown.upload_id)]
    last = body(1000, "part2")
    second = s3.upload_part(Bucket=bucket, Key="upload", UploadId=grown.upload_id, PartNumber=2, Body=last)["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key="upload", UploadId=grown.upload_id)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1, 2]
    s3.complete_multipart_upload(Bucket=bucket, Key="upload", UploadId=grown.upload_id, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": grown.first_etag}, {"PartNumber": 2, "ETag": second}]})
    assert s3.get_object(Bucket=bucket, Key="upload")["Body"].read() == grown.first_part + last
    assert grown.holding(bucket, "upload") == {"a"}
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)


def test_new_upload_in_either_pool_completes(grown: Grown) -> None:
    bucket = fresh_bucket_name("mpu")
    grown.s3.create_bucket(Bucket=bucket)
    keys = [f"up{n}" for n in range(8)]
    for key in keys:
        upload_id = grown.s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        etag = grown.s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=key.encode())["ETag"]
        grown.s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                           MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    for key in keys:
        assert grown.s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    assert {p for key in keys for p in grown.holding(bucket, key)} == set(POOLS)


def test_buckets_exist_on_pool_b_drives(grown: Grown) -> None:
    for bucket in (grown.plain, grown.versioned):
        for d in range(1, 5):
            assert (grown.server.root / "b" / f"d{d}" / ".cairn.sys" / "buckets" / f"{bucket}.meta").is_file()
        grown.s3.head_bucket(Bucket=bucket)
    status = grown.s3.get_bucket_versioning(Bucket=grown.versioned)["Status"]
    assert status == "Enabled"
    names = [b["Name"] for b in grown.s3.list_buckets()["Buckets"]]
    assert {grown.plain, grown.versioned} <= set(names)


@pytest.mark.parametrize("keep", POOLS)
def test_bucket_delete_refused_while_any_pool_holds_objects(grown: Grown, keep: str) -> None:
    s3 = grown.s3
    bucket = fresh_bucket_name("del")
    s3.create_bucket(Bucket=bucket)
    keys = [f"k{n:02d}" for n in range(16)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    kept = [key for key in keys if grown.holding(bucket, key) == {keep}]
    assert kept, f"no key of 16 landed in pool {keep}"
    for key in keys:
        if key not in kept:
            s3.delete_object(Bucket=bucket, Key=key)
    assert error_of(lambda: s3.delete_bucket(Bucket=bucket)) == (409, "BucketNotEmpty")
    s3.head_bucket(Bucket=bucket)
    for key in kept:
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_bucket(Bucket=bucket)
    assert error_of(lambda: s3.head_bucket(Bucket=bucket))[0] == 404
    for pool in POOLS:
        assert not (grown.server.root / pool / "d1" / bucket).exists()


@pytest.mark.parametrize("kept", POOLS)
def test_restart_without_a_pool_is_refused(tmp_path: Path, kept: str) -> None:
    with pool_server(tmp_path, POOLS) as server:
        server.start()
        s3 = server.client()
        bucket = fresh_bucket_name()
        s3.create_bucket(Bucket=bucket)
        keys = [f"k{n:02d}" for n in range(16)]
        for key in keys:
            s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
        assert {p for key in keys for p in pools_holding(tmp_path, bucket, key)} == set(POOLS)
        server.stop()
        server.drives = [pool_arg(tmp_path, kept)]
        with pytest.raises(ServerError) as refused:
            server.start()
        assert "missing" in str(refused.value), refused.value
        server.drives = [pool_arg(tmp_path, p) for p in POOLS]
        server.start()
        for key in keys:
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()

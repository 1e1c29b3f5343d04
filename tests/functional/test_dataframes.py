"""Dataframe libraries on the server: pyarrow's S3FileSystem and Polars' object-store reader and writer.

pyarrow (its C++ AWS SDK client) writes a hive-partitioned Parquet dataset and reads it back with
`pyarrow.dataset`, filtering on the partition key; Polars (Rust `object_store`) scans the same
dataset from an `s3://` URL and writes a Parquet file of its own that pyarrow then reads. Both are
given the endpoint, keys and region explicitly, so nothing on the host changes where they go.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from pyarrow import fs as pafs

from tests.harness import REGION, CairnServer, S3Client, fresh_bucket_name

ROWS = 3000
REGIONS = ["eu", "us", "ap"]


def sample_table() -> pa.Table:
    return pa.table({
        "id": pa.array(range(ROWS), pa.int64()),
        "region": pa.array([REGIONS[i % 3] for i in range(ROWS)]),
        "amount": pa.array([i * 0.5 for i in range(ROWS)], pa.float64()),
        "label": pa.array([f"row-{i:05d}" for i in range(ROWS)]),
    })


@pytest.fixture(scope="module")
def arrow_fs(server: CairnServer) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(access_key=server.access_key, secret_key=server.secret_key,
                             endpoint_override=f"{server.host}:{server.port}", scheme="http",
                             region=REGION, force_virtual_addressing=False,
                             connect_timeout=5, request_timeout=60)


@pytest.fixture
def dataset_bucket(s3: S3Client, arrow_fs: pafs.S3FileSystem) -> str:
    """A bucket holding `sample_table()` as a hive-partitioned dataset under `sales/`, written by pyarrow."""
    name = fresh_bucket_name("frames")
    s3.create_bucket(Bucket=name)
    ds.write_dataset(sample_table(), f"{name}/sales", filesystem=arrow_fs, format="parquet",
                     partitioning=["region"], partitioning_flavor="hive",
                     max_rows_per_file=600, max_rows_per_group=600)
    return name


def storage_options(server: CairnServer) -> dict[str, str]:
    return {"aws_access_key_id": server.access_key, "aws_secret_access_key": server.secret_key,
            "aws_endpoint_url": server.endpoint, "aws_region": REGION, "aws_allow_http": "true"}


def test_pyarrow_partitioned_dataset_round_trip(s3: S3Client, arrow_fs: pafs.S3FileSystem,
                                                dataset_bucket: str) -> None:
    listed = s3.list_objects_v2(Bucket=dataset_bucket)["Contents"]
    # pyarrow also writes empty "folder/" marker objects; the data is in the .parquet ones.
    keys = [item["Key"] for item in listed if not item["Key"].endswith("/")]
    assert all(item["Size"] == 0 for item in listed if item["Key"].endswith("/"))
    # 1000 rows per region, at most 600 rows per file: two files in each partition folder.
    assert sorted({key.rsplit("/", 1)[0] for key in keys}) == [f"sales/region={r}" for r in sorted(REGIONS)]
    assert len(keys) == 6 and all(key.endswith(".parquet") for key in keys), keys

    dataset = ds.dataset(f"{dataset_bucket}/sales", filesystem=arrow_fs, format="parquet", partitioning="hive")
    back = dataset.to_table().sort_by("id")
    expected = sample_table()
    assert back.num_rows == ROWS
    for column in ("id", "amount", "label", "region"):
        assert back.column(column).to_pylist() == expected.column(column).to_pylist()

    eu = dataset.to_table(filter=pc.field("region") == "eu", columns=["id", "amount"])
    assert sorted(eu.column("id").to_pylist()) == list(range(0, ROWS, 3))

    infos = arrow_fs.get_file_info(pafs.FileSelector(f"{dataset_bucket}/sales", recursive=True))
    files = [info for info in infos if info.type == pafs.FileType.File]
    assert sum(info.size for info in files) == sum(item["Size"] for item in listed)
    arrow_fs.delete_dir(f"{dataset_bucket}/sales/region=ap")
    assert ds.dataset(f"{dataset_bucket}/sales", filesystem=arrow_fs, partitioning="hive").count_rows() == 2000


def test_polars_scan_parquet(server: CairnServer, dataset_bucket: str) -> None:
    lazy = pl.scan_parquet(f"s3://{dataset_bucket}/sales/**/*.parquet", hive_partitioning=True,
                           storage_options=storage_options(server))
    totals = (lazy.group_by("region").agg(pl.len().alias("rows"), pl.col("amount").sum().alias("total"))
              .sort("region").collect())
    expected = {r: [i * 0.5 for i in range(ROWS) if REGIONS[i % 3] == r] for r in REGIONS}
    assert totals.to_dicts() == [{"region": r, "rows": len(expected[r]), "total": sum(expected[r])}
                                 for r in sorted(REGIONS)]

    selected = lazy.filter(pl.col("id") < 10).select("id", "label").sort("id").collect()
    assert selected["label"].to_list() == [f"row-{i:05d}" for i in range(10)]


def test_polars_write_parquet_read_by_pyarrow(server: CairnServer, s3: S3Client, bucket: str,
                                              arrow_fs: pafs.S3FileSystem) -> None:
    frame = pl.DataFrame({"n": list(range(5000)), "square": [i * i for i in range(5000)]})
    frame.write_parquet(f"s3://{bucket}/polars/out.parquet", storage_options=storage_options(server))
    head = s3.head_object(Bucket=bucket, Key="polars/out.parquet")
    assert head["ContentLength"] > 0

    table = pq.read_table(f"{bucket}/polars/out.parquet", filesystem=arrow_fs)
    assert table.column("square").to_pylist() == [i * i for i in range(5000)]
    again = pl.read_parquet(f"s3://{bucket}/polars/out.parquet", storage_options=storage_options(server))
    assert again.equals(frame)

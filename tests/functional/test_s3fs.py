"""s3fs/fsspec against the server, run in the separate `.venv-s3fs` that scripts/setup makes.

s3fs pins botocore through aiobotocore, which would fight the main venv's boto3, so it lives in a
venv of its own. The test writes SCRIPT to a file and runs it with that venv's Python; the script
asserts every step itself (a failure is a traceback and a non-zero exit) and prints a JSON summary
that the test checks against the server with boto3 from the main venv.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.harness import REGION, CairnServer, S3Client, fresh_bucket_name

S3FS_PYTHON = Path(__file__).resolve().parents[2] / ".venv-s3fs" / "bin" / "python"

SCRIPT = r'''
import hashlib, json, os, random, sys
import fsspec, s3fs

bucket, workdir = sys.argv[1], sys.argv[2]
options = {"key": os.environ["CAIRN_KEY"], "secret": os.environ["CAIRN_SECRET"],
           "endpoint_url": os.environ["CAIRN_ENDPOINT"],
           "client_kwargs": {"region_name": os.environ["CAIRN_REGION"]},
           "config_kwargs": {"retries": {"max_attempts": 1}}}
fs = s3fs.S3FileSystem(**options)
MiB = 1024 * 1024

fs.mkdir(bucket)
assert fs.exists(bucket)

small = random.Random(1).randbytes(70_000)
fs.pipe(f"{bucket}/dir/small.bin", small)
assert fs.cat(f"{bucket}/dir/small.bin") == small
assert fs.cat_file(f"{bucket}/dir/small.bin", start=100, end=200) == small[100:200]
info = fs.info(f"{bucket}/dir/small.bin")
assert info["size"] == len(small) and info["type"] == "file", info
assert info["ETag"] == '"' + hashlib.md5(small).hexdigest() + '"', info

# A buffered writer with 5 MiB blocks sends 12 MiB as a three-part multipart upload.
big = random.Random(2).randbytes(12 * MiB)
with fs.open(f"{bucket}/dir/big.bin", "wb", block_size=5 * MiB) as out:
    for offset in range(0, len(big), MiB):
        out.write(big[offset:offset + MiB])
big_etag = fs.info(f"{bucket}/dir/big.bin")["ETag"]
with fs.open(f"{bucket}/dir/big.bin", "rb", block_size=MiB) as f:
    f.seek(7 * MiB + 3)
    assert f.read(1000) == big[7 * MiB + 3:7 * MiB + 1003]
    f.seek(0)
    assert hashlib.sha256(f.read()).hexdigest() == hashlib.sha256(big).hexdigest()

with fsspec.open(f"s3://{bucket}/dir/sub/note.txt", "w", **options) as text:
    text.write("hello from fsspec\n")
with fsspec.open(f"s3://{bucket}/dir/sub/note.txt", "r", **options) as text:
    assert text.read() == "hello from fsspec\n"

local = os.path.join(workdir, "local.txt")
with open(local, "wb") as f:
    f.write(b"put me")
fs.put(local, f"{bucket}/other/local.txt")
fs.get(f"{bucket}/other/local.txt", os.path.join(workdir, "back.txt"))
with open(os.path.join(workdir, "back.txt"), "rb") as f:
    assert f.read() == b"put me"

fs.invalidate_cache()
top = sorted(fs.ls(bucket, detail=False))
assert top == [f"{bucket}/dir", f"{bucket}/other"], top
under = sorted(fs.ls(f"{bucket}/dir", detail=False))
assert under == [f"{bucket}/dir/big.bin", f"{bucket}/dir/small.bin", f"{bucket}/dir/sub"], under
found = fs.find(bucket)
assert found == [f"{bucket}/dir/big.bin", f"{bucket}/dir/small.bin", f"{bucket}/dir/sub/note.txt",
                 f"{bucket}/other/local.txt"], found
assert sorted(fs.glob(f"{bucket}/dir/*.bin")) == [f"{bucket}/dir/big.bin", f"{bucket}/dir/small.bin"]
assert fs.du(f"{bucket}/dir") == len(small) + len(big) + len("hello from fsspec\n")
sizes = {path.split("/", 1)[1]: fs.size(path) for path in found}

fs.copy(f"{bucket}/dir/small.bin", f"{bucket}/copy.bin")
assert fs.cat(f"{bucket}/copy.bin") == small
fs.rm(f"{bucket}/copy.bin")
fs.rm(f"{bucket}/dir", recursive=True)
fs.invalidate_cache()
assert not fs.exists(f"{bucket}/dir/small.bin")
assert fs.find(bucket) == [f"{bucket}/other/local.txt"]
print(json.dumps({"sizes": sizes, "big_etag": big_etag}))
'''


def test_s3fs_write_read_list_delete(server: CairnServer, s3: S3Client, tmp_path: Path) -> None:
    assert S3FS_PYTHON.exists(), f"{S3FS_PYTHON} is missing: run scripts/setup"
    name = fresh_bucket_name("s3fs")
    script = tmp_path / "s3fs_check.py"
    script.write_text(SCRIPT)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CAIRN_"))}
    env.update({
        "CAIRN_KEY": server.access_key,
        "CAIRN_SECRET": server.secret_key,
        "CAIRN_ENDPOINT": server.endpoint,
        "CAIRN_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    result = subprocess.run([str(S3FS_PYTHON), str(script), name, str(tmp_path)], env=env,
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["sizes"] == {"dir/big.bin": 12 * 1024 * 1024, "dir/small.bin": 70_000,
                                "dir/sub/note.txt": 18, "other/local.txt": 6}
    assert summary["big_etag"].endswith('-3"'), summary  # 5 + 5 + 2 MiB parts

    # What s3fs left behind, seen by another client: one object, the multipart one gone too.
    listed = s3.list_objects_v2(Bucket=name)["Contents"]
    assert [(item["Key"], item["Size"]) for item in listed] == [("other/local.txt", 6)]
    assert s3.list_multipart_uploads(Bucket=name).get("Uploads", []) == []

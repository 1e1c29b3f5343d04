"""The real AWS CLI against the server: `aws s3` high-level commands and `aws s3api` calls.

The CLI runs with an isolated config file (tests.harness.run_aws) and its default transfer
settings, so files over 8 MiB go up as multipart uploads.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.functional.payloads import MiB, body, etag_of, file_digest, make_tree, read_tree, write_stream
from tests.harness import CairnServer, fresh_bucket_name, run_aws


def ls_recursive(server: CairnServer, url: str) -> dict[str, int]:
    """`aws s3 ls --recursive` as {key: size}; an empty listing makes the CLI exit 1."""
    result = run_aws(server, "s3", "ls", url, "--recursive", check=False)
    assert result.returncode in (0, 1), result.stderr
    listed = {}
    for line in result.stdout.splitlines():
        _date, _time, size, key = line.split(None, 3)
        listed[key] = int(size)
    return listed


def test_mb_ls_rb(server: CairnServer) -> None:
    name = fresh_bucket_name("cli")
    assert run_aws(server, "s3", "mb", f"s3://{name}").stdout.strip() == f"make_bucket: {name}"
    names = [line.split()[-1] for line in run_aws(server, "s3", "ls").stdout.splitlines()]
    assert name in names
    assert run_aws(server, "s3", "rb", f"s3://{name}").stdout.strip() == f"remove_bucket: {name}"
    assert name not in run_aws(server, "s3", "ls").stdout.split()


def test_sync_cp_rm_tree(server: CairnServer, tmp_path: Path) -> None:
    name = fresh_bucket_name("cli")
    run_aws(server, "s3", "mb", f"s3://{name}")
    up = tmp_path / "up"
    files = make_tree(up, "sync")

    run_aws(server, "s3", "sync", "--no-progress", str(up), f"s3://{name}/tree")
    assert ls_recursive(server, f"s3://{name}/tree/") == {f"tree/{k}": len(v) for k, v in files.items()}

    # Nothing changed: a second sync transfers nothing (sizes and Last-Modified agree).
    again = run_aws(server, "s3", "sync", "--no-progress", str(up), f"s3://{name}/tree")
    assert again.stdout.strip() == "", again.stdout

    down = tmp_path / "down"
    run_aws(server, "s3", "sync", f"s3://{name}/tree", str(down))
    assert read_tree(down) == files

    changed = body(777, seed="changed")
    (up / "sub/a.bin").write_bytes(changed)
    third = run_aws(server, "s3", "sync", "--no-progress", str(up), f"s3://{name}/tree")
    uploads = [line for line in third.stdout.splitlines() if line.startswith("upload:")]
    assert len(uploads) == 1 and "sub/a.bin" in uploads[0], third.stdout
    single = tmp_path / "single.bin"
    run_aws(server, "s3", "cp", f"s3://{name}/tree/sub/a.bin", str(single))
    assert single.read_bytes() == changed

    # --delete removes the remote copies of files that are gone locally, and only those.
    (up / "top.txt").unlink()
    (up / "sub/deeper/c.txt").unlink()
    pruned = run_aws(server, "s3", "sync", "--no-progress", "--delete", str(up), f"s3://{name}/tree")
    deletes = sorted(line.split()[1] for line in pruned.stdout.splitlines() if line.startswith("delete:"))
    assert deletes == [f"s3://{name}/tree/sub/deeper/c.txt", f"s3://{name}/tree/top.txt"], pruned.stdout
    del files["top.txt"], files["sub/deeper/c.txt"]
    files["sub/a.bin"] = changed
    assert ls_recursive(server, f"s3://{name}/tree/") == {f"tree/{k}": len(v) for k, v in files.items()}

    run_aws(server, "s3", "rm", f"s3://{name}/tree/other/d.bin")
    assert "tree/other/d.bin" not in ls_recursive(server, f"s3://{name}/tree/")
    run_aws(server, "s3", "rm", f"s3://{name}/tree", "--recursive")
    assert ls_recursive(server, f"s3://{name}/") == {}
    run_aws(server, "s3", "rb", f"s3://{name}")


def test_cp_200_mib(server: CairnServer, tmp_path: Path) -> None:
    name = fresh_bucket_name("cli")
    run_aws(server, "s3", "mb", f"s3://{name}")
    source = write_stream(tmp_path / "big.bin", 200 * MiB, seed="big")
    run_aws(server, "s3", "cp", "--no-progress", str(source.path), f"s3://{name}/big.bin")

    head = json.loads(run_aws(server, "s3api", "head-object", "--bucket", name, "--key", "big.bin").stdout)
    assert head["ContentLength"] == source.size
    # The CLI's defaults cut 200 MiB into twenty-five 8 MiB parts: a multipart ETag.
    assert head["ETag"].endswith('-25"'), head["ETag"]

    target = tmp_path / "big.back"
    run_aws(server, "s3", "cp", "--no-progress", f"s3://{name}/big.bin", str(target))
    assert file_digest(target) == source.sha256


def test_s3api_object_calls(server: CairnServer, tmp_path: Path) -> None:
    name = fresh_bucket_name("cli")
    run_aws(server, "s3api", "create-bucket", "--bucket", name)
    data = body(70_000, seed="s3api")
    source = tmp_path / "in.bin"
    source.write_bytes(data)

    put = json.loads(run_aws(server, "s3api", "put-object", "--bucket", name, "--key", "dir/obj.bin",
                             "--body", str(source), "--content-type", "application/x-test",
                             "--metadata", "color=blue,Shape=Round").stdout)
    assert put["ETag"] == etag_of(data)

    head = json.loads(run_aws(server, "s3api", "head-object", "--bucket", name, "--key", "dir/obj.bin").stdout)
    assert head["ContentLength"] == len(data)
    assert head["ContentType"] == "application/x-test"
    assert head["ETag"] == etag_of(data)
    assert head["Metadata"] == {"color": "blue", "shape": "Round"}

    target = tmp_path / "out.bin"
    got = json.loads(run_aws(server, "s3api", "get-object", "--bucket", name, "--key", "dir/obj.bin",
                             str(target)).stdout)
    assert got["ContentLength"] == len(data)
    assert target.read_bytes() == data

    ranged = tmp_path / "range.bin"
    part = json.loads(run_aws(server, "s3api", "get-object", "--bucket", name, "--key", "dir/obj.bin",
                              "--range", "bytes=10-19", str(ranged)).stdout)
    assert part["ContentRange"] == f"bytes 10-19/{len(data)}"
    assert ranged.read_bytes() == data[10:20]

    listed = json.loads(run_aws(server, "s3api", "list-objects-v2", "--bucket", name, "--prefix", "dir/").stdout)
    assert [(item["Key"], item["Size"]) for item in listed["Contents"]] == [("dir/obj.bin", len(data))]

    run_aws(server, "s3api", "delete-object", "--bucket", name, "--key", "dir/obj.bin")
    missing = run_aws(server, "s3api", "head-object", "--bucket", name, "--key", "dir/obj.bin", check=False)
    assert missing.returncode != 0
    assert "404" in missing.stderr or "Not Found" in missing.stderr, missing.stderr
    # The CLI merges pages and prints nothing at all for an empty listing.
    listed = json.loads(run_aws(server, "s3api", "list-objects-v2", "--bucket", name).stdout or "{}")
    assert listed.get("Contents", []) == []
    run_aws(server, "s3api", "delete-bucket", "--bucket", name)


def test_s3api_multipart_copy_tagging(server: CairnServer, tmp_path: Path) -> None:
    name = fresh_bucket_name("cli")
    run_aws(server, "s3api", "create-bucket", "--bucket", name)
    parts = [body(5 * MiB, seed="p1"), body(1234, seed="p2")]
    upload_id = json.loads(run_aws(server, "s3api", "create-multipart-upload", "--bucket", name,
                                   "--key", "mp.bin").stdout)["UploadId"]
    done = []
    for number, data in enumerate(parts, start=1):
        part_file = tmp_path / f"part{number}"
        part_file.write_bytes(data)
        etag = json.loads(run_aws(server, "s3api", "upload-part", "--bucket", name, "--key", "mp.bin",
                                  "--upload-id", upload_id, "--part-number", str(number),
                                  "--body", str(part_file)).stdout)["ETag"]
        assert etag == etag_of(data)
        done.append({"PartNumber": number, "ETag": etag})
    listed_parts = json.loads(run_aws(server, "s3api", "list-parts", "--bucket", name, "--key", "mp.bin",
                                      "--upload-id", upload_id).stdout)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed_parts] == [(1, 5 * MiB), (2, 1234)]
    completed = json.loads(run_aws(server, "s3api", "complete-multipart-upload", "--bucket", name,
                                   "--key", "mp.bin", "--upload-id", upload_id,
                                   "--multipart-upload", json.dumps({"Parts": done})).stdout)
    assert completed["ETag"].endswith('-2"'), completed

    run_aws(server, "s3api", "copy-object", "--bucket", name, "--key", "copy/mp.bin",
            "--copy-source", f"{name}/mp.bin")
    target = tmp_path / "copy.bin"
    run_aws(server, "s3api", "get-object", "--bucket", name, "--key", "copy/mp.bin", str(target))
    assert target.read_bytes() == b"".join(parts)

    run_aws(server, "s3api", "put-object-tagging", "--bucket", name, "--key", "copy/mp.bin",
            "--tagging", json.dumps({"TagSet": [{"Key": "team", "Value": "storage"}]}))
    tags = json.loads(run_aws(server, "s3api", "get-object-tagging", "--bucket", name,
                              "--key", "copy/mp.bin").stdout)["TagSet"]
    assert tags == [{"Key": "team", "Value": "storage"}]

    listed = json.loads(run_aws(server, "s3api", "list-objects-v2", "--bucket", name,
                                "--delimiter", "/").stdout)
    assert [item["Key"] for item in listed["Contents"]] == ["mp.bin"]
    assert listed["CommonPrefixes"] == [{"Prefix": "copy/"}]

    deleted = json.loads(run_aws(server, "s3api", "delete-objects", "--bucket", name, "--delete",
                                 json.dumps({"Objects": [{"Key": "mp.bin"}, {"Key": "copy/mp.bin"}]})).stdout)
    assert sorted(item["Key"] for item in deleted["Deleted"]) == ["copy/mp.bin", "mp.bin"]
    run_aws(server, "s3api", "delete-bucket", "--bucket", name)

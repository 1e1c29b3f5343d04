"""Test data and S3 error inspection shared by the functional tests.

Contract: bodies are deterministic pseudo-random bytes (a seed gives the same body every time, so a
failure reproduces), large bodies are streamed to files with their digests computed on the way, and
`s3_error` turns any botocore failure into the (HTTP status, S3 error code) pair the tests compare.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

KiB = 1024
MiB = 1024 * KiB

# Sizes that straddle the engine's edges: empty, tiny, page, the 128 KiB inline limit of a framed
# shard (k = 2 halves a body, so 2 x 128 KiB is the body-level edge), the 1 MiB block, several blocks.
EDGE_SIZES = [
    0, 1, 4095, 4096,
    128 * KiB - 1, 128 * KiB, 128 * KiB + 1,
    256 * KiB - 64, 256 * KiB - 1, 256 * KiB, 256 * KiB + 1,
    MiB - 1, MiB, MiB + 1,
    3 * MiB + 17,
]

# A small mixed set for tests that write many objects: inline and not, one and several blocks.
MIXED_SIZES = [0, 1, 1000, 4096, 128 * KiB + 1, 256 * KiB + 1, MiB + 3, 3 * MiB + 17]


def body(size: int, seed: int | str = 0) -> bytes:
    """`size` deterministic pseudo-random bytes; different seeds give different bodies."""
    return random.Random(f"{seed}/{size}").randbytes(size)


def etag_of(data: bytes) -> str:
    """The ETag S3 gives a single-part object: its MD5 in hex, in double quotes."""
    return '"' + hashlib.md5(data).hexdigest() + '"'


@dataclass(frozen=True)
class StreamedFile:
    path: Path
    size: int
    sha256: str
    md5: str


def write_stream(path: Path, size: int, seed: int | str = 0, chunk: int = 4 * MiB) -> StreamedFile:
    """Write `size` deterministic bytes to `path` chunk by chunk; never hold the whole body."""
    rng = random.Random(f"stream/{seed}/{size}")
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "wb") as out:
        left = size
        while left:
            piece = rng.randbytes(min(chunk, left))
            sha.update(piece)
            md5.update(piece)
            out.write(piece)
            left -= len(piece)
    return StreamedFile(path, size, sha.hexdigest(), md5.hexdigest())


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def stream_digest(chunks: Iterator[bytes]) -> tuple[int, str]:
    """(length, sha256 hex) of a streamed body."""
    sha = hashlib.sha256()
    length = 0
    for piece in chunks:
        sha.update(piece)
        length += len(piece)
    return length, sha.hexdigest()


def s3_error(exc: BaseException) -> tuple[int, str]:
    """(HTTP status, S3 error code) of a botocore ClientError; (0, class name) for anything else.

    For HEAD responses, which carry no body, botocore reports the status as the code ("404").
    """
    if isinstance(exc, ClientError):
        response: dict[str, Any] = exc.response
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return status, str(response.get("Error", {}).get("Code", ""))
    return 0, type(exc).__name__


def error_of(call: Callable[[], Any]) -> tuple[int, str]:
    """Run `call`, which must fail, and return its (status, code); fail the test if it succeeds."""
    try:
        result = call()
    except Exception as exc:  # any failure, HTTP or transport, is the data this returns
        return s3_error(exc)
    status = result.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(result, dict) else result
    raise AssertionError(f"expected an S3 error, the call succeeded (status {status})")


def status_of(response: dict[str, Any]) -> int:
    return int(response["ResponseMetadata"]["HTTPStatusCode"])


# A small folder tree for sync tools: odd names, an empty file, nesting, one file over 1 MiB.
TREE = {
    "top.txt": 12,
    "empty": 0,
    "space name.txt": 100,
    "ünïcode.bin": 4096,
    "sub/a.bin": 300 * 1024,
    "sub/deeper/b.bin": MiB + 1,
    "sub/deeper/c.txt": 5,
    "other/d.bin": 128 * 1024,
}


def make_tree(root: Path, seed: str) -> dict[str, bytes]:
    """Write `TREE` under `root` (bodies seeded by `seed` and the name); returns {name: bytes}."""
    files = {}
    for name, size in TREE.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        files[name] = body(size, seed=f"{seed}/{name}")
        path.write_bytes(files[name])
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

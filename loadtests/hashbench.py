"""Throughput of the candidate bitrot hashes on 1 MiB buffers, the size of an erasure block.

Prints one line per algorithm in GB/s (10^9 bytes per second, best of several runs, one thread).
Run: `.venv/bin/python loadtests/hashbench.py [--seconds S]`. crc32c is optional (the `crc32c`
package is not a dependency of Cairn); without it its line says so.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import timeit
import zlib
from collections.abc import Callable

import blake3
import xxhash

BUFFER_SIZE = 1024 * 1024


def algorithms() -> dict[str, Callable[[bytes], object] | None]:
    try:
        import crc32c

        crc: Callable[[bytes], object] | None = crc32c.crc32c
    except ImportError:
        crc = None
    return {
        "xxh3-128": xxhash.xxh3_128_digest,
        "xxh64": xxhash.xxh64_digest,
        "blake3": lambda b: blake3.blake3(b).digest(length=16),
        "md5": lambda b: hashlib.md5(b).digest(),
        "sha256": lambda b: hashlib.sha256(b).digest(),
        "crc32c": crc,
        "crc32 (zlib)": zlib.crc32,
    }


def throughput(fn: Callable[[bytes], object], buf: bytes, seconds: float) -> float:
    """Best-of-5 GB/s of fn over buf, each run lasting about seconds / 5."""
    once = timeit.timeit(lambda: fn(buf), number=3) / 3
    number = max(1, int(seconds / 5 / max(once, 1e-9)))
    best = min(timeit.repeat(lambda: fn(buf), number=number, repeat=5)) / number
    return len(buf) / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time spent per algorithm")
    args = parser.parse_args()
    buf = os.urandom(BUFFER_SIZE)
    print(f"{'algorithm':<14} GB/s  (1 MiB buffers, one thread)")
    for name, fn in algorithms().items():
        if fn is None:
            print(f"{name:<14} not installed (pip install crc32c)")
        else:
            print(f"{name:<14} {throughput(fn, buf, args.seconds):6.2f}")


if __name__ == "__main__":
    main()

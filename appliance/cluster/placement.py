"""Placement: drive arguments -> erasure sets -> the set and shard order of each object.

Contract: pure functions, no I/O. Given the same drive list and deployment id, every process (and
later every node) computes the same layout and the same placement for every object name.

- `expand_ellipsis` expands MinIO's `{1...N}` syntax (several ranges multiply; zero-padded ranges
  keep their width). In `http://host{1...4}/disk{1...8}` the host varies fastest, as in MinIO, so
  neighbouring drives of a set sit on different hosts.
- `choose_set_size` picks the largest set size from 2 to 16 that divides the drive count.
- `set_index` hashes the object name, keyed with the deployment id, onto a set (BLAKE3 keyed hash:
  stable across versions and platforms, unlike Python's `hash`).
The shard order inside a set is the engine's business (`engine.erasure_set.shard_distribution`).
"""

from __future__ import annotations

import itertools
import re

import blake3

_RANGE = re.compile(r"\{(\d+)\.\.\.(\d+)\}")


class PlacementError(ValueError):
    """The drive arguments cannot form a valid layout."""


def expand_ellipsis(pattern: str) -> list[str]:
    """Expand every `{a...b}` range in `pattern`; the leftmost range varies fastest."""
    parts = _RANGE.split(pattern)
    literals = parts[0::3]
    ranges: list[list[str]] = []
    for lo, hi in zip(parts[1::3], parts[2::3], strict=True):
        a, b = int(lo), int(hi)
        if b < a:
            raise PlacementError(f"empty range {{{lo}...{hi}}} in {pattern!r}")
        width = len(lo) if lo.startswith("0") and len(lo) > 1 else 0
        ranges.append([str(i).zfill(width) for i in range(a, b + 1)])
    if not ranges:
        return [pattern]
    out = []
    # itertools.product varies the last range fastest; reverse so the first (host) varies fastest.
    for combo in itertools.product(*reversed(ranges)):
        values = list(reversed(combo))
        text = literals[0]
        for value, literal in zip(values, literals[1:], strict=True):
            text += value + literal
        out.append(text)
    return out


def expand_drives(args: list[str]) -> list[str]:
    """Expand every argument and reject duplicates."""
    drives = [d for arg in args for d in expand_ellipsis(arg)]
    seen: set[str] = set()
    for drive in drives:
        if drive in seen:
            raise PlacementError(f"drive {drive!r} is given twice")
        seen.add(drive)
    return drives


def choose_set_size(drive_count: int) -> int:
    """The largest erasure-set size from 2 to 16 that divides the drive count (1 for a lone drive)."""
    if drive_count < 1:
        raise PlacementError("at least one drive is needed")
    if drive_count == 1:
        return 1
    for size in range(16, 1, -1):
        if drive_count % size == 0:
            return size
    raise PlacementError(f"{drive_count} drives cannot be split into sets of 2 to 16 drives")


def split_sets(drives: list[str], set_size: int) -> list[list[str]]:
    return [drives[i : i + set_size] for i in range(0, len(drives), set_size)]


def set_index(object_name: str, deployment_id: str, set_count: int) -> int:
    """Which erasure set holds `object_name`: a keyed hash of the name, modulo the number of sets."""
    if set_count == 1:
        return 0
    key = blake3.blake3(deployment_id.encode()).digest()
    digest = blake3.blake3(object_name.encode(), key=key).digest(length=8)
    return int.from_bytes(digest, "little") % set_count


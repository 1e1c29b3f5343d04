"""Quorum rules and the one function that reduces a fan-out's results against a quorum.

This module owns every quorum decision of the engine; it does not know which API called it. Every
fan-out to the drives of an erasure set (or, later, to nodes) ends in `reduce_quorum_errors`: no
caller counts successes by hand.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from appliance.engine.errors import (
    DriveError,
    DriveOffline,
    EngineError,
    FileNotFoundOnDrive,
    ReadQuorumUnavailable,
    WriteQuorumUnavailable,
)


def default_parity(set_size: int) -> int:
    """Parity drives per set when the operator sets none (MinIO's defaults): 1->0, 2-3->1, 4-5->2, 6-7->3, 8+->4."""
    if set_size <= 1:
        return 0
    if set_size <= 3:
        return 1
    if set_size <= 5:
        return 2
    if set_size <= 7:
        return 3
    return 4


def read_quorum(k: int, m: int) -> int:
    """Drives that must return consistent metadata and intact shards before any byte is served: the data shards."""
    return k


def write_quorum(k: int, m: int) -> int:
    """Drives that must acknowledge a write before the client hears success.

    The data shards, plus one when data == parity, so that the two halves of a split set can never
    both accept a write.
    """
    return k + 1 if k == m and m > 0 else k


def reduce_quorum_errors(
    results: Sequence[object],
    quorum: int,
    *,
    for_write: bool,
) -> None:
    """Raise the error that best describes a fan-out that reached fewer than `quorum` successes.

    `results` holds one entry per drive: an exception instance (the drive failed) or anything else
    (the drive succeeded). Returns None when at least `quorum` drives succeeded. Otherwise it raises
    the most common error if that error alone reached the quorum (e.g. `FileNotFoundOnDrive` on a read
    means the object is really absent), else `WriteQuorumUnavailable` / `ReadQuorumUnavailable`.
    """
    successes = sum(1 for r in results if not isinstance(r, BaseException))
    if successes >= quorum:
        return
    errors = [r for r in results if isinstance(r, BaseException)]
    counted = Counter(type(e) for e in errors)
    if counted:
        kind, count = counted.most_common(1)[0]
        if count >= quorum and not issubclass(kind, DriveOffline):
            exemplar = next(e for e in errors if type(e) is kind)
            raise exemplar
    unexpected = [e for e in errors if not isinstance(e, EngineError)]
    if unexpected and successes == 0 and len(unexpected) == len(results):
        raise unexpected[0]
    if for_write:
        raise WriteQuorumUnavailable(f"{successes} of {len(results)} drives acknowledged, {quorum} needed")
    raise ReadQuorumUnavailable(f"{successes} of {len(results)} drives answered, {quorum} needed")


def count_missing(results: Sequence[object]) -> int:
    """How many drives answered that they hold no such file (healthy, but absent)."""
    return sum(1 for r in results if isinstance(r, FileNotFoundOnDrive))


def is_drive_error(result: object) -> bool:
    return isinstance(result, DriveError)

"""Quorum rules and the reduction of fan-out results."""

import pytest

from appliance.engine.errors import (
    DriveOffline,
    FileNotFoundOnDrive,
    ReadQuorumUnavailable,
    VolumeNotFound,
    WriteQuorumUnavailable,
)
from appliance.engine.quorum import default_parity, read_quorum, reduce_quorum_errors, write_quorum

PARITY = [(1, 0), (2, 1), (3, 1), (4, 2), (5, 2), (6, 3), (7, 3), (8, 4), (12, 4), (16, 4)]


@pytest.mark.parametrize(("set_size", "parity"), PARITY)
def test_default_parity(set_size: int, parity: int) -> None:
    assert default_parity(set_size) == parity


QUORUMS = [
    # k, m, read, write
    (1, 0, 1, 1),
    (1, 1, 1, 2),
    (2, 2, 2, 3),
    (3, 1, 3, 3),
    (4, 4, 4, 5),
    (12, 4, 12, 12),
    (8, 8, 8, 9),
]


@pytest.mark.parametrize(("k", "m", "rq", "wq"), QUORUMS)
def test_quorums(k: int, m: int, rq: int, wq: int) -> None:
    assert read_quorum(k, m) == rq
    assert write_quorum(k, m) == wq


def test_split_halves_cannot_both_write() -> None:
    for k in range(1, 9):
        n = 2 * k
        assert 2 * write_quorum(k, k) > n


OK = None
OFF = DriveOffline("x")
NF = FileNotFoundOnDrive("x")
VNF = VolumeNotFound("b")

REDUCTIONS = [
    # results, quorum, for_write, expected exception type (None: success)
    ([OK, OK, OK, OK], 3, True, None),
    ([OK, OK, OK, OFF], 3, True, None),
    ([OK, OK, OFF, OFF], 3, True, WriteQuorumUnavailable),
    ([OK, OK, OFF, OFF], 2, False, None),
    ([OK, OFF, OFF, OFF], 2, False, ReadQuorumUnavailable),
    ([NF, NF, NF, OK], 2, False, FileNotFoundOnDrive),
    ([NF, NF, OFF, OFF], 2, False, FileNotFoundOnDrive),
    ([NF, OFF, OFF, OK], 2, False, ReadQuorumUnavailable),
    ([VNF, VNF, VNF, OFF], 3, True, VolumeNotFound),
    ([OFF, OFF, OFF, OFF], 1, False, ReadQuorumUnavailable),
]


@pytest.mark.parametrize(("results", "quorum", "for_write", "expected"), REDUCTIONS)
def test_reduce_quorum_errors(results: list, quorum: int, for_write: bool, expected: type | None) -> None:
    if expected is None:
        reduce_quorum_errors(results, quorum, for_write=for_write)
    else:
        with pytest.raises(expected):
            reduce_quorum_errors(results, quorum, for_write=for_write)

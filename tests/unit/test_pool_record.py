"""The pools record: a deployment remembers its pools, so one left off the command line stops the start."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cluster.pool_record import PoolMissing, check_pools
from appliance.engine.drive import Drive, LocalDrive


def _pool0(tmp_path: Path) -> list[list[Drive]]:
    return [[LocalDrive(str(tmp_path / f"d{i}")) for i in range(4)]]


@pytest.mark.parametrize(("starts", "refused_at"), [
    ([["a"], ["a"]], None),                      # same pools every start
    ([["a"], ["a", "b"], ["a", "b"]], None),     # a pool added, then kept
    ([["a", "b"], ["a"]], 1),                    # pool b left off
    ([["a", "b"], ["b", "a"]], 1),               # pools given in another order
    ([["a", "b", "c"], ["a", "c"]], 1),          # a middle pool left off
])
def test_pools_are_never_dropped(tmp_path: Path, starts: list[list[str]], refused_at: int | None) -> None:
    pool0 = _pool0(tmp_path)
    for d in pool0[0]:
        d.write_format(b"{}")  # makes the system area exist, as a formatted drive has it
    for n, pools in enumerate(starts):
        if n == refused_at:
            with pytest.raises(PoolMissing):
                check_pools(pool0, pools)
            return
        check_pools(pool0, pools)
    assert refused_at is None


def test_the_longest_record_wins_over_a_stale_drive(tmp_path: Path) -> None:
    pool0 = _pool0(tmp_path)
    for d in pool0[0]:
        d.write_format(b"{}")
    check_pools(pool0, ["a", "b"])
    pool0[0][0].sys_write("pools.json", b'{"pools": ["a"]}')  # a drive that missed the update
    with pytest.raises(PoolMissing):
        check_pools(pool0, ["a"])

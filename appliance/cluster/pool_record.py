"""The deployment's record of its pools, so that a pool left off the command line is noticed.

Contract: `check_pools(sets, pool_ids)` runs at start, after every pool's identities are settled.
Each pool is named by the id of its first drive slot (`layout[0][0]` of its format.json). The
record lists every pool the deployment ever had, in order, and lives in the system area of every
pool's drives (`.cairn.sys/pools.json`, written to every drive that answers; the longest record
found wins), so that leaving out pool 0 itself is noticed too. Starting with fewer pools than
recorded raises `PoolMissing`: objects of the missing pool would silently vanish from the
namespace, and pools are never removed. A new pool appended to the arguments is added to the record.
"""

from __future__ import annotations

import contextlib
import json

from appliance.engine.drive import Drive
from appliance.engine.errors import DriveError, DriveOffline

POOLS_FILE = "pools.json"


class PoolMissing(DriveOffline):
    """The command line lacks a pool the deployment has."""


def _recorded(drives: list[Drive]) -> list[str]:
    best: list[str] = []
    for drive in drives:
        try:
            pools = json.loads(drive.sys_read(POOLS_FILE))["pools"]
        except (DriveError, ValueError, KeyError, TypeError):
            continue
        if isinstance(pools, list) and len(pools) > len(best):
            best = [str(p) for p in pools]
    return best


def check_pools(sets: list[list[Drive]], pool_ids: list[str]) -> None:
    """Refuse a pool left off or reordered; `sets` are the erasure sets of every pool given."""
    drives = [d for group in sets for d in group]
    recorded = _recorded(drives)
    missing = [i for i, pool in enumerate(recorded) if pool not in pool_ids]
    if missing:
        raise PoolMissing(
            f"this deployment has {len(recorded)} pools but the command line gives {len(pool_ids)}: pool(s) "
            f"{', '.join(str(i + 1) for i in missing)} are missing. Pools are never removed: start with every "
            "pool's drives, in the original order"
        )
    if recorded[: len(pool_ids)] != pool_ids[: len(recorded)]:
        raise PoolMissing("the pools are given in another order than the deployment's: start with the original order")
    if len(recorded) < len(pool_ids):
        record = json.dumps({"pools": pool_ids}).encode()
        for drive in drives:
            with contextlib.suppress(DriveError):
                drive.sys_write(POOLS_FILE, record)

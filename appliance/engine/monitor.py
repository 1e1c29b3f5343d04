"""Drive monitor: notices drives that come back, and blank drives put in place of dead ones.

Contract: `run_once` probes every slot of every set. A slot whose drive was offline is brought
back when its drive answers with the identity that belongs in that slot; a slot whose drive is
now blank (a replacement) is formatted into the slot, marked for a full heal, and brought back.
A drive with the wrong identity stays out, with one log line. Probing is cheap (one small file
read per drive), so it runs every few seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from appliance.engine.drive import Drive, LocalDrive
from appliance.engine.erasure_set import ErasureSet, OfflineDrive
from appliance.engine.errors import DriveError, ForeignDrive, UnformattedDrive
from appliance.engine.healing import mark_for_drive_heal
from appliance.engine.identity import DriveFormat

log = logging.getLogger("cairn.monitor")


def reopen_local(current: Drive, fresh: bool = False) -> Drive:
    """The drive object to probe a slot with: the current one, or a new LocalDrive on its folder."""
    return current if isinstance(current, LocalDrive) and not fresh else LocalDrive(current.endpoint)


class DriveMonitor:
    """Watches the slots of one pool's sets. In a cluster, `reopen` builds remote drives for other
    nodes' slots, `may_format` keeps formatting a blank replacement to the node that owns it, and
    drives that `recovers` (remote ones) stay in their slot while their node is away."""

    def __init__(
        self, sets: list[ErasureSet], deployment_id: str, layout: list[list[str]], interval: float = 5.0, *,
        reopen: Callable[[Drive, bool], Drive] = reopen_local,
        may_format: Callable[[Drive], bool] = lambda drive: True,
        recovers: Callable[[Drive], bool] = lambda drive: False,
    ) -> None:
        self.sets = sets
        self.deployment_id = deployment_id
        self.layout = layout
        self.interval = interval
        self.reopen = reopen
        self.may_format = may_format
        self.recovers = recovers
        self._refused: set[str] = set()
        self._failing: set[str] = set()

    def _probe(self, eset: ErasureSet, slot: int) -> Drive | None:
        """The drive to use in the slot now, or None to leave it as it is."""
        current = eset.drives[slot]
        candidate = self.reopen(current, False)
        expected = self.layout[eset.index][slot]
        try:
            fmt = DriveFormat.from_bytes(candidate.read_format())
        except UnformattedDrive:
            try:
                blank = candidate.is_blank()
            except DriveError:
                return None
            if not blank or not self.may_format(candidate):
                return None
            # A fresh object: the old one may hold handles (its group committer's directory fd) on
            # the dead filesystem that this blank one replaced.
            candidate = self.reopen(candidate, True)
            candidate.write_format(DriveFormat(self.deployment_id, expected, self.layout).to_bytes())
            candidate.clean_temp()
            mark_for_drive_heal(candidate)
            log.warning("drive %s was replaced by a blank drive: formatted into set %d slot %d, healing it",
                        candidate.endpoint, eset.index + 1, slot + 1)
            return candidate
        except (ForeignDrive, DriveError) as exc:
            if self.recovers(current) and not isinstance(exc, ForeignDrive):
                # A remote drive fails fast while its node is away and works again as soon as the
                # node answers: swapping it out would add a monitor interval to every recovery.
                if current.endpoint not in self._failing:
                    self._failing.add(current.endpoint)
                    log.error("drive %s went offline: %s", current.endpoint, exc)
                return None
            if not isinstance(current, OfflineDrive):
                log.error("drive %s went offline: %s", candidate.endpoint, exc)
                return OfflineDrive(candidate.endpoint, str(exc))  # type: ignore[return-value]
            return None
        if fmt.deployment_id != self.deployment_id or fmt.drive_id != expected:
            if candidate.endpoint not in self._refused:
                self._refused.add(candidate.endpoint)
                log.error("drive %s holds another identity (%s): refused", candidate.endpoint, fmt.drive_id)
            return OfflineDrive(candidate.endpoint, "wrong identity") if not isinstance(current, OfflineDrive) else None  # type: ignore[return-value]
        if isinstance(current, OfflineDrive) or current.endpoint in self._failing:
            self._failing.discard(current.endpoint)
            log.info("drive %s is back online", candidate.endpoint)
            return candidate if candidate is not current else None
        return None

    def run_once_sync(self) -> int:
        """Probe every slot; returns how many slots changed drive."""
        changed = 0
        for eset in self.sets:
            for slot in range(eset.n):
                try:
                    replacement = self._probe(eset, slot)
                except DriveError as exc:
                    log.error("probing %s failed: %s", eset.drives[slot].endpoint, exc)
                    continue
                if replacement is not None:
                    eset.drives[slot] = replacement
                    changed += 1
        return changed

    async def run_once(self) -> int:
        return await asyncio.get_running_loop().run_in_executor(self.sets[0].executor, self.run_once_sync)

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("drive monitor pass failed")
            await asyncio.sleep(self.interval)

"""Drive identity (`format.json`) and the start-up check that every drive sits in its own slot.

Contract: `bootstrap_formats` looks at every drive of a deployment and returns which drives may be
used. It formats a brand-new deployment, formats a blank replacement drive into the slot it fills
(and reports it for healing), and refuses, with one clear log line each, a drive that belongs to
another deployment, sits in the wrong slot, or holds foreign data. It never reformats a drive that
holds an identity.

format.json (version 1):
    {"format": "cairn", "version": 1, "deployment_id": "<uuid>", "drive_id": "<uuid>",
     "layout": [["<uuid of set 0 drive 0>", ...], ...]}
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field

from appliance.engine.drive import Drive
from appliance.engine.errors import DriveError, DriveOffline, ForeignDrive, UnformattedDrive

log = logging.getLogger("cairn.identity")

FORMAT_NAME = "cairn"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class DriveFormat:
    deployment_id: str
    drive_id: str
    layout: list[list[str]]

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "deployment_id": self.deployment_id,
                "drive_id": self.drive_id,
                "layout": self.layout,
            },
            indent=1,
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> DriveFormat:
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT_NAME:
                raise ForeignDrive(f"not a {FORMAT_NAME} drive (format {doc.get('format')!r})")
            if doc.get("version") != FORMAT_VERSION:
                raise ForeignDrive(f"unsupported format.json version {doc.get('version')!r}")
            return cls(str(doc["deployment_id"]), str(doc["drive_id"]), [list(map(str, s)) for s in doc["layout"]])
        except (ValueError, KeyError, TypeError) as exc:
            raise ForeignDrive(f"unreadable format.json: {exc}") from exc


@dataclass
class BootstrapResult:
    deployment_id: str
    layout: list[list[str]]
    usable: list[list[bool]]
    fresh: list[tuple[int, int]] = field(default_factory=list)  # (set, slot) of drives formatted now
    problems: list[str] = field(default_factory=list)


class NotFormattedYet(DriveOffline):
    """Every drive is blank and this node may not create the deployment: another node formats it."""


def bootstrap_formats(
    sets: list[list[Drive]], *, may_create: bool = True, deployment_id: str | None = None,
    create_needs_all: bool = False,
) -> BootstrapResult:
    """Check (and where safe, write) the identity of every drive of one pool; see the module docstring.

    An all-blank pool becomes a new deployment only when `may_create` (in a cluster, only the first
    node formats; the others wait for it), and with `create_needs_all` only when every drive answered
(an unreachable node's drives may hold the identity). `deployment_id` joins an all-blank new pool to an existing
    deployment, and refuses drives that carry another one."""
    found: dict[tuple[int, int], DriveFormat] = {}
    state: dict[tuple[int, int], str] = {}
    problems: list[str] = []
    for s, drives in enumerate(sets):
        for j, drive in enumerate(drives):
            try:
                found[(s, j)] = DriveFormat.from_bytes(drive.read_format())
                state[(s, j)] = "formatted"
            except UnformattedDrive:
                state[(s, j)] = "blank" if _is_blank(drive) else "foreign"
            except ForeignDrive as exc:
                state[(s, j)] = "foreign"
                problems.append(f"drive {drive.endpoint} refused: {exc}")
            except DriveError as exc:
                state[(s, j)] = "offline"
                problems.append(f"drive {drive.endpoint} is offline: {exc}")

    shape = [len(d) for d in sets]
    if not found:
        if not may_create:
            raise NotFormattedYet("no drive of the pool holds an identity yet: waiting for the first node to format it")
        unreachable = [sets[s][j].endpoint for (s, j), st in state.items() if st == "offline"]
        if create_needs_all and unreachable:
            raise NotFormattedYet(f"cannot format a new deployment while {len(unreachable)} drive(s) do not answer: "
                                  + ", ".join(unreachable[:4]))
        joining = deployment_id is not None
        deployment_id = deployment_id or str(uuid.uuid4())
        layout = [[str(uuid.uuid4()) for _ in drives] for drives in sets]
        log.info("no drive holds an identity: formatting %s %s", "a new pool of deployment" if joining
                 else "a new deployment", deployment_id)
    else:
        votes = Counter((f.deployment_id, json.dumps(f.layout)) for f in found.values())
        (found_id, layout_json), _ = votes.most_common(1)[0]
        if deployment_id is not None and found_id != deployment_id:
            raise ForeignDrive(f"the drives of this pool belong to deployment {found_id}, not {deployment_id}")
        deployment_id = found_id
        layout = json.loads(layout_json)
        if [len(s) for s in layout] != shape:
            raise DriveOffline(
                f"the drives were formatted as {len(layout)} sets of {[len(s) for s in layout]} drives, but the "
                f"command line gives {len(shape)} sets of {shape}: start with the original drive list"
            )

    usable = [[False] * len(d) for d in sets]
    fresh: list[tuple[int, int]] = []
    for s, drives in enumerate(sets):
        for j, drive in enumerate(drives):
            status = state[(s, j)]
            fmt = found.get((s, j))
            if fmt is not None:
                if fmt.deployment_id != deployment_id:
                    problems.append(
                        f"drive {drive.endpoint} refused: it belongs to deployment {fmt.deployment_id}, not {deployment_id}"
                    )
                elif fmt.drive_id != layout[s][j]:
                    where = [(a, b) for a, row in enumerate(layout) for b, d in enumerate(row) if d == fmt.drive_id]
                    hint = f"it belongs in set {where[0][0] + 1} slot {where[0][1] + 1}" if where else "its id is unknown"
                    problems.append(
                        f"drive {drive.endpoint} refused: it sits in set {s + 1} slot {j + 1} but {hint}"
                    )
                else:
                    usable[s][j] = True
            elif status == "blank":
                try:
                    drive.write_format(DriveFormat(deployment_id, layout[s][j], layout).to_bytes())
                    usable[s][j] = True
                    if found:
                        fresh.append((s, j))
                        log.warning("drive %s was blank: formatted into set %d slot %d, it will be healed",
                                    drive.endpoint, s + 1, j + 1)
                except DriveError as exc:
                    problems.append(f"drive {drive.endpoint} could not be formatted: {exc}")
            elif status == "foreign":
                problems.append(f"drive {drive.endpoint} refused: it holds data but no {FORMAT_NAME} identity")
    for line in problems:
        log.error("%s", line)
    return BootstrapResult(deployment_id, layout, usable, fresh, problems)


def _is_blank(drive: Drive) -> bool:
    try:
        return drive.is_blank()
    except DriveError:
        return False

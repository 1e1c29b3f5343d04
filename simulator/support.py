"""What the simulator needs from this machine, and what is missing.

Contract: `missing(fuse)` returns one human-readable line per unmet requirement (empty: all is
there). The simulator refuses to run a scenario whose needs are not met and reports these lines
as the reason: it never silently skips a fault it cannot inject.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

TOOLS = {
    "losetup": "util-linux (apt install util-linux)",
    "mkfs.xfs": "xfsprogs (apt install xfsprogs)",
    "xfs_io": "xfsprogs (apt install xfsprogs)",
    "mount": "mount (apt install mount)",
    "umount": "mount (apt install mount)",
}


def missing(fuse: bool = False) -> list[str]:
    """Unmet requirements for loop-mounted XFS drives (and FUSE passthroughs if `fuse`)."""
    problems: list[str] = []
    if os.geteuid() != 0:
        problems.append("not running as root: loop devices and mounts need root")
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            problems.append(f"`{tool}` not found: install {package}")
    if not os.path.exists("/dev/loop-control"):
        problems.append("/dev/loop-control is missing: this kernel has no loop device support")
    if fuse:
        if not os.path.exists("/dev/fuse"):
            problems.append("/dev/fuse is missing: this kernel has no FUSE support")
        if shutil.which("fusermount") is None and shutil.which("fusermount3") is None:
            problems.append("`fusermount` not found: apt install fuse3 libfuse2")
        if importlib.util.find_spec("fuse") is None:
            problems.append("python module `fuse` not found: pip install fusepy")
        elif not _libfuse_loads():
            problems.append("libfuse.so.2 cannot be loaded: apt install libfuse2")
    return problems


def _libfuse_loads() -> bool:
    try:
        import fuse  # noqa: F401  (fusepy loads libfuse when imported)
    except (OSError, ImportError):
        return False
    return True

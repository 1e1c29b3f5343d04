"""What the simulator needs from this machine, and what is missing.

Contract: `missing(fuse, network)` returns one human-readable line per unmet requirement (empty:
all is there); `network` adds what the network-namespace lab of distributed scenarios needs. The simulator refuses to run a scenario whose needs are not met and reports these lines
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
NETWORK_TOOLS = {
    "ip": "iproute2 (apt install iproute2, or run scripts/setup)",
    "iptables": "iptables (apt install iptables, or run scripts/setup)",
    "unshare": "util-linux (apt install util-linux)",
    "nsenter": "util-linux (apt install util-linux)",
}


def missing(fuse: bool = False, network: bool = False) -> list[str]:
    """Unmet requirements for loop-mounted XFS drives (and FUSE passthroughs if `fuse`, and the
    network-namespace lab of distributed scenarios if `network`)."""
    problems = _not_root() + missing_tools(TOOLS)
    if network:
        problems += missing_network()
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


def missing_distributed() -> list[str]:
    """Unmet requirements of a distributed scenario: nodes in network namespaces on folder drives."""
    return _not_root() + missing_network()


def _not_root() -> list[str]:
    if os.geteuid() != 0:
        return ["not running as root: loop devices, mounts and network namespaces need root"]
    return []


def missing_tools(tools: dict[str, str]) -> list[str]:
    return [f"`{tool}` not found: install {package}" for tool, package in tools.items() if shutil.which(tool) is None]


def missing_network() -> list[str]:
    """Unmet requirements of the network-namespace lab (`netns.py`): its tools and network namespaces."""
    problems = missing_tools(NETWORK_TOOLS)
    if not os.path.exists("/proc/self/ns/net"):
        problems.append("/proc/self/ns/net is missing: this kernel has no network namespaces")
    return [f"{line}; distributed scenarios need it" for line in problems]


def _libfuse_loads() -> bool:
    try:
        import fuse  # noqa: F401  (fusepy loads libfuse when imported)
    except (OSError, ImportError):
        return False
    return True

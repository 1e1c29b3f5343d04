"""The simulated distributed cluster: `cairn server` on several hosts in network namespaces, and node faults.

Contract: `NodeCluster` is the single-node `Cluster`'s counterpart for scenarios with `nodes` > 1. It
runs a `ClusterLab` (`netns.py`): every node gets `http://10.99.N.1{1...n}:9000<root>/node/d{1...k}`
with `--set-size` and `--parity`, on private drive folders. `create()` starts every node and waits
until each sees every drive; `destroy()` stops only the processes the lab started and removes the
namespaces, bridge and rules it made. Node faults: SIGKILL, SIGSTOP/SIGCONT, a link cut (veth down),
a partition (iptables drops, or TCP resets with `reject`) and a restart. Clients talk to the first
node that is running, not paused and not cut off (`reader()`), or to each such node (`clients()`).
`missing_copies` checks on disk that every acknowledged object has an intact copy on every drive of
its erasure set; slot j names slot j of every set (the sets span the nodes alike).
Every node drive is a loop-mounted XFS image of its own (`SimDrive`), bind-mounted on the node's
drive folder before the nodes start, as a real drive is its own filesystem: a node's `syncfs` then
flushes that drive, not the host filesystem every other node and process writes to (which stalled
internode calls past their 30 s timeout). `drives_at(j)` gives the images holding slot j, on which
the runner injects drive faults from outside the nodes (shutdown, fill, read-only, damage).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from appliance.cluster.placement import expand_drives, split_sets
from appliance.engine.drive import LocalDrive
from simulator.cluster import BUCKET, HealSummary, admin_heal, copy_problem, heal_status
from simulator.drives import SimDrive, run
from simulator.netns import S3_PORT, ClusterLab

# A node that hangs (paused, cut off) costs its peers one internode read timeout (30 s) before they
# mark it offline; clients wait longer than that.
HUNG_PEER_READ_TIMEOUT = 45.0
# A write refused for want of a lock or write quorum (a partition) is answered with 503 after about
# 60 s (lock timeout, then the drives' quorum); clients wait for that answer rather than time out.
REFUSED_WRITE_TIMEOUT = 90.0


class NodeCluster:
    def __init__(self, workdir: Path, nodes: int, drives_per_node: int, set_size: int, parity: int,
                 disable_heal: bool = False, scan_interval: float = 2.0, heal_throttle: float = 0.0) -> None:
        self.workdir = workdir
        self.pids: set[int] = set()  # SimDrive's bookkeeping; no FUSE here, so it stays empty
        self.images: dict[str, SimDrive] = {}  # private drive folder -> the image mounted on it
        self.node_count = nodes
        self.set_size = set_size
        args = ["--set-size", str(set_size), "--parity", str(parity), "--scan-interval", str(scan_interval),
                "--heal-throttle", str(heal_throttle)]
        self.lab = ClusterLab(workdir, nodes, drives_per_node, server_args=args,
                              env={"CAIRN_DEBUG_DISABLE_HEAL": "1"} if disable_heal else {})
        self.cut: set[int] = set()
        self.sets: list[list[tuple[int, str]]] = []  # per erasure set: (node, drive folder in the root namespace)

    @property
    def numbers(self) -> list[int]:
        return list(range(1, self.node_count + 1))

    @property
    def stopped(self) -> bool:
        """Whether the node clients talk to is frozen; never, since clients go to a node that answers."""
        return False

    # --- lifecycle --------------------------------------------------------------------------------

    def create(self) -> None:
        self.lab.open()
        self.sets = self._drive_sets()
        self._mount_images()
        self.lab.start_all()
        self.client().create_bucket(Bucket=BUCKET)

    def _drive_sets(self) -> list[list[tuple[int, str]]]:
        """Each erasure set's drives as the servers cut them, mapped to the node's private folder."""
        by_address = {self.lab.nodes[i].host.address: i for i in self.numbers}
        prefix = f"{self.lab.shared_dir}/"
        sets = []
        for urls in split_sets(expand_drives(self.lab.drive_args()), self.set_size):
            drives = []
            for url in urls:
                host_port, path = url.removeprefix("http://").split("/", 1)
                node = by_address[host_port.rsplit(":", 1)[0]]
                drives.append((node, str(self.lab.nodes[node].private_dir / f"/{path}".removeprefix(prefix))))
            sets.append(drives)
        return sets

    def _mount_images(self) -> None:
        for drive_set in self.sets:
            for node, path in drive_set:
                image = SimDrive(self.workdir / "images" / f"node{node}", len(self.images), self.pids)
                self.images[path] = image
                image.create()
                run("mount", "--bind", str(image.mnt), path)

    def drives_at(self, slot: int) -> list[SimDrive]:
        """The drive images holding slot `slot`, one per erasure set."""
        return [self.images[path] for path in (drive_set[slot][1] for drive_set in self.sets)]

    def destroy(self) -> None:
        try:
            self.lab.close()
        finally:
            for path, image in self.images.items():
                with contextlib.suppress(RuntimeError):  # a create that failed half-way mounted less
                    run("umount", "-l", path)
                image.destroy()
            self.images.clear()

    def running(self) -> bool:
        return bool(self.available())

    def available(self) -> list[int]:
        """Nodes that run, are not paused and whose link is up, in order."""
        return [i for i, node in self.lab.nodes.items() if node.running() and not node.paused and i not in self.cut]

    def reader(self) -> int:
        """The node the simulator reads through: the first available one."""
        ready = self.available()
        if not ready:
            raise RuntimeError("no node is available: every node is down, paused or cut off")
        return ready[0]

    def slots_of(self, node: int) -> list[int]:
        """Slots of an erasure set that `node` holds (the same in every set)."""
        return [j for j, (owner, _) in enumerate(self.sets[0]) if owner == node]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.lab.log_tail(i, max(lines // self.node_count, 5)) for i in self.lab.nodes)

    # --- node faults ------------------------------------------------------------------------------

    def kill_node(self, i: int) -> None:
        self.lab.kill(i)

    def pause_node(self, i: int) -> None:
        self.lab.pause(i)

    def resume_node(self, i: int) -> None:
        self.lab.resume(i)

    def cut_link(self, i: int) -> None:
        self.lab.net.cut(i)
        self.cut.add(i)

    def heal_link(self, i: int) -> None:
        self.lab.net.heal_link(i)
        self.cut.discard(i)

    def partition(self, groups: Sequence[Sequence[int]], reject: bool) -> None:
        for a, side_a in enumerate(groups):
            for side_b in groups[a + 1:]:
                self.lab.net.partition(side_a, side_b, reset=reject)

    def heal_partition(self) -> None:
        for i in self.numbers:
            self.lab.net.undrop(i)

    def restart_nodes(self, nodes: Iterable[int]) -> None:
        """Stop each node if it runs, start it on its drives, and wait until every node sees every drive."""
        for i in nodes:
            self.lab.stop(i)
            self.lab.start(i)
        self.lab.wait_cluster_ready(dead_drives=self._dead_drives())

    def _dead_drives(self) -> int:
        """Drive images whose filesystem is shut down (a dead-drive fault): no node sees them online."""
        dead = 0
        for image in self.images.values():
            try:
                os.listdir(image.mnt)
            except OSError:
                dead += 1
        return dead

    # --- clients ----------------------------------------------------------------------------------

    def client(self, timeout: float = 20.0) -> Any:
        return self.client_of(self.reader(), timeout)

    def client_of(self, i: int, timeout: float = 20.0) -> Any:
        return self.lab.s3(i, read_timeout=max(timeout, HUNG_PEER_READ_TIMEOUT), connect_timeout=3,
                           max_pool_connections=16)

    def clients(self, timeout: float = 20.0) -> list[tuple[str, Any]]:
        """(label, client) of every available node: reads and writes are probed through each."""
        return [(f"via node {i}", self.client_of(i, timeout)) for i in self.available()]

    def heal_status(self) -> dict[str, Any] | None:
        """The cluster's healing: every available node heals (queues, its own blank drives), so the
        counters are summed over the nodes that answer (a restarted node starts again from 0)."""
        docs = [doc for doc in (heal_status(self.lab.nodes[i].host.address, S3_PORT) for i in self.available())
                if doc is not None]
        if not docs:
            return None
        return {"bytes_written": sum(int(d.get("bytes_written", 0)) for d in docs),
                "objects_healed": sum(int(d.get("objects_healed", 0)) for d in docs),
                "healing_drives": [drive for d in docs for drive in d.get("healing_drives") or []]}

    def admin_heal(self) -> HealSummary:
        return admin_heal(self.lab.nodes[self.reader()].endpoint)

    # --- the on-disk truth ------------------------------------------------------------------------

    def missing_copies(self, keys: Iterable[str], slots: Iterable[int] | None = None) -> list[str]:
        """Every (node, drive, key) of the key's erasure set whose copy is absent or does not verify."""
        chosen = set(range(self.set_size) if slots is None else slots)
        drives = [[(node, LocalDrive(path), path) for node, path in drive_set] for drive_set in self.sets]
        problems = []
        for key in keys:
            found = [[copy_problem(drive, key) for _, drive, _ in drive_set] for drive_set in drives]
            # The key's set is the one holding the most copies of it (placement needs the deployment id).
            home = max(range(len(found)), key=lambda s: sum(not p.startswith("no metadata") for p in found[s]))
            problems += [f"node {node} {path}: {key}: {problem}"
                         for j, ((node, _, path), problem) in enumerate(zip(drives[home], found[home], strict=True))
                         if problem and j in chosen]
        return problems

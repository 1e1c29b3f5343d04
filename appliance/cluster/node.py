"""Assemble one node's object layer from its configuration: one machine, or one node of a cluster.

Contract: `prepare_drives` runs once per node in the parent process before any worker starts (it
creates drive folders, empties temporary areas and, on a single node, checks and formats the
identities). Every worker process then opens the node: `open_node` on a single node (identities
are only read), `join_cluster` in a cluster, where it first waits for its peers to answer with the
same topology, version and deployment (`bootstrap.wait_for_peers`), then reads or writes the
identities (only the node owning pool 0's first drive formats a blank deployment, and only when
every drive answers), and builds erasure sets whose other nodes' drives are `RemoteDrive`s and whose
object locks are quorum locks over every node's lock server (`dsync`). Neither runs on a codec that
fails its self-test.

Work split in a cluster: every node serves any request; every node drains the heal queues (object
locks make concurrent heals safe); a node fully heals only replacement drives it hosts, formats only
its own blank drives, and scans the sets whose index modulo the node count is its own index.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from appliance import __version__
from appliance.cluster.bootstrap import (
    BootstrapMismatch,
    BootstrapTimeout,
    NodeInfo,
    is_first_node,
    wait_for_peers,
)
from appliance.cluster.dsync import DistributedLocker, LocalLockPeer, LockPeer, LockServer
from appliance.cluster.endpoints import Endpoint, Topology, parse_topology
from appliance.cluster.pool_record import check_pools
from appliance.cluster.pools import ObjectLayer
from appliance.cluster.remote_drive import RemoteDrive
from appliance.cluster.rpc import PeerClient, derive_key, peer_tls_context
from appliance.cluster.rpc_server import InternodeServer
from appliance.cluster.server_pools import ServerPools
from appliance.config import ServerConfig, split_address
from appliance.engine.codec import self_test
from appliance.engine.drive import Drive, LocalDrive
from appliance.engine.erasure_set import ErasureSet, OfflineDrive
from appliance.engine.errors import DriveError
from appliance.engine.healing import Healer, HealQueue, mark_for_drive_heal
from appliance.engine.identity import BootstrapResult, DriveFormat, NotFormattedYet, bootstrap_formats
from appliance.engine.locks import Locker, NamespaceLocker
from appliance.engine.monitor import DriveMonitor, reopen_local
from appliance.engine.multipart import UploadJanitor
from appliance.engine.quorum import default_parity
from appliance.engine.scanner import Scanner

log = logging.getLogger("cairn.node")

PEER_WAIT = 30.0  # seconds per round of waiting for peers before logging who is missing and retrying


@dataclass
class Node:
    layer: ServerPools
    healer: Healer
    monitors: list[DriveMonitor]
    queues: list[HealQueue]
    deployment_id: str
    parity: int
    executor: ThreadPoolExecutor
    scanner: Scanner
    lock_dir: str
    janitor: UploadJanitor
    topology: Topology


def tune_malloc() -> None:
    """Keep large buffers in the heap instead of fresh mmaps: without the page faults, encoding a
    1 MiB block with (2,2) went from 0.8 to 3.4 GB/s here (docs/benchmarks.md)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    libc.mallopt(m_trim_threshold, 2**31 - 1)
    libc.mallopt(m_top_pad, 256 * 1024 * 1024)


def topology_of(config: ServerConfig) -> Topology:
    return parse_topology(config.drives, split_address(config.address)[1], set_size=config.set_size)


def parity_for(config: ServerConfig, set_size: int) -> int:
    parity = default_parity(set_size) if config.parity is None else config.parity
    if set_size > 1 and not 0 <= parity <= set_size // 2:
        raise ValueError(f"parity {parity} is not possible on sets of {set_size} drives (0 to {set_size // 2})")
    return 0 if set_size == 1 else parity


def _self_test(config: ServerConfig, topology: Topology) -> int:
    """Check the codec for every pool's layout; returns the parity of pool 0's sets."""
    parities = [parity_for(config, len(pool[0])) for pool in topology.pools]
    self_test(sorted({(len(pool[0]) - p, p) for pool, p in zip(topology.pools, parities, strict=True)}))
    return parities[0]


def lock_dir_for(config: ServerConfig, topology: Topology) -> str:
    """The node's folder for lock files: shared by its worker processes, never by two nodes."""
    if config.lock_dir:
        return config.lock_dir
    host, port = split_address(config.address)
    return os.path.join(tempfile.gettempdir(), f"cairn-locks-{topology.digest()[:16]}-{host}-{port}")


def _local_drives(topology: Topology) -> list[LocalDrive]:
    return [LocalDrive(ep.path) for pool in topology.pools for group in pool for ep in group if ep.is_local]


def prepare_drives(config: ServerConfig) -> list[BootstrapResult]:
    """Create missing local drive folders and empty their temporary areas; on a single node also
    check and format every pool's identities (a cluster does that once its peers answer)."""
    topology = topology_of(config)
    _self_test(config, topology)
    for drive in _local_drives(topology):
        if not os.path.exists(drive.root) and os.path.isdir(os.path.dirname(drive.root) or "."):
            os.makedirs(drive.root, exist_ok=True)
    if topology.distributed:
        for drive in _local_drives(topology):
            try:
                drive.clean_temp()
            except DriveError as exc:
                log.error("drive %s: cannot clean its temporary area: %s", drive.root, exc)
        return []
    boots: list[BootstrapResult] = []
    for pool in topology.pools:
        sets: list[list[Drive]] = [[LocalDrive(ep.path) for ep in group] for group in pool]
        boot = bootstrap_formats(sets, deployment_id=boots[0].deployment_id if boots else None)
        for s, group in enumerate(sets):
            for j, member in enumerate(group):
                if boot.usable[s][j]:
                    try:
                        member.clean_temp()
                    except DriveError as exc:
                        log.error("drive %s: cannot clean its temporary area: %s", member.endpoint, exc)
        for s, j in boot.fresh:
            mark_for_drive_heal(sets[s][j])
        boots.append(boot)
    check_pools([[LocalDrive(ep.path) for ep in group] for pool in topology.pools for group in pool],
                [boot.layout[0][0] for boot in boots])
    return boots


# --- the internode side of a node --------------------------------------------------------------


class RemoteLockPeer:
    """Another node's lock server, reached over the internode RPC."""

    def __init__(self, peer: PeerClient) -> None:
        self.peer = peer

    async def call(self, method: str, args: dict) -> dict:
        result = await asyncio.to_thread(self.peer.call, "lock", method, args)
        assert isinstance(result, dict)
        return result


@dataclass
class Internode:
    """What a cluster node serves to its peers and how it reaches them."""

    topology: Topology
    peers: dict[str, PeerClient]  # "host:port" -> client
    local: dict[str, LocalDrive]  # path -> this node's drive, shared by the RPC server and the erasure sets
    lock_server: LockServer
    server: InternodeServer
    lock_dir: str
    node_info: Callable[[], dict]

    def drive(self, endpoint: Endpoint) -> Drive:
        if endpoint.is_local:
            return self.local[os.path.abspath(endpoint.path)]
        return RemoteDrive(self.peers[f"{endpoint.host}:{endpoint.port}"], endpoint.path, endpoint.url)


def _local_deployment_id(drives: list[LocalDrive]) -> str | None:
    for drive in drives:
        try:
            return DriveFormat.from_bytes(drive.read_format()).deployment_id
        except Exception:  # blank, foreign or failed drives say nothing about the deployment
            continue
    return None


def open_internode(config: ServerConfig) -> Internode | None:
    """The RPC server and peer clients of a cluster node; None on a single node."""
    topology = topology_of(config)
    if not topology.distributed:
        return None
    key = derive_key(config.root_user, config.root_password)
    scheme = topology.scheme
    tls = peer_tls_context(config.certs_dir) if scheme == "https" else None
    peers = {hp: PeerClient(f"{scheme}://{hp}", key, ssl_context=tls) for hp in topology.peers}
    lock_dir = lock_dir_for(config, topology)
    lock_server = LockServer(lock_dir)
    local = {drive.root: drive for drive in _local_drives(topology)}

    def node_info() -> dict:
        return {"version": __version__, "topology_digest": topology.digest(),
                "deployment_id": _local_deployment_id(list(local.values()))}

    server = InternodeServer(key, local, lock_server, node_info)
    return Internode(topology, peers, local, lock_server, server, lock_dir, node_info)


# --- opening the node ----------------------------------------------------------------------------


def _assemble(
    config: ServerConfig,
    topology: Topology,
    pools: list[list[list[Drive]]],
    boots: list[BootstrapResult],
    locker: Locker,
    lock_dir: str,
    *,
    reopen: Callable[[Drive, bool], Drive] = reopen_local,
    owns: Callable[[Drive], bool] = lambda drive: True,
    scans: Callable[[ErasureSet], bool] = lambda eset: True,
) -> Node:
    tune_malloc()
    parity = _self_test(config, topology)
    # A healing object holds one I/O thread from start to end: clients keep at least 32 of their own.
    threads = max(32, 4 * max(len(p[0]) for p in pools)) + config.heal_workers
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cairn-io")
    layers: list[ObjectLayer] = []
    queues: list[HealQueue] = []
    monitors: list[DriveMonitor] = []
    all_sets: list[ErasureSet] = []
    for sets, boot in zip(pools, boots, strict=True):
        pool_parity = parity_for(config, len(sets[0]))
        esets: list[ErasureSet] = []
        for s, group in enumerate(sets):
            drives: list[Drive] = [
                d if boot.usable[s][j] else OfflineDrive(d.endpoint, "refused or unreachable at start")  # type: ignore[misc]
                for j, d in enumerate(group)
            ]
            eset = ErasureSet(s, drives, default_parity=pool_parity, executor=executor, locker=locker)
            queue = HealQueue(eset)
            eset.on_degraded = queue.add
            esets.append(eset)
            queues.append(queue)
        layers.append(ObjectLayer(esets, boot.deployment_id))
        monitors.append(DriveMonitor(esets, boot.deployment_id, boot.layout, reopen=reopen, may_format=owns,
                                     recovers=lambda drive: isinstance(drive, RemoteDrive)))
        all_sets.extend(esets)
    layer = ServerPools(layers)
    healer = Healer(all_sets, queues, layer.bucket_configs, lock_dir, interval=config.heal_interval, owns=owns,
                    workers=config.heal_workers)
    scanned = [(e, q) for e, q in zip(all_sets, queues, strict=True) if scans(e)]
    scanner = Scanner([e for e, _ in scanned], [q for _, q in scanned], healer, layer.list_buckets, lock_dir,
                      throttle=config.heal_throttle, interval=config.scan_interval)
    janitor = layer.upload_janitor(config.multipart_expiry, interval=min(3600.0, config.multipart_expiry / 4))
    return Node(layer, healer, monitors, queues, boots[0].deployment_id, parity, executor, scanner, lock_dir,
                janitor, topology)


def open_node(config: ServerConfig) -> Node:
    """A single node's object layer (the parent process has checked and formatted the drives)."""
    topology = topology_of(config)
    pools: list[list[list[Drive]]] = [[[LocalDrive(ep.path) for ep in group] for group in pool]
                                      for pool in topology.pools]
    boots: list[BootstrapResult] = []
    for sets in pools:
        boots.append(bootstrap_formats(sets, deployment_id=boots[0].deployment_id if boots else None))
    lock_dir = config.lock_dir or os.path.join(tempfile.gettempdir(), f"cairn-locks-{boots[0].deployment_id}")
    return _assemble(config, topology, pools, boots, NamespaceLocker(lock_dir), lock_dir)


def _bootstrap_cluster(topology: Topology, pools: list[list[list[Drive]]], lock_dir: str) -> list[BootstrapResult]:
    """Read (and where this node may, write) every pool's identities; one worker at a time per node."""
    first = is_first_node(topology)
    os.makedirs(lock_dir, exist_ok=True)
    fd = os.open(os.path.join(lock_dir, "bootstrap.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        boots: list[BootstrapResult] = []
        for sets in pools:
            boots.append(bootstrap_formats(sets, may_create=first, create_needs_all=True,
                                           deployment_id=boots[0].deployment_id if boots else None))
        check_pools([group for sets in pools for group in sets], [boot.layout[0][0] for boot in boots])
        return boots
    finally:
        os.close(fd)


async def join_cluster(config: ServerConfig, internode: Internode) -> Node:
    """Wait for the peers, agree on the deployment, and open this node of the cluster."""
    topology = internode.topology
    loop = asyncio.get_running_loop()

    async def fetch(peer: str) -> NodeInfo:
        doc = await asyncio.to_thread(internode.peers[peer].call, "node", "info", {})
        return NodeInfo(**doc)

    while True:
        try:
            await wait_for_peers(topology.peers, fetch, NodeInfo(**internode.node_info()), timeout=PEER_WAIT)
            break
        except BootstrapMismatch as exc:
            log.error("refusing to join the cluster: %s", exc)
            raise
        except BootstrapTimeout as exc:
            log.warning("still waiting for peers: %s", exc)

    pools: list[list[list[Drive]]] = [[[internode.drive(ep) for ep in group] for group in pool]
                                      for pool in topology.pools]
    attempts = 0
    while True:
        try:
            boots = await loop.run_in_executor(None, _bootstrap_cluster, topology, pools, internode.lock_dir)
            break
        except NotFormattedYet as exc:
            if attempts % 10 == 0:  # one line every ~10 s of waiting
                log.info("%s", exc)
            await asyncio.sleep(1.0)
            attempts += 1

    # A local drive is named by its path, another node's by its URL (as in `Internode.drive`).
    endpoints = {ep.path if ep.is_local else ep.url: ep for ep in topology.endpoints()}
    hosts = list(dict.fromkeys(ep.address for ep in topology.endpoints()))
    local_host = next(ep.address for ep in topology.endpoints() if ep.is_local)
    me = hosts.index(local_host)

    def is_local(drive: Drive) -> bool:
        ep = endpoints.get(drive.endpoint)
        return ep is not None and ep.is_local

    def reopen(current: Drive, fresh: bool) -> Drive:
        ep = endpoints[current.endpoint]
        if ep.is_local:
            if isinstance(current, LocalDrive) and not fresh:
                return current
            # A replaced drive needs a fresh object (the old one holds handles on the dead
            # filesystem); the RPC server must serve peers from the same new one.
            fresh_drive = internode.local[os.path.abspath(ep.path)] = LocalDrive(ep.path)
            return fresh_drive
        return current if isinstance(current, RemoteDrive) else internode.drive(ep)

    owner = f"{local_host}/{os.getpid()}/{time.time_ns()}"
    lock_peers: list[LockPeer] = [LocalLockPeer(internode.lock_server)]
    lock_peers += [RemoteLockPeer(client) for client in internode.peers.values()]
    locker = DistributedLocker(lock_peers, owner)
    return _assemble(config, topology, pools, boots, locker, internode.lock_dir, reopen=reopen, owns=is_local,
                     scans=lambda eset: eset.index % len(hosts) == me)

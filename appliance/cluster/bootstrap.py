"""The peer handshake before a distributed node assembles its object layer.

Contract: transport-agnostic. `wait_for_peers` asks every peer for its `NodeInfo` through the given
`fetch` coroutine (the RPC `node/info` call in production, a fake in tests) until the peers agree
with this node on version, topology digest and deployment id:
- it returns once every peer answered and agrees, or, after a grace period (a third of the
  timeout), once a majority of all nodes (this one included) answered and agree, so that a node
  restarting while another is down still starts;
- a peer that answers with a different version, endpoint list or deployment raises
  `BootstrapMismatch` at once: waiting would not fix it;
- when the timeout passes first it raises `BootstrapTimeout` naming the peers that never answered.
A peer that is not formatted yet (deployment id None) agrees with any deployment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from appliance.cluster.endpoints import Topology

logger = logging.getLogger("cairn.bootstrap")

LOG_EVERY = 5.0  # seconds between two "waiting for peers" lines


@dataclass(frozen=True)
class NodeInfo:
    version: str
    topology_digest: str
    deployment_id: str | None  # None while the node's drives are unformatted


class BootstrapError(RuntimeError):
    """The node cannot join the cluster."""


class BootstrapMismatch(BootstrapError):
    """A peer runs with another version, endpoint list or deployment."""

    def __init__(self, peer: str, field: str, message: str) -> None:
        super().__init__(message)
        self.peer = peer
        self.field = field


class BootstrapTimeout(BootstrapError):
    """Too few peers answered before the timeout."""


def check_agreement(peer: str, theirs: NodeInfo, mine: NodeInfo) -> None:
    """Raise `BootstrapMismatch` naming the peer and the field it differs in."""
    if theirs.version != mine.version:
        raise BootstrapMismatch(
            peer, "version",
            f"node {peer} runs Cairn {theirs.version}, this node runs {mine.version}: "
            "run the same version on every node",
        )
    if theirs.topology_digest != mine.topology_digest:
        raise BootstrapMismatch(
            peer, "topology_digest",
            f"node {peer} runs with a different endpoint list (its digest {theirs.topology_digest[:12]}.., "
            f"ours {mine.topology_digest[:12]}..): start every node with the same arguments",
        )
    if theirs.deployment_id and mine.deployment_id and theirs.deployment_id != mine.deployment_id:
        raise BootstrapMismatch(
            peer, "deployment_id",
            f"node {peer} belongs to deployment {theirs.deployment_id}, this node to {mine.deployment_id}: "
            "its drives were formatted for another cluster",
        )


async def wait_for_peers(
    peers: list[str],
    fetch: Callable[[str], Awaitable[NodeInfo]],
    mine: NodeInfo,
    *,
    timeout: float,
    interval: float = 1.0,
    probe_timeout: float = 5.0,
    log: logging.Logger = logger,
) -> dict[str, NodeInfo]:
    """Poll the peers until they agree (rules: module docstring); returns the peers that answered."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    grace = timeout / 3
    majority = (len(peers) + 1) // 2 + 1
    answered: dict[str, NodeInfo] = {}
    last_error: dict[str, str] = {}
    last_log = float("-inf")
    while True:
        missing = [p for p in peers if p not in answered]
        # The last round may overrun the timeout by one interval rather than ask with no time to answer.
        bound = min(probe_timeout, max(timeout - (loop.time() - start), interval))
        results = await asyncio.gather(
            *(asyncio.wait_for(fetch(p), bound) for p in missing), return_exceptions=True
        )
        for peer, result in zip(missing, results, strict=True):
            if isinstance(result, NodeInfo):
                check_agreement(peer, result, mine)
                answered[peer] = result
            elif isinstance(result, TimeoutError):
                last_error[peer] = f"no answer within {bound:g} s"
            elif isinstance(result, Exception):
                last_error[peer] = str(result) or type(result).__name__
            else:
                raise result  # CancelledError and friends are not "peer down"
        missing = [p for p in peers if p not in answered]
        elapsed = loop.time() - start
        if not missing:
            return answered
        if elapsed >= grace and len(answered) + 1 >= majority:
            log.warning("starting with %d of %d nodes: no answer from %s",
                        len(answered) + 1, len(peers) + 1, ", ".join(missing))
            return answered
        if elapsed >= timeout:
            silent = "; ".join(f"{p} ({last_error.get(p, 'no answer')})" for p in missing)
            raise BootstrapTimeout(
                f"gave up after {timeout:g} s: {len(answered) + 1} of {len(peers) + 1} nodes answered, "
                f"{majority} are needed; never answered: {silent}. Start the other nodes, or check "
                "their addresses and the network between them"
            )
        if loop.time() - last_log >= LOG_EVERY:
            log.info("waiting for %d peers: %s", len(missing), ", ".join(missing))
            last_log = loop.time()
        await asyncio.sleep(min(interval, timeout - elapsed))


def is_first_node(topology: Topology) -> bool:
    """The node owning pool 0's first endpoint is the one that formats an all-blank deployment."""
    return topology.pools[0][0][0].is_local

"""The peer handshake: agreement, mismatches named, majority start after the grace period, timeouts."""

import asyncio
import logging
import time

import pytest

from appliance.cluster.bootstrap import (
    BootstrapMismatch,
    BootstrapTimeout,
    NodeInfo,
    is_first_node,
    wait_for_peers,
)
from appliance.cluster.endpoints import parse_topology

MINE = NodeInfo("0.1.0", "ab" * 32, "dep-1")
PEERS = ["10.99.0.12:9000", "10.99.0.13:9000", "10.99.0.14:9000"]
TIMEOUT = 0.6
DOWN = ConnectionRefusedError("connection refused")
HANG = "hang"


class FakePeers:
    """Answers `node/info` from a table: a NodeInfo, an exception raised, HANG, or a list played in turn."""

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers = answers
        self.calls: dict[str, int] = {}

    async def fetch(self, peer: str) -> NodeInfo:
        n = self.calls[peer] = self.calls.get(peer, 0) + 1
        answer = self.answers[peer]
        if isinstance(answer, list):
            answer = answer[min(n, len(answer)) - 1]
        if answer == HANG:
            await asyncio.Event().wait()
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, NodeInfo)
        return answer


def wait(answers: dict[str, object], peers: list[str] = PEERS) -> tuple[dict[str, NodeInfo], float]:
    fake = FakePeers(answers)
    start = time.monotonic()
    result = asyncio.run(
        wait_for_peers(peers, fake.fetch, MINE, timeout=TIMEOUT, interval=0.01, probe_timeout=0.05)
    )
    return result, time.monotonic() - start


UNFORMATTED = NodeInfo("0.1.0", "ab" * 32, None)
LATE = [DOWN, DOWN, DOWN, MINE]

STARTS = [
    # (answers per peer, peers expected in the result, starts before the grace period)
    ({p: MINE for p in PEERS}, PEERS, True),
    ({PEERS[0]: MINE, PEERS[1]: UNFORMATTED, PEERS[2]: MINE}, PEERS, True),
    ({PEERS[0]: MINE, PEERS[1]: LATE, PEERS[2]: MINE}, PEERS, True),
    ({PEERS[0]: MINE, PEERS[1]: MINE, PEERS[2]: DOWN}, PEERS[:2], False),
    ({PEERS[0]: MINE, PEERS[1]: HANG, PEERS[2]: MINE}, [PEERS[0], PEERS[2]], False),
]


@pytest.mark.parametrize(("answers", "expected", "early"), STARTS)
def test_starts(answers: dict[str, object], expected: list[str], early: bool) -> None:
    result, elapsed = wait(answers)
    assert sorted(result) == sorted(expected)
    assert (elapsed < TIMEOUT / 3) is early


def test_no_peers() -> None:
    assert wait({}, peers=[])[0] == {}


MISMATCHES = [
    (NodeInfo("0.1.0", "cd" * 32, "dep-1"), "topology_digest", "runs with a different endpoint list"),
    (NodeInfo("0.2.0", "ab" * 32, "dep-1"), "version", "runs Cairn 0.2.0, this node runs 0.1.0"),
    (NodeInfo("0.1.0", "ab" * 32, "dep-2"), "deployment_id", "belongs to deployment dep-2"),
]


@pytest.mark.parametrize(("theirs", "field", "message"), MISMATCHES)
def test_mismatch_names_peer_and_field(theirs: NodeInfo, field: str, message: str) -> None:
    answers: dict[str, object] = {PEERS[0]: MINE, PEERS[1]: theirs, PEERS[2]: DOWN}
    with pytest.raises(BootstrapMismatch, match=f"node {PEERS[1]} {message}") as caught:
        wait(answers)
    assert (caught.value.peer, caught.value.field) == (PEERS[1], field)


TIMEOUTS = [
    # (peers, answers, peers named as silent)
    (PEERS, {PEERS[0]: MINE, PEERS[1]: DOWN, PEERS[2]: HANG}, PEERS[1:]),
    (PEERS[:1], {PEERS[0]: DOWN}, PEERS[:1]),  # two nodes: the other one is needed
]


@pytest.mark.parametrize(("peers", "answers", "silent"), TIMEOUTS)
def test_timeout_lists_silent_peers(peers: list[str], answers: dict[str, object], silent: list[str]) -> None:
    with pytest.raises(BootstrapTimeout) as caught:
        wait(answers, peers=peers)
    message = str(caught.value)
    assert all(p in message for p in silent)
    assert "connection refused" in message
    assert all(p not in message for p in peers if p not in silent)


def test_waiting_is_logged_sparingly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cairn.bootstrap")
    wait({PEERS[0]: MINE, PEERS[1]: MINE, PEERS[2]: DOWN})
    waiting = [r.getMessage() for r in caplog.records if r.getMessage().startswith("waiting for")]
    assert waiting == [f"waiting for 1 peers: {PEERS[2]}"]
    assert any("starting with 3 of 4 nodes" in r.getMessage() for r in caplog.records)


GRID = ["http://10.0.0.{1...4}:9000/d{1...4}"]


@pytest.mark.parametrize(("host", "first"), [("10.0.0.1", True), ("10.0.0.2", False), ("10.0.0.4", False)])
def test_first_node_owns_pool_zero_first_endpoint(host: str, first: bool) -> None:
    assert is_first_node(parse_topology(GRID, 9000, is_local_host=lambda h: h == host)) is first

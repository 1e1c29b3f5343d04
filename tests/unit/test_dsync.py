"""Distributed locks: the file-backed lock server, quorum, contention, hung and dead peers, expiry."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from appliance.cluster.dsync import (
    Answer,
    DistributedLocker,
    LocalLockPeer,
    LockPeer,
    LockServer,
    lock_quorum,
)
from appliance.engine.locks import Locker, LockTimeout, NamespaceLocker

CALL_TIMEOUT = 0.5
SLACK = 1.0  # scheduling and thread hand-offs on a loaded test machine


class OfflinePeer:
    """A lock server whose node is unreachable: every call fails at once."""

    async def call(self, method: str, args: dict[str, Any]) -> Answer:
        raise ConnectionRefusedError("node offline")


class HangingPeer:
    """A lock server that accepts the connection and never answers."""

    async def call(self, method: str, args: dict[str, Any]) -> Answer:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def servers(tmp_path: Path, count: int, expiry: float = 30.0) -> list[LockServer]:
    return [LockServer(str(tmp_path / f"node{i}"), expiry=expiry) for i in range(count)]


def locker(peers: list[LockPeer], owner: str, **options: float) -> DistributedLocker:
    options.setdefault("call_timeout", CALL_TIMEOUT)
    options.setdefault("min_retry_delay", 0.005)
    options.setdefault("max_retry_delay", 0.05)
    return DistributedLocker(peers, owner, **options)


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coro

    return asyncio.run(main())


def test_both_lockers_fit_the_engine_protocol(tmp_path: Path) -> None:
    lockers: list[Locker] = [
        NamespaceLocker(str(tmp_path / "ns")),
        locker([LocalLockPeer(LockServer(str(tmp_path)))], "n1"),
    ]
    assert len(lockers) == 2


@pytest.mark.parametrize(
    ("servers_count", "quorum"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (16, 9)]
)
def test_lock_quorum(servers_count: int, quorum: int) -> None:
    assert lock_quorum(servers_count) == quorum


# --- lock server ----------------------------------------------------------------------------------

T0 = 1000.0
# (clock offset, method, args, expected answer subset) applied in order to one fresh server, expiry 10 s.
SERVER_SCRIPTS = {
    "grant, refuse other, idempotent for same uid": [
        (0, "lock", {"uid": "u1", "owner": "a"}, {"granted": True}),
        (0, "lock", {"uid": "u2", "owner": "b"}, {"granted": False, "owner": "a"}),
        (1, "lock", {"uid": "u1", "owner": "a"}, {"granted": True}),
        (0, "holder", {}, {"held": True, "uid": "u1", "owner": "a", "expires_in": 10.0}),
    ],
    "unlock only with matching uid": [
        (0, "lock", {"uid": "u1", "owner": "a"}, {"granted": True}),
        (0, "unlock", {"uid": "u2"}, {"released": False}),
        (0, "lock", {"uid": "u2", "owner": "b"}, {"granted": False}),
        (0, "unlock", {"uid": "u1"}, {"released": True}),
        (0, "unlock", {"uid": "u1"}, {"released": False}),
        (0, "lock", {"uid": "u2", "owner": "b"}, {"granted": True}),
    ],
    "refresh extends, wrong uid is lost": [
        (0, "lock", {"uid": "u1", "owner": "a"}, {"granted": True}),
        (9, "refresh", {"uid": "u1"}, {"lost": False}),
        (0, "refresh", {"uid": "u2"}, {"lost": True}),
        (9, "lock", {"uid": "u2", "owner": "b"}, {"granted": False}),
        (0, "holder", {}, {"held": True, "expires_in": 1.0}),
    ],
    "expired grant is free and its refresh lost": [
        (0, "lock", {"uid": "u1", "owner": "a"}, {"granted": True}),
        (10, "holder", {}, {"held": False}),
        (0, "refresh", {"uid": "u1"}, {"lost": True}),
        (0, "lock", {"uid": "u2", "owner": "b"}, {"granted": True}),
        (0, "unlock", {"uid": "u1"}, {"released": False}),
        (0, "holder", {}, {"held": True, "uid": "u2"}),
    ],
    "refresh of a never granted name": [
        (0, "refresh", {"uid": "u1"}, {"lost": True}),
        (0, "holder", {}, {"held": False}),
    ],
}


@pytest.mark.parametrize("script", SERVER_SCRIPTS.values(), ids=SERVER_SCRIPTS.keys())
def test_lock_server(tmp_path: Path, script: list[tuple[float, str, dict[str, str], Answer]]) -> None:
    now = [T0]
    server = LockServer(str(tmp_path), expiry=10.0, clock=lambda: now[0])

    async def go() -> None:
        for step, (advance, method, args, expected) in enumerate(script):
            now[0] += advance
            answer = await server.handle(method, {"resource": "b/k", **args})
            assert {k: answer.get(k) for k in expected} == expected, (step, method, answer)

    run(go())


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("lock", {"resource": "b/k", "uid": "u"}),
        ("unlock", {"resource": "b/k"}),
        ("stat", {"resource": "b/k", "uid": "u"}),
        ("holder", {}),
    ],
)
def test_lock_server_refuses_bad_requests(tmp_path: Path, method: str, args: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        run(LockServer(str(tmp_path)).handle(method, args))


def test_two_servers_on_one_dir_share_the_table(tmp_path: Path) -> None:
    """Two LockServer instances on one lock dir stand for two uvicorn workers of one node."""
    first, second = LockServer(str(tmp_path)), LockServer(str(tmp_path))
    names = [f"b/k{i}" for i in range(50)]

    async def go() -> None:
        for name in names:
            assert (await first.handle("lock", {"resource": name, "uid": "u1", "owner": "w1"}))["granted"]
        for name in names:
            answer = await second.handle("lock", {"resource": name, "uid": "u2", "owner": "w2"})
            assert answer == {"granted": False, "owner": "w1"}
            assert (await second.handle("unlock", {"resource": name, "uid": "u1"}))["released"]
            assert (await first.handle("lock", {"resource": name, "uid": "u2", "owner": "w2"}))["granted"]

    run(go())


# --- quorum ---------------------------------------------------------------------------------------

# (lock servers answering out of 4, the rest offline or hanging, acquired)
ANSWERING = [
    (4, "offline", True),
    (3, "offline", True),
    (2, "offline", False),
    (1, "offline", False),
    (3, "hanging", True),
    (2, "hanging", False),
]


@pytest.mark.parametrize(("answering", "silent", "acquired"), ANSWERING)
def test_quorum_of_four(tmp_path: Path, answering: int, silent: str, acquired: bool) -> None:
    peers: list[LockPeer] = [LocalLockPeer(s) for s in servers(tmp_path, answering)]
    peers += [OfflinePeer() if silent == "offline" else HangingPeer() for _ in range(4 - answering)]
    dl = locker(peers, "n1")
    timeout = 0.5

    async def go() -> float:
        start = time.monotonic()
        if acquired:
            async with dl.lock("b", "k", timeout=timeout):
                pass
        else:
            with pytest.raises(LockTimeout):
                async with dl.lock("b", "k", timeout=timeout):
                    raise AssertionError("locked without quorum")
        return time.monotonic() - start

    elapsed = run(go())
    # A hung server costs nothing once the quorum granted, and at most one call timeout to give up.
    assert elapsed < (CALL_TIMEOUT if acquired else timeout + CALL_TIMEOUT + SLACK)


def test_split_two_two_refuses_both_halves(tmp_path: Path) -> None:
    nodes = servers(tmp_path, 4)
    left = locker([LocalLockPeer(nodes[0]), LocalLockPeer(nodes[1]), OfflinePeer(), OfflinePeer()], "left")
    right = locker([OfflinePeer(), OfflinePeer(), LocalLockPeer(nodes[2]), LocalLockPeer(nodes[3])], "right")

    async def attempt(side: DistributedLocker) -> bool:
        try:
            async with side.lock("b", "k", timeout=0.3):
                return True
        except LockTimeout:
            return False

    async def go() -> list[bool]:
        return list(await asyncio.gather(attempt(left), attempt(right)))

    assert run(go()) == [False, False]


def test_partial_grants_are_released(tmp_path: Path) -> None:
    """A locker that got 2 of 4 gives them back, so a locker that sees all four can lock at once."""
    nodes = servers(tmp_path, 4)
    half = locker([LocalLockPeer(nodes[0]), LocalLockPeer(nodes[1]), OfflinePeer(), OfflinePeer()], "half")
    whole = locker([LocalLockPeer(n) for n in nodes], "whole")

    async def go() -> None:
        with pytest.raises(LockTimeout):
            async with half.lock("b", "k", timeout=0.1):
                pass
        await half.close()
        for node in nodes:
            assert not (await node.handle("holder", {"resource": "b/k"}))["held"]
        async with whole.lock("b", "k", timeout=0.1):
            pass

    run(go())


# --- mutual exclusion -----------------------------------------------------------------------------

# (lock servers, lockers, tasks per locker, acquisitions per task)
CONTENTION = [(1, 2, 2, 15), (3, 2, 3, 10), (4, 3, 2, 10)]


@pytest.mark.parametrize(("server_count", "locker_count", "tasks", "rounds"), CONTENTION)
def test_contending_lockers_never_overlap(
    tmp_path: Path, server_count: int, locker_count: int, tasks: int, rounds: int
) -> None:
    nodes = servers(tmp_path, server_count)
    lockers = [locker([LocalLockPeer(n) for n in nodes], f"node{i}") for i in range(locker_count)]
    inside = [0]
    entered = [0]

    async def worker(dl: DistributedLocker) -> None:
        for _ in range(rounds):
            async with dl.lock("b", "hot", timeout=20):
                inside[0] += 1
                assert inside[0] == 1, "two holders at once"
                await asyncio.sleep(0.001)
                inside[0] -= 1
                entered[0] += 1

    async def go() -> None:
        await asyncio.gather(*(worker(dl) for dl in lockers for _ in range(tasks)))

    run(go())
    assert entered[0] == locker_count * tasks * rounds


def test_other_names_are_not_blocked(tmp_path: Path) -> None:
    nodes = servers(tmp_path, 3)
    dl = locker([LocalLockPeer(n) for n in nodes], "n1")

    async def go() -> None:
        async with dl.lock("b", "k1"), dl.lock("b", "k2", timeout=0.2), dl.lock("c", "k1", timeout=0.2):
            pass

    run(go())


# --- expiry ---------------------------------------------------------------------------------------

EXPIRY = 1.0
MAX_RETRY = 0.05


@pytest.mark.parametrize(("holder_refresh", "taken_over"), [(60.0, True), (0.2, False)])
def test_holder_that_stops_refreshing_loses_the_lock(
    tmp_path: Path, holder_refresh: float, taken_over: bool
) -> None:
    nodes = servers(tmp_path, 3, expiry=EXPIRY)
    holder = locker([LocalLockPeer(n) for n in nodes], "holder", refresh_interval=holder_refresh)
    waiter = locker([LocalLockPeer(n) for n in nodes], "waiter", max_retry_delay=MAX_RETRY)

    async def go() -> None:
        held, done = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            async with holder.lock("b", "k"):
                held.set()
                await done.wait()

        holding = asyncio.create_task(hold())
        await held.wait()
        start = time.monotonic()
        if taken_over:
            async with waiter.lock("b", "k", timeout=5):
                assert EXPIRY - 0.2 < time.monotonic() - start < EXPIRY + MAX_RETRY + SLACK
                done.set()
                await holding  # the stale holder's unlock must not free the new holder's grant
                for node in nodes:
                    assert (await node.handle("holder", {"resource": "b/k"}))["owner"] == "waiter"
        else:
            with pytest.raises(LockTimeout):
                async with waiter.lock("b", "k", timeout=2 * EXPIRY):
                    raise AssertionError("took a refreshed lock")
            done.set()
            await holding

    run(go())


def _hold_in_child(lock_dir: str, held: Any) -> None:
    server = LockServer(lock_dir, expiry=EXPIRY)

    async def hold() -> None:
        dl = DistributedLocker([LocalLockPeer(server)], "child", refresh_interval=0.2)
        async with dl.lock("b", "k"):
            held.set()
            await asyncio.Event().wait()

    asyncio.run(hold())


def test_lock_held_by_another_process_expires_after_it_is_killed(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    held = context.Event()
    child = context.Process(target=_hold_in_child, args=(str(tmp_path), held), daemon=True)
    child.start()
    try:
        assert held.wait(timeout=15), "child never took the lock"
        dl = locker(
            [LocalLockPeer(LockServer(str(tmp_path), expiry=EXPIRY))], "parent", max_retry_delay=MAX_RETRY
        )

        async def blocked_while_alive() -> None:
            with pytest.raises(LockTimeout):
                async with dl.lock("b", "k", timeout=1.5 * EXPIRY):
                    raise AssertionError("took a lock a live process refreshes")

        run(blocked_while_alive())
    finally:
        child.kill()
        child.join(timeout=10)

    async def after_kill() -> float:
        start = time.monotonic()
        async with dl.lock("b", "k", timeout=5):
            return time.monotonic() - start

    assert run(after_kill()) < EXPIRY + MAX_RETRY + SLACK


# --- local fast path ------------------------------------------------------------------------------


def test_same_process_waiters_queue_locally(tmp_path: Path) -> None:
    """Coroutines of one locker wait on the local queue, so the servers see one grant at a time."""
    calls: list[str] = []

    class CountingPeer:
        def __init__(self, server: LockServer) -> None:
            self.inner = LocalLockPeer(server)

        async def call(self, method: str, args: dict[str, Any]) -> Answer:
            answer = await self.inner.call(method, args)
            if method == "lock":
                calls.append("granted" if answer["granted"] else "refused")
            return answer

    dl = locker([CountingPeer(LockServer(str(tmp_path)))], "n1")

    async def one() -> None:
        async with dl.lock("b", "k", timeout=5):
            await asyncio.sleep(0.005)

    async def go() -> None:
        await asyncio.gather(*(one() for _ in range(10)))

    run(go())
    assert calls == ["granted"] * 10


def test_local_wait_times_out(tmp_path: Path) -> None:
    dl = locker([LocalLockPeer(LockServer(str(tmp_path)))], "n1")

    async def go() -> None:
        async with dl.lock("b", "k"):
            with pytest.raises(LockTimeout):
                async with dl.lock("b", "k", timeout=0.1):
                    raise AssertionError("entered twice")

    run(go())

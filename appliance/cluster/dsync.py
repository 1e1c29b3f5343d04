"""Distributed namespace locks (dsync): a majority of per-node lock servers grants one name at a time.

Contract: `DistributedLocker.lock(bucket, key, timeout)` is the async context manager of
`engine.locks.Locker` (the interface of `NamespaceLocker`) and gives exclusive access to one object
name across every node of a deployment, as long as a majority of lock servers answers and the
holder refreshes in time (see "refresh loss" for the one way that can break).

Lock server. `LockServer` is one node's lock table. Every uvicorn worker of a node serves the same
table, so it lives in files under `<lock_dir>/dsync/`: names are striped over a fixed number of JSON
files, and every request is one check-and-set of its stripe under an exclusive `flock` on the
stripe's `.lock` file, run on a worker thread (never on the event loop). The table is rewritten by
rename, so a reader never sees half a table. An entry is (name, uid, owner, expires_at); entries
past `expires_at` are dead and are dropped at the next write to their stripe. Methods of
`handle(method, args)`, all taking `resource` (the name) and, but for `holder`, `uid`:
- `lock` (+ `owner`): grants when the name is free, expired or already held by this uid (then it
  also extends the grant) -> `{"granted": bool, "owner": holder's owner}`.
- `unlock`: removes the entry only for the matching uid -> `{"released": bool}`.
- `refresh`: extends the grant by `expiry` when the uid matches -> `{"lost": bool}`; `lost` means
  the grant expired or never existed here.
- `holder`: who holds the name -> `{"held": bool, "uid", "owner", "expires_in"}` (diagnostics).
The table needs no durability: a node whose table is lost (machine crash) comes back later than
`expiry` in practice, when every grant it held would have expired anyway.

Quorum. With n lock servers a lock needs `lock_quorum(n) = n//2+1` grants. Any two majorities of
the same n servers share a server, and a server grants a name to one uid at a time, so two lockers
can never both hold a name. For even n a split into two halves of n/2 leaves both sides short of
n/2+1, so neither side locks (a 2|2 split of 4 nodes stops writes everywhere instead of letting both
halves diverge). 1 of 1, 2 of 2, 2 of 3, 3 of 4, 3 of 5 are needed.

Acquisition. Coroutines of one process first queue on an `asyncio.Lock` per name, so local
contention costs no network round trip. Then every attempt uses a fresh uid and asks all servers in
parallel, each call bounded by `call_timeout` (a server that raises counts as offline, one that
hangs as a refusal when its time is up). An attempt ends as soon as the quorum is reached or out of
reach, so one hung server does not slow a lock down. A failed attempt releases the grants it got
(answers still out are released in the background once they arrive) and the next attempt follows
after a jittered, doubling back-off capped at `max_retry_delay`, until `timeout` -> `LockTimeout`.
An attempt already started may finish up to `call_timeout` after `timeout`.

Expiry guarantee. A grant lives `expiry` seconds (server side, 30 s by default) after the last
`lock` or `refresh`; a holder refreshes every `refresh_interval` (10 s: three chances per expiry).
When a holder dies (killed process, lost node) it stops refreshing, so its name is writable again
within `expiry + max_retry_delay` (one retry interval of a waiting locker, plus a round trip) after
its last refresh. Each server measures expiry on its own clock: nodes need no clock agreement.

Refresh loss. When fewer than the quorum of servers confirm a refresh (servers unreachable, or the
holder stalled past expiry), the holder logs an error and keeps going: the critical section is not
interrupted, because cancelling a half-done object write would do more harm than finishing it, and
a short outage heals at the next refresh. The risk: once the grants expired, another locker may
take the name while this holder still writes, and two writers of one object overlap. It takes a
holder cut off from a majority of nodes for longer than `expiry`; such a holder normally lacks the
write quorum of its drives as well, so its writes fail rather than race.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import xxhash

from appliance.engine.locks import LockTimeout

log = logging.getLogger("cairn.dsync")

STRIPES = 64

Answer = dict[str, Any]


def lock_quorum(servers: int) -> int:
    """Lock servers that must grant a name before its holder may enter: a strict majority, so that
    two lockers (or the two halves of an evenly split cluster) can never both hold it."""
    return servers // 2 + 1


# --- server ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Grant:
    uid: str
    owner: str
    expires_at: float


_Apply = Callable[["_Grant | None", float], "tuple[_Grant | None, Answer]"]


class LockServer:
    """One node's lock table, shared by every process that opens the same `lock_dir`."""

    def __init__(
        self,
        lock_dir: str,
        *,
        expiry: float = 30.0,
        clock: Callable[[], float] = time.time,
        stripes: int = STRIPES,
    ) -> None:
        self._dir = os.path.join(lock_dir, "dsync")
        os.makedirs(self._dir, exist_ok=True)
        self.expiry = expiry
        self._clock = clock
        self._stripes = stripes

    async def handle(self, method: str, args: dict[str, Any]) -> Answer:
        resource = _text_arg(args, "resource")
        apply = self._operation(method, args)
        return await asyncio.to_thread(self._transact, resource, apply)

    def _operation(self, method: str, args: dict[str, Any]) -> _Apply:
        if method == "holder":
            return _holder
        uid = _text_arg(args, "uid")
        if method == "lock":
            owner = _text_arg(args, "owner")

            def lock(held: _Grant | None, now: float) -> tuple[_Grant | None, Answer]:
                if held is None or held.uid == uid:
                    return _Grant(uid, owner, now + self.expiry), {"granted": True, "owner": owner}
                return held, {"granted": False, "owner": held.owner}

            return lock
        if method == "unlock":

            def unlock(held: _Grant | None, now: float) -> tuple[_Grant | None, Answer]:
                if held is not None and held.uid == uid:
                    return None, {"released": True}
                return held, {"released": False}

            return unlock
        if method == "refresh":

            def refresh(held: _Grant | None, now: float) -> tuple[_Grant | None, Answer]:
                if held is not None and held.uid == uid:
                    return _Grant(uid, held.owner, now + self.expiry), {"lost": False}
                return held, {"lost": True}

            return refresh
        raise ValueError(f"unknown lock method {method!r}")

    def _transact(self, resource: str, apply: _Apply) -> Answer:
        """Read the stripe, drop dead entries, apply one operation, write back if anything changed."""
        stripe = xxhash.xxh64_intdigest(resource.encode()) % self._stripes
        base = os.path.join(self._dir, f"{stripe:03d}")
        # A descriptor per call: flock belongs to the open file, so threads of one process that
        # shared a descriptor would not exclude each other.
        fd = os.open(base + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            stored = _load(base + ".json")
            now = self._clock()
            live = {name: grant for name, grant in stored.items() if grant.expires_at > now}
            held = live.get(resource)
            after, answer = apply(held, now)
            if after is held and len(live) == len(stored):
                return answer
            if after is None:
                live.pop(resource, None)
            else:
                live[resource] = after
            _store(base + ".json", live)
            return answer
        finally:
            os.close(fd)


def _holder(held: _Grant | None, now: float) -> tuple[_Grant | None, Answer]:
    if held is None:
        return None, {"held": False}
    return held, {"held": True, "uid": held.uid, "owner": held.owner, "expires_in": held.expires_at - now}


def _text_arg(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"lock argument {name!r} must be a non-empty string")
    return value


def _load(path: str) -> dict[str, _Grant]:
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        return {}
    return {name: _Grant(uid, owner, expires_at) for name, (uid, owner, expires_at) in raw.items()}


def _store(path: str, table: dict[str, _Grant]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({name: [g.uid, g.owner, g.expires_at] for name, g in table.items()}, f)
    os.replace(tmp, path)


# --- client ---------------------------------------------------------------------------------------


class LockPeer(Protocol):
    """One node's lock server as seen by a locker: in-process or over RPC. May raise or hang."""

    async def call(self, method: str, args: dict[str, Any]) -> Answer: ...


class LocalLockPeer:
    """This node's own lock server, called without RPC."""

    def __init__(self, server: LockServer) -> None:
        self._server = server

    async def call(self, method: str, args: dict[str, Any]) -> Answer:
        return await self._server.handle(method, args)


@dataclass
class _Attempt:
    name: str
    uid: str
    calls: list[asyncio.Task[Answer]] = field(default_factory=list)


@dataclass
class _LocalQueue:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class DistributedLocker:
    """Exclusive access to one object name across all nodes: a quorum of `peers` must grant it."""

    def __init__(
        self,
        peers: Sequence[LockPeer],
        owner: str,
        *,
        refresh_interval: float = 10.0,
        call_timeout: float = 2.0,
        min_retry_delay: float = 0.05,
        max_retry_delay: float = 1.0,
    ) -> None:
        if not peers:
            raise ValueError("a distributed locker needs at least one lock server")
        self._peers = list(peers)
        self.owner = owner
        self.quorum = lock_quorum(len(self._peers))
        self._refresh_interval = refresh_interval
        self._call_timeout = call_timeout
        self._min_retry_delay = min_retry_delay
        self._max_retry_delay = max_retry_delay
        self._local: dict[str, _LocalQueue] = {}
        self._background: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def lock(self, bucket: str, key: str, timeout: float = 30.0) -> AsyncIterator[None]:
        name = f"{bucket}/{key}"
        deadline = asyncio.get_running_loop().time() + timeout
        async with self._local_turn(name, timeout):
            attempt = await self._acquire(name, deadline)
            refresher = asyncio.create_task(self._refresh_forever(attempt))
            try:
                yield
            finally:
                # Not awaited: a refresh still in flight after the unlock finds no grant and changes nothing.
                refresher.cancel()
                # Shielded: a cancelled holder still unlocks instead of leaving grants to expire.
                await asyncio.shield(self._spawn(self._release(attempt)))

    async def close(self) -> None:
        """Wait for the background releases (each bounded by the call timeout), e.g. at shutdown."""
        await asyncio.gather(*list(self._background))

    @contextlib.asynccontextmanager
    async def _local_turn(self, name: str, timeout: float) -> AsyncIterator[None]:
        queue = self._local.setdefault(name, _LocalQueue())
        queue.users += 1
        try:
            try:
                async with asyncio.timeout(timeout):
                    await queue.lock.acquire()
            except TimeoutError:
                raise LockTimeout(f"{name}: held by another task of this process") from None
            try:
                yield
            finally:
                queue.lock.release()
        finally:
            queue.users -= 1
            if queue.users == 0:
                del self._local[name]

    async def _acquire(self, name: str, deadline: float) -> _Attempt:
        loop = asyncio.get_running_loop()
        delay = self._min_retry_delay
        while True:
            attempt = _Attempt(name, uuid.uuid4().hex)
            args = {"resource": name, "uid": attempt.uid, "owner": self.owner}
            attempt.calls = [asyncio.create_task(self._call(peer, "lock", args)) for peer in self._peers]
            try:
                if await self._reaches_quorum(attempt.calls):
                    return attempt
                await self._release(attempt)
            except BaseException:
                self._spawn(self._release(attempt))
                raise
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise LockTimeout(f"{name}: no {self.quorum} of {len(self._peers)} lock servers granted it")
            await asyncio.sleep(min(remaining, random.uniform(self._min_retry_delay, delay)))
            delay = min(delay * 2, self._max_retry_delay)

    async def _reaches_quorum(self, calls: list[asyncio.Task[Answer]]) -> bool:
        """Wait until enough grants arrived, or enough refusals that the quorum is out of reach."""
        allowed_refusals = len(calls) - self.quorum
        pending: set[asyncio.Task[Answer]] = set(calls)
        grants = refusals = 0
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for call in done:
                if _outcome(call) == "granted":
                    grants += 1
                else:
                    refusals += 1
            if grants >= self.quorum:
                return True
            if refusals > allowed_refusals:
                return False
        return False

    async def _release(self, attempt: _Attempt) -> None:
        """Unlock now where the grant is known; where the answer is still out or was lost, unlock in
        the background once it is settled (a late grant would otherwise live until it expires)."""
        args = {"resource": attempt.name, "uid": attempt.uid}
        known = []
        for peer, call in zip(self._peers, attempt.calls, strict=True):
            outcome = _outcome(call)
            if outcome == "granted":
                known.append(self._unlock(peer, args))
            elif outcome == "unknown":
                self._spawn(self._unlock_when_settled(peer, call, args))
        await asyncio.gather(*known)

    async def _unlock_when_settled(self, peer: LockPeer, call: asyncio.Task[Answer], args: Answer) -> None:
        with contextlib.suppress(Exception):
            await call
        if _outcome(call) != "refused":
            await self._unlock(peer, args)

    async def _unlock(self, peer: LockPeer, args: Answer) -> None:
        try:
            await self._call(peer, "unlock", args)
        except Exception as e:  # best effort: the grant expires on its own
            log.debug("unlock of %s failed on a lock server: %r", args["resource"], e)

    async def _refresh_forever(self, attempt: _Attempt) -> None:
        args = {"resource": attempt.name, "uid": attempt.uid}
        while True:
            await asyncio.sleep(self._refresh_interval)
            answers = await asyncio.gather(
                *(self._call(peer, "refresh", args) for peer in self._peers), return_exceptions=True
            )
            kept = sum(1 for a in answers if isinstance(a, dict) and a.get("lost") is False)
            if kept < self.quorum:
                log.error(
                    "lock %s (owner %s) refreshed on %d of %d lock servers, %d needed: it may be granted "
                    "to another holder once it expires; carrying on",
                    attempt.name,
                    self.owner,
                    kept,
                    len(self._peers),
                    self.quorum,
                )

    async def _call(self, peer: LockPeer, method: str, args: dict[str, Any]) -> Answer:
        return await asyncio.wait_for(peer.call(method, args), self._call_timeout)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task


def _outcome(call: asyncio.Task[Answer]) -> str:
    """'granted', 'refused' (the server answered no) or 'unknown' (no answer yet, or an error)."""
    if not call.done() or call.cancelled() or call.exception() is not None:
        return "unknown"
    return "granted" if call.result().get("granted") is True else "refused"

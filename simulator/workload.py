"""Client traffic: objects written and checksummed, read back and judged, load over time.

Contract: bodies are deterministic (`body(seed, key, size)`), so a read is judged by its SHA-256
against the `Ledger` of acknowledged writes: only a PUT that returned success enters the ledger.
`read_all` reads every acknowledged object and classifies each answer (ok / error / wrong);
`write_objects` writes new ones. `Load` runs writer and reader threads for a while, recording
every operation in the `Recorder` (the report's throughput and error plots) and any wrong bytes
as violations at once.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.cluster import BUCKET
from simulator.invariants import Outcome


def body(seed: int, key: str, size: int) -> bytes:
    return random.Random(f"{seed}/{key}").randbytes(size)


@dataclass
class Written:
    key: str
    size: int
    sha256: str


@dataclass
class Sample:
    t: float
    op: str  # put, get
    ok: bool
    nbytes: int


@dataclass
class Recorder:
    """Everything that happened in a run, against one clock (seconds since the scenario started)."""

    t0: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    heal: list[tuple[float, int, int]] = field(default_factory=list)  # t, bytes healed, objects healed
    events: list[tuple[float, str, str]] = field(default_factory=list)  # t, kind, text
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def sample(self, op: str, ok: bool, nbytes: int) -> None:
        with self.lock:
            self.samples.append(Sample(self.now(), op, ok, nbytes))

    def event(self, kind: str, text: str) -> None:
        with self.lock:
            self.events.append((self.now(), kind, text))


class Ledger:
    """Acknowledged writes: the only objects the invariants hold the cluster to."""

    def __init__(self) -> None:
        self._objects: dict[str, Written] = {}
        self._lock = threading.Lock()
        self._counter = 0

    def next_key(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}/{self._counter:06d}"

    def add(self, written: Written) -> None:
        with self._lock:
            self._objects[written.key] = written

    def items(self) -> list[Written]:
        with self._lock:
            return list(self._objects.values())

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._objects)


def _error_text(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{status} {err.get('Code', '')}".strip()
    return f"{type(exc).__name__}: {exc}"[:160]


def read_one(client: Any, item: Written) -> Outcome:
    try:
        data = client.get_object(Bucket=BUCKET, Key=item.key)["Body"].read()
    except Exception as exc:
        return Outcome(item.key, "error", _error_text(exc))
    digest = hashlib.sha256(data).hexdigest()
    if digest != item.sha256:
        return Outcome(item.key, "wrong", f"{len(data)} bytes, sha256 {digest[:16]}, expected {item.size} bytes "
                                          f"sha256 {item.sha256[:16]}")
    return Outcome(item.key, "ok")


def read_all(client: Any, ledger: Ledger, recorder: Recorder | None = None) -> list[Outcome]:
    outcomes = []
    for item in ledger.items():
        outcome = read_one(client, item)
        if recorder is not None:
            recorder.sample("get", outcome.status == "ok", item.size if outcome.status == "ok" else 0)
        outcomes.append(outcome)
    return outcomes


def write_one(client: Any, seed: int, ledger: Ledger, key: str, size: int, recorder: Recorder | None) -> Outcome:
    data = body(seed, key, size)
    try:
        client.put_object(Bucket=BUCKET, Key=key, Body=data)
    except Exception as exc:
        if recorder is not None:
            recorder.sample("put", False, 0)
        return Outcome(key, "error", _error_text(exc))
    ledger.add(Written(key, size, hashlib.sha256(data).hexdigest()))
    if recorder is not None:
        recorder.sample("put", True, size)
    return Outcome(key, "ok")


def write_objects(client: Any, seed: int, ledger: Ledger, count: int, sizes: list[int], prefix: str,
                  recorder: Recorder | None = None) -> list[Outcome]:
    return [write_one(client, seed, ledger, ledger.next_key(prefix), sizes[i % len(sizes)], recorder)
            for i in range(count)]


class Load:
    """Writer and reader threads against the cluster for `seconds` (see module docstring)."""

    def __init__(self, make_client: Callable[[], Any], seed: int, ledger: Ledger, sizes: list[int],
                 recorder: Recorder, seconds: float, writers: int, readers: int) -> None:
        self.make_client = make_client
        self.seed = seed
        self.ledger = ledger
        self.sizes = sizes
        self.recorder = recorder
        self.deadline = time.monotonic() + seconds
        self.violations: list[str] = []
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._writer, args=(i,), daemon=True) for i in range(writers)]
        self.threads += [threading.Thread(target=self._reader, args=(i,), daemon=True) for i in range(readers)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self.deadline

    def _writer(self, n: int) -> None:
        client = self.make_client()
        rng = random.Random(f"{self.seed}/writer/{n}")
        while self._running():
            outcome = write_one(client, self.seed, self.ledger, self.ledger.next_key(f"load{n}"),
                                rng.choice(self.sizes), self.recorder)
            if outcome.status == "error":
                self._stop.wait(0.05)  # a failing cluster answers fast: do not spin

    def _reader(self, n: int) -> None:
        client = self.make_client()
        rng = random.Random(f"{self.seed}/reader/{n}")
        while self._running():
            items = self.ledger.items()
            if not items:
                self._stop.wait(0.05)
                continue
            item = rng.choice(items)
            outcome = read_one(client, item)
            self.recorder.sample("get", outcome.status == "ok", item.size if outcome.status == "ok" else 0)
            if outcome.status == "wrong":
                self.violations.append(f"WRONG BYTES under load: {outcome.key}: {outcome.detail}")
            elif outcome.status == "error":
                self._stop.wait(0.05)

    def join(self) -> None:
        for t in self.threads:
            t.join(max(self.deadline - time.monotonic(), 0) + 60)

    def stop(self) -> None:
        self._stop.set()
        self.join()

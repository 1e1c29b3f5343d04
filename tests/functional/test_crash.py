"""Crash consistency: SIGKILL the server while threads write, restart, and check every key.

Each writer thread owns a few keys and overwrites them in turn, so the order of its writes to a key
is known. After the restart: a key whose last PUT was acknowledged reads back exactly that body; a
key with a PUT in flight at the kill reads back either the previous body or the in-flight one (404
only if there was no previous body), never a mixture; HEAD agrees with GET, and the listing shows
exactly the keys that GET finds.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

import pytest
from botocore.exceptions import ClientError

from tests.functional.payloads import KiB, MiB, body, etag_of, s3_error
from tests.harness import CairnServer, S3Client, fresh_bucket_name, start_server, wait_until

THREADS = 4
KEYS_PER_THREAD = 4
SIZES = [0, 100, 10 * KiB, 200 * KiB, 700 * KiB, 2 * MiB + 5]
ROUNDS = 3


@dataclass
class KeyState:
    """What a key may hold: its last acknowledged body, and a body whose PUT was not acknowledged."""

    acked: bytes | None = None
    in_flight: bytes | None = None


@dataclass
class Writers:
    s3: S3Client
    bucket: str
    round: int
    states: dict[str, KeyState]
    acks: int = 0
    errors_before_kill: list[str] = field(default_factory=list)
    killed: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, thread: int) -> None:
        rng = random.Random(f"{self.round}/{thread}")
        seq = 0
        while True:
            key = f"t{thread}/k{seq % KEYS_PER_THREAD}"
            data = f"round {self.round} thread {thread} seq {seq}\n".encode() + body(rng.choice(SIZES), rng.randrange(1 << 30))
            self.states[key].in_flight = data
            try:
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
            except ClientError as exc:
                if not self.killed.is_set():
                    with self.lock:
                        self.errors_before_kill.append(f"{key}: {s3_error(exc)} {exc}")
                return
            except Exception as exc:  # the connection died with the server; was it killed yet?
                if not self.killed.is_set():
                    with self.lock:
                        self.errors_before_kill.append(f"{key}: {exc!r}")
                return
            self.states[key] = KeyState(acked=data)
            with self.lock:
                self.acks += 1
            seq += 1


def kill_point_reached(writers: Writers, acks: int) -> bool:
    return writers.acks >= acks or bool(writers.errors_before_kill)


@pytest.fixture(scope="module")
def crash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CairnServer]:
    with start_server(tmp_path_factory.mktemp("crash")) as srv:
        yield srv


def verify(s3: S3Client, bucket: str, states: dict[str, KeyState]) -> list[str]:
    """Check every key against its state; afterwards each state holds what the key now has."""
    problems = []
    for key, state in states.items():
        allowed = [b for b in (state.acked, state.in_flight) if b is not None]
        try:
            content: bytes | None = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if s3_error(exc) != (404, "NoSuchKey"):
                problems.append(f"{key}: GET failed with {s3_error(exc)}")
                continue
            content = None
        if content is None:
            if state.acked is not None:
                problems.append(f"{key}: acknowledged PUT lost (GET 404)")
        elif content not in allowed:
            known = "the acknowledged body" if state.in_flight is None else "the previous or the in-flight body"
            first_line = content.split(b"\n", 1)[0][:60]
            problems.append(f"{key}: GET returned {len(content)} B that are not {known} "
                            f"(first line {first_line!r})")
        elif state.in_flight is None and content != state.acked:
            problems.append(f"{key}: GET returned an older body than the acknowledged one")
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
            if content is None:
                problems.append(f"{key}: HEAD found an object that GET did not")
            elif (head["ContentLength"], head["ETag"]) != (len(content), etag_of(content)):
                problems.append(f"{key}: HEAD ({head['ContentLength']} B {head['ETag']}) disagrees with GET")
        except ClientError as exc:
            if content is not None or s3_error(exc) != (404, "404"):
                problems.append(f"{key}: HEAD failed with {s3_error(exc)} while GET found the object")
        states[key] = KeyState(acked=content)
    listed = {item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    present = {key for key, state in states.items() if state.acked is not None}
    if listed != present:
        problems.append(f"listing disagrees with GET: only listed {sorted(listed - present)}, "
                        f"only readable {sorted(present - listed)}")
    return problems


def test_acknowledged_writes_survive_sigkill(crash_server: CairnServer) -> None:
    server = crash_server
    bucket = fresh_bucket_name("crash")
    server.client().create_bucket(Bucket=bucket)
    keys = [f"t{t}/k{j}" for t in range(THREADS) for j in range(KEYS_PER_THREAD)]
    states = {key: KeyState() for key in keys}
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)

    for round_ in range(ROUNDS):
        writers = Writers(server.client(), bucket, round_, states)
        threads = [threading.Thread(target=writers.run, args=(t,), daemon=True) for t in range(THREADS)]
        for thread in threads:
            thread.start()
        target = rng.randint(3, 40)
        wait_until(partial(kill_point_reached, writers, target), 120, message=f"{target} acknowledged PUTs")
        writers.killed.set()
        server.kill()
        for thread in threads:
            thread.join(90)
        assert not any(thread.is_alive() for thread in threads), "a writer hung after the kill"
        assert not writers.errors_before_kill, (f"round {round_}: PUTs failed before the kill:\n"
                                                + "\n".join(writers.errors_before_kill))

        server.start()
        problems = verify(server.client(), bucket, states)
        assert not problems, (f"round {round_} (seed {seed}, killed after {writers.acks} acks):\n"
                              + "\n".join(problems) + "\n" + server.log_tail(30))

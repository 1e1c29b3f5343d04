"""Several worker processes (`--workers 2`) writing one key at once must agree on one winner.

After concurrent PUTs of distinct bodies to one key, GET returns exactly one of them, and every
drive holds that same winner: reading with drives 1 and 2 emptied for the bucket, and then with
drives 3 and 4 emptied instead, gives the same body. Drives are emptied with the server stopped
and restored exactly afterwards, so a heal in between cannot blur which drive held what.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.faults import SetAside
from tests.functional.payloads import KiB, body, etag_of
from tests.harness import CairnServer, S3Client, fresh_bucket_name, start_server

THREADS = 8
PUTS_PER_THREAD = 3


@pytest.fixture(scope="module")
def workers_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CairnServer]:
    with start_server(tmp_path_factory.mktemp("workers"), workers=2) as srv:
        yield srv


def read_winner(s3: S3Client, bucket: str, key: str, bodies: set[bytes]) -> bytes:
    got = s3.get_object(Bucket=bucket, Key=key)
    content: bytes = got["Body"].read()
    assert content in bodies, f"GET returned {len(content)} B that no writer wrote"
    head = s3.head_object(Bucket=bucket, Key=key)
    assert (head["ContentLength"], head["ETag"]) == (len(content), etag_of(content))
    return content


def reads_with_drives_emptied(server: CairnServer, bucket: str, key: str, bodies: set[bytes],
                              groups: list[list[int]], side: Path) -> list[bytes]:
    """The key's body as read with each group of drives in turn holding nothing for the bucket."""
    results = []
    server.stop()
    for number, drives in enumerate(groups):
        aside = [SetAside(server.drives[i], bucket, side / f"group{number}-drive{i}") for i in drives]
        for item in aside:
            item.take()
        try:
            server.start()
            results.append(read_winner(server.client(), bucket, key, bodies))
        finally:
            server.stop()
            for item in aside:
                item.put_back()
    server.start()
    return results


@pytest.mark.parametrize("size", [1 * KiB, 700 * KiB])
def test_concurrent_writers_to_one_key_agree(workers_server: CairnServer, tmp_path: Path, size: int) -> None:
    server = workers_server
    bucket = fresh_bucket_name("race")
    server.client().create_bucket(Bucket=bucket)
    key = "contended"
    bodies = {f"thread {t} put {p}\n".encode() + body(size, seed=f"{t}/{p}")
              for t in range(THREADS) for p in range(PUTS_PER_THREAD)}
    plan = sorted(bodies)
    failures: list[str] = []
    start = threading.Barrier(THREADS)

    def writer(thread: int) -> None:
        s3 = server.client()
        start.wait()
        for data in plan[thread::THREADS]:
            try:
                s3.put_object(Bucket=bucket, Key=key, Body=data)
            except Exception as exc:  # every failed PUT is reported
                failures.append(repr(exc))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    assert not failures, "concurrent PUTs failed:\n" + "\n".join(failures)

    winner = read_winner(server.client(), bucket, key, bodies)
    from_last_two, from_first_two = reads_with_drives_emptied(server, bucket, key, bodies, [[0, 1], [2, 3]], tmp_path)
    assert from_last_two == winner, "drives 3 and 4 hold a different winner than GET returned"
    assert from_first_two == winner, "drives 1 and 2 hold a different winner than GET returned"
    assert read_winner(server.client(), bucket, key, bodies) == winner

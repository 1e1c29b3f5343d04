"""Drive faults on a 4-drive EC 2+2 server: degraded reads, refusal beyond parity, heal, write quorum.

Faults are done to the files of running servers (tests.functional.faults). With up to 2 of 4 drives
faulted every object must read back byte-identical; with 3, every read must fail with an S3 error
and never answer 200 with wrong bytes. Healing must rebuild what 2 faulted drives lost, so that the
other 2 can then fail too. A PUT that cannot reach write quorum must fail and leave nothing behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.functional.faults import FAULT_KINDS, Fault, apply_faults, bucket_files, restore_all
from tests.functional.payloads import MIXED_SIZES, MiB, body, error_of, etag_of, s3_error
from tests.harness import CairnServer, S3Client, fresh_bucket_name, run_cairn, start_server, wait_until

# Which drives (indices) to fault for a number of faulted drives.
DRIVE_PICKS = {1: [1], 2: [0, 3], 3: [0, 1, 3]}
GET_FAILURES = {(404, "NoSuchKey"), (503, "ServiceUnavailable"), (503, "SlowDown")}
HEAD_FAILURES = {(404, "404"), (503, "503")}


@pytest.fixture(scope="module")
def fault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CairnServer]:
    with start_server(tmp_path_factory.mktemp("faults")) as srv:
        yield srv


@contextlib.contextmanager
def server_for(kind: str, shared: CairnServer, tmp_path: Path) -> Iterator[CairnServer]:
    """The shared server for faults confined to one bucket; a fresh one when whole drives go away."""
    if kind != "rename":
        yield shared
        return
    own = start_server(tmp_path / "server")
    try:
        yield own
    finally:
        own.close()


def write_objects(s3: S3Client, bucket: str) -> dict[str, bytes]:
    objects = {f"obj-{size}": body(size, seed=f"{bucket}/{size}") for size in MIXED_SIZES}
    objects["nested/dir/object"] = body(300_000, seed=f"{bucket}/nested")
    for key, data in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    return objects


def unreadable(s3: S3Client, bucket: str, objects: dict[str, bytes]) -> list[str]:
    """Every object that does not read back exactly (GET, ranged GET, HEAD), with what went wrong."""
    problems = []
    for key, data in objects.items():
        try:
            content = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            if content != data:
                problems.append(f"{key} ({len(data)} B): GET 200 with wrong bytes ({len(content)} B)")
            if len(data) >= 3:
                first, last = len(data) // 3, 2 * len(data) // 3
                part = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={first}-{last}")["Body"].read()
                if part != data[first:last + 1]:
                    problems.append(f"{key} ({len(data)} B): ranged GET {first}-{last} returned wrong bytes")
            head = s3.head_object(Bucket=bucket, Key=key)
            if (head["ContentLength"], head["ETag"]) != (len(data), etag_of(data)):
                problems.append(f"{key}: HEAD says {head['ContentLength']} B {head['ETag']}")
        except Exception as exc:  # every failure of every object is collected, then reported at once
            problems.append(f"{key} ({len(data)} B): {s3_error(exc)} {exc}")
    return problems


def wrongly_served(s3: S3Client, bucket: str, objects: dict[str, bytes]) -> list[str]:
    """Every object whose GET or HEAD did anything but fail with an accepted S3 error."""
    problems = []
    for key, data in objects.items():
        try:
            response = s3.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if s3_error(exc) not in GET_FAILURES:
                problems.append(f"{key}: GET failed with {s3_error(exc)}, expected one of {sorted(GET_FAILURES)}")
        except Exception as exc:  # a transport failure is not an S3 error
            problems.append(f"{key}: GET failed without an S3 error: {exc!r}")
        else:
            try:
                content = response["Body"].read()
                verdict = "the right bytes" if content == data else f"WRONG bytes ({len(content)} of {len(data)} B)"
            except Exception as exc:  # the stream broke after a 200
                verdict = f"a broken stream ({exc!r})"
            problems.append(f"{key}: GET answered 200 with {verdict} although 3 of 4 drives are faulted")
        try:
            s3.head_object(Bucket=bucket, Key=key)
            problems.append(f"{key}: HEAD answered 200 although 3 of 4 drives are faulted")
        except ClientError as exc:
            if s3_error(exc) not in HEAD_FAILURES:
                problems.append(f"{key}: HEAD failed with {s3_error(exc)}")
    return problems


@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_reads_survive_faulted_drives(fault_server: CairnServer, tmp_path: Path, kind: str, count: int) -> None:
    with server_for(kind, fault_server, tmp_path) as server:
        s3 = server.client()
        bucket = fresh_bucket_name(kind)
        s3.create_bucket(Bucket=bucket)
        objects = write_objects(s3, bucket)
        faults = apply_faults(kind, [server.drives[i] for i in DRIVE_PICKS[count]], bucket)
        try:
            problems = unreadable(s3, bucket, objects)
        finally:
            restore_all(faults)
        assert not problems, f"{kind} on {count} drive(s):\n" + "\n".join(problems) + "\n" + server.log_tail(30)


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_three_faulted_drives_fail_cleanly(fault_server: CairnServer, tmp_path: Path, kind: str) -> None:
    with server_for(kind, fault_server, tmp_path) as server:
        s3 = server.client()
        bucket = fresh_bucket_name(kind)
        s3.create_bucket(Bucket=bucket)
        objects = write_objects(s3, bucket)
        faults = apply_faults(kind, [server.drives[i] for i in DRIVE_PICKS[3]], bucket)
        try:
            problems = wrongly_served(s3, bucket, objects)
        finally:
            restore_all(faults)
        assert not problems, f"{kind} on 3 drives:\n" + "\n".join(problems) + "\n" + server.log_tail(30)


HEALABLE_KINDS = ["delete", "truncate", "flip"]


def heal(server: CairnServer, *target: str) -> str:
    result = run_cairn(server, "admin", "heal", "--endpoint", server.endpoint, *target)
    assert result.returncode == 0, f"heal {target} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.stdout.strip(), "heal printed no progress"
    return result.stdout


def test_heal_rebuilds_faulted_drives(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server")
    try:
        s3 = server.client()
        written: dict[str, dict[str, bytes]] = {}
        for kind in HEALABLE_KINDS:
            bucket = fresh_bucket_name(kind)
            s3.create_bucket(Bucket=bucket)
            written[bucket] = write_objects(s3, bucket)
            apply_faults(kind, server.drives[:2], bucket)

        output = heal(server, "--verbose")
        named = {line.split(" ", 1)[1] for line in output.splitlines() if line.startswith("HEALED ")}
        for bucket, objects in written.items():
            assert {f"{bucket}/{key}" for key in objects} <= named, f"--verbose did not name every healed object\n{output}"

        # Only the healed copies are left now: the two drives that held the originals lose theirs.
        for (bucket, objects), kind in zip(written.items(), HEALABLE_KINDS, strict=True):
            for drive in server.drives[:2]:
                assert bucket_files(drive, bucket), f"heal left {drive / bucket} empty"
            apply_faults(kind, server.drives[2:], bucket)
            problems = unreadable(s3, bucket, objects)
            assert not problems, f"after heal of {kind} faults:\n" + "\n".join(problems) + "\n" + output
    finally:
        server.close()


@pytest.mark.parametrize("prefix", ["", "nested/"])
def test_heal_of_one_bucket_or_prefix(tmp_path: Path, prefix: str) -> None:
    server = start_server(tmp_path / "server")
    try:
        s3 = server.client()
        bucket = fresh_bucket_name("scoped")
        s3.create_bucket(Bucket=bucket)
        objects = write_objects(s3, bucket)
        apply_faults("delete", server.drives[1:3], bucket)

        output = heal(server, f"{bucket}/{prefix}" if prefix else bucket)

        in_scope = {key: data for key, data in objects.items() if key.startswith(prefix)}
        assert in_scope
        apply_faults("delete", [server.drives[0], server.drives[3]], bucket)
        problems = unreadable(s3, bucket, in_scope)
        assert not problems, f"after heal of {bucket}/{prefix}:\n" + "\n".join(problems) + "\n" + output
    finally:
        server.close()


@pytest.fixture(scope="module")
def quorum_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CairnServer]:
    with start_server(tmp_path_factory.mktemp("quorum")) as srv:
        yield srv


@pytest.mark.parametrize("size", [1000, MiB + 3])
def test_put_without_write_quorum_fails_and_leaves_nothing(quorum_server: CairnServer, size: int) -> None:
    server = quorum_server
    s3 = server.client()
    bucket = fresh_bucket_name("quorum")
    s3.create_bucket(Bucket=bucket)
    faults: list[Fault] = apply_faults("rename", server.drives[1:3], bucket)
    try:
        status, code = error_of(lambda: s3.put_object(Bucket=bucket, Key="k", Body=body(size)))
    finally:
        restore_all(faults)
    assert status == 503, (status, code, server.log_tail(30))
    assert code in {"ServiceUnavailable", "SlowDown"}

    def reads_as_missing() -> bool:
        return error_of(lambda: s3.get_object(Bucket=bucket, Key="k")) == (404, "NoSuchKey")

    wait_until(reads_as_missing, 30, interval=0.2, message="GET of the failed PUT's key to answer 404 NoSuchKey")
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="k")) == (404, "404")
    leftovers = [path for drive in server.drives for path in bucket_files(drive, bucket)]
    assert not leftovers, f"a PUT that failed left files behind: {leftovers}"
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0

"""Shared fixtures: one real server per test module, a boto3 client for it, a fresh bucket per test.

Contract: `server` is started once per module that asks for it (server starts are the costly part
of the suite) and stopped at the module's end; a test that needs a server of its own shape, or
breaks its drives, calls `tests.harness.start_server` itself. `bucket` is an empty bucket that no
other test uses; buckets are not cleaned up, since the module's server and drives are discarded.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import CairnServer, S3Client, fresh_bucket_name, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CairnServer]:
    with start_server(tmp_path_factory.mktemp("server")) as srv:
        yield srv


@pytest.fixture(scope="module")
def s3(server: CairnServer) -> S3Client:
    return server.client()


@pytest.fixture
def bucket(s3: S3Client) -> str:
    name = fresh_bucket_name()
    s3.create_bucket(Bucket=name)
    return name

"""A locust user for any S3 endpoint: a mix of PUT, GET, HEAD, LIST and DELETE of 4 KiB and 1 MiB objects.

Contract: each simulated user owns the prefix `locust/<user id>/` in one bucket, keeps at most
MAX_KEYS objects there, and reports every S3 call to locust as one request (its name is the
operation and size). Every GET body is compared with the MD5 of what this user PUT; a mismatch, an
error status or a LIST missing a key the user wrote is reported as a failure. The bucket is created
at test start if it does not exist.

Settings come from the environment:
  S3_ENDPOINT      endpoint URL (default: locust's --host)
  S3_ACCESS_KEY    access key (default: CAIRN_ROOT_USER)
  S3_SECRET_KEY    secret key (default: CAIRN_ROOT_PASSWORD)
  S3_BUCKET        bucket (default: locust)
  S3_REGION        region (default: us-east-1)

Run headless for a bounded time (see loadtests/README.md):
  .venv/bin/locust -f loadtests/locustfile.py --headless -u 16 -r 4 -t 60s --host http://127.0.0.1:9000
"""

from __future__ import annotations

import hashlib
import os
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from locust import User, constant, events, task
from locust.env import Environment

SMALL = 4 * 1024
MEDIUM = 1024 * 1024
MAX_KEYS = 200
BUCKET = os.environ.get("S3_BUCKET", "locust")


def make_client(host: str | None) -> Any:
    endpoint = os.environ.get("S3_ENDPOINT") or host
    if not endpoint:
        raise RuntimeError("set S3_ENDPOINT or pass --host")
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=os.environ.get("S3_ACCESS_KEY") or os.environ.get("CAIRN_ROOT_USER"),
        aws_secret_access_key=os.environ.get("S3_SECRET_KEY") or os.environ.get("CAIRN_ROOT_PASSWORD"),
        region_name=os.environ.get("S3_REGION", "us-east-1"),
        # No retries: a retried failure would hide what the server did; path style as Cairn serves.
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"}),
    )


@events.test_start.add_listener
def create_bucket(environment: Environment, **_: Any) -> None:
    s3 = make_client(environment.host)
    try:
        s3.create_bucket(Bucket=BUCKET)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


class S3User(User):
    """Closed loop: each user issues its next request as soon as the previous one completes."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.s3 = make_client(self.host)
        self.prefix = f"locust/{uuid.uuid4().hex[:12]}/"
        self.digests: dict[str, str] = {}
        self.serial = 0

    def on_stop(self) -> None:
        for key in list(self.digests):
            self._delete(key)

    def _call(self, name: str, fn: Callable[[], int]) -> None:
        """Time fn (which returns the bytes moved) and report it to locust under name."""
        started = time.perf_counter()
        length, exception = 0, None
        try:
            length = fn()
        except Exception as exc:  # every failure, HTTP or our own check, is a failed request
            exception = exc
        self.environment.events.request.fire(
            request_type="S3", name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=length, exception=exception, context={},
        )

    def _put(self, size: int, name: str) -> None:
        if len(self.digests) >= MAX_KEYS:
            self._delete(random.choice(list(self.digests)))
            return
        self.serial += 1
        key = f"{self.prefix}{self.serial:06d}"
        body = os.urandom(size)

        def put() -> int:
            self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            self.digests[key] = hashlib.md5(body).hexdigest()
            return size

        self._call(name, put)

    def _delete(self, key: str) -> None:
        def delete() -> int:
            self.s3.delete_object(Bucket=BUCKET, Key=key)
            self.digests.pop(key, None)
            return 0

        self._call("DELETE", delete)

    @task(4)
    def put_small(self) -> None:
        self._put(SMALL, "PUT 4 KiB")

    @task(1)
    def put_medium(self) -> None:
        self._put(MEDIUM, "PUT 1 MiB")

    @task(8)
    def get(self) -> None:
        if not self.digests:
            return self.put_small()
        key = random.choice(list(self.digests))

        def get() -> int:
            body = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            if hashlib.md5(body).hexdigest() != self.digests[key]:
                raise AssertionError(f"GET {key}: {len(body)} bytes differ from what was PUT")
            return len(body)

        self._call("GET", get)

    @task(3)
    def head(self) -> None:
        if not self.digests:
            return self.put_small()
        key = random.choice(list(self.digests))

        def head() -> int:
            self.s3.head_object(Bucket=BUCKET, Key=key)
            return 0

        self._call("HEAD", head)

    @task(1)
    def list_objects(self) -> None:
        def list_prefix() -> int:
            listed: set[str] = set()
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=self.prefix):
                listed.update(obj["Key"] for obj in page.get("Contents", []))
            missing = set(self.digests) - listed
            if missing:
                raise AssertionError(f"LIST {self.prefix}: {len(missing)} written keys missing, e.g. {min(missing)}")
            return len(listed)

        self._call("LIST", list_prefix)

    @task(2)
    def delete(self) -> None:
        if self.digests:
            self._delete(random.choice(list(self.digests)))

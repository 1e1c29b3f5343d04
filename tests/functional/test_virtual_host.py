"""Virtual-host-style addressing end to end: `cairn server --domain`, boto3 addressing `bucket.domain`.

The names under `cairn.test` resolve to the loopback address inside this test process only (the
resolver is patched, nothing else is): boto3, botocore's signer and `requests` run unchanged, so
the Host header, the signature over it and the server's reading of it are all the real ones.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests
from botocore.config import Config

from tests.functional.payloads import body, error_of, etag_of
from tests.harness import REGION, CairnServer, S3Client, fresh_bucket_name, start_server

DOMAIN = "s3.cairn.test"
TEST_ZONE = ".cairn.test"


@pytest.fixture(autouse=True)
def resolve_test_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """`*.cairn.test` resolves to 127.0.0.1 in this process; every other name as before."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and ("." + host).endswith(TEST_ZONE):
            host = "127.0.0.1"
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(scope="module")
def vhost_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CairnServer]:
    with start_server(tmp_path_factory.mktemp("vhost"), extra_args=["--domain", DOMAIN]) as server:
        yield server


@pytest.fixture
def hosts() -> list[str]:
    """The Host of every request the virtual-host client sent during the test."""
    return []


@pytest.fixture
def vhost_s3(vhost_server: CairnServer, hosts: list[str]) -> S3Client:
    client = boto3.session.Session().client(
        "s3", endpoint_url=f"http://{DOMAIN}:{vhost_server.port}", region_name=REGION,
        aws_access_key_id=vhost_server.access_key, aws_secret_access_key=vhost_server.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"},
                      retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30),
    )

    def record(request: Any, **kwargs: Any) -> None:
        hosts.append(urlsplit(request.url).hostname or "")

    client.meta.events.register("before-send.s3", record)
    return client


@pytest.fixture
def vhost_bucket(vhost_s3: S3Client, hosts: list[str]) -> str:
    name = fresh_bucket_name("vh")
    vhost_s3.create_bucket(Bucket=name)
    assert hosts == [f"{name}.{DOMAIN}"]
    return name


@pytest.mark.parametrize("key", ["plain", "dir/sub/file.txt", "ünïcode key", "a//double/", "?odd=&chars#"])
def test_put_get_list_delete(vhost_s3: S3Client, vhost_bucket: str, hosts: list[str], key: str) -> None:
    data = body(70_000, seed=key)
    assert vhost_s3.put_object(Bucket=vhost_bucket, Key=key, Body=data)["ETag"] == etag_of(data)
    assert vhost_s3.get_object(Bucket=vhost_bucket, Key=key)["Body"].read() == data
    assert vhost_s3.head_object(Bucket=vhost_bucket, Key=key)["ContentLength"] == len(data)
    listed = vhost_s3.list_objects_v2(Bucket=vhost_bucket)
    assert [o["Key"] for o in listed["Contents"]] == [key]
    vhost_s3.delete_object(Bucket=vhost_bucket, Key=key)
    assert error_of(lambda: vhost_s3.get_object(Bucket=vhost_bucket, Key=key)) == (404, "NoSuchKey")
    assert set(hosts) == {f"{vhost_bucket}.{DOMAIN}"}


def test_list_buckets_on_the_bare_domain(vhost_s3: S3Client, vhost_bucket: str, hosts: list[str]) -> None:
    names = [b["Name"] for b in vhost_s3.list_buckets()["Buckets"]]
    assert vhost_bucket in names and hosts[-1] == DOMAIN


def test_presigned_get(vhost_s3: S3Client, vhost_bucket: str) -> None:
    vhost_s3.put_object(Bucket=vhost_bucket, Key="shared/report.txt", Body=b"for a browser")
    url = vhost_s3.generate_presigned_url("get_object", Params={"Bucket": vhost_bucket, "Key": "shared/report.txt"},
                                          ExpiresIn=300)
    parts = urlsplit(url)
    assert parts.hostname == f"{vhost_bucket}.{DOMAIN}" and parts.path == "/shared/report.txt"
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == b"for a browser"
    tampered = requests.get(url.replace("report.txt", "other.txt"), timeout=10)
    assert tampered.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in tampered.text


def test_missing_bucket_by_host(vhost_server: CairnServer, vhost_s3: S3Client) -> None:
    missing = fresh_bucket_name("gone")
    assert error_of(lambda: vhost_s3.list_objects_v2(Bucket=missing)) == (404, "NoSuchBucket")


def test_path_style_still_served(vhost_server: CairnServer, vhost_bucket: str, vhost_s3: S3Client) -> None:
    vhost_s3.put_object(Bucket=vhost_bucket, Key="k", Body=b"both styles")
    path_style = vhost_server.client()
    assert path_style.get_object(Bucket=vhost_bucket, Key="k")["Body"].read() == b"both styles"


def test_browser_form_upload(vhost_s3: S3Client, vhost_bucket: str) -> None:
    post = vhost_s3.generate_presigned_post(vhost_bucket, "forms/${filename}",
                                            Fields={"success_action_status": "201"},
                                            Conditions=[{"success_action_status": "201"}], ExpiresIn=300)
    assert urlsplit(post["url"]).hostname == f"{vhost_bucket}.{DOMAIN}"
    response = requests.post(post["url"], data=post["fields"], files={"file": ("f.txt", b"by form")}, timeout=10)
    assert response.status_code == 201, response.text
    assert f"<Location>http://{vhost_bucket}.{DOMAIN}:" in response.text and "/forms/f.txt</Location>" in response.text
    assert vhost_s3.get_object(Bucket=vhost_bucket, Key="forms/f.txt")["Body"].read() == b"by form"

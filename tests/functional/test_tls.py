"""`cairn server --certs-dir`: HTTPS on the S3 API and the console, checked with real clients.

One server per module serves a certificate for 127.0.0.1/localhost from a throwaway CA: clients
that trust the CA work (boto3, a presigned GET through requests, `cairn admin`, the health probes,
the console and its own server-side S3 client); clients that do not, or that speak plain HTTP to
the TLS port, are refused. A certificates folder the server cannot use stops it with exit code 2
and a message naming the file, never a traceback. Two nodes on loopback with https:// drive URLs
form one cluster, so internode RPC verifies its peers through the same certificates folder.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
import requests
from botocore.config import Config

from simulator.process import tool
from tests.harness import REGION, CairnServer, free_port, fresh_bucket_name, run_cairn, start_server
from tests.tls import CertificateAuthority

TIMEOUT = 30


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CertificateAuthority, Path]]:
    root = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority()
    yield ca, ca.write(root / "ca.crt")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           ca_file: tuple[CertificateAuthority, Path]) -> Iterator[CairnServer]:
    ca, ca_path = ca_file
    root = tmp_path_factory.mktemp("tls")
    certs = ca.certs_dir(root / "certs")
    with start_server(root / "node", drives=4, extra_args=["--certs-dir", str(certs)], ca=ca_path) as srv:
        yield srv


def test_banner_shows_https(server: CairnServer) -> None:
    log = server.log_text()
    assert f"S3 API:  https://{server.host}:{server.port}" in log
    assert f"Console: https://{server.host}:{server.console_port}" in log


def test_boto3_trusting_the_ca_puts_gets_lists_and_presigns(server: CairnServer) -> None:
    s3 = server.client()
    bucket = fresh_bucket_name("tls")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"over tls")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"over tls"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    assert url.startswith("https://")
    response = requests.get(url, verify=str(server.ca), timeout=TIMEOUT)
    assert response.status_code == 200 and response.content == b"over tls"


def test_boto3_without_the_ca_is_refused(server: CairnServer) -> None:
    s3 = boto3.session.Session().client(
        "s3", endpoint_url=server.endpoint, region_name=REGION,
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=10))
    with pytest.raises(botocore.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        s3.list_buckets()


def test_plain_http_to_the_tls_port_fails(server: CairnServer) -> None:
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://{server.host}:{server.port}/minio/health/live", timeout=TIMEOUT)


@pytest.mark.parametrize("probe", ["live", "ready", "cluster"])
def test_health_probes_answer_over_https(server: CairnServer, probe: str) -> None:
    response = requests.get(f"{server.endpoint}/minio/health/{probe}", verify=str(server.ca), timeout=TIMEOUT)
    assert response.status_code == 200


@pytest.mark.parametrize(("trust_ca", "exit_code", "expected"), [
    (True, 0, "deployment "),
    (False, 2, "CERTIFICATE_VERIFY_FAILED"),
])
def test_cairn_admin_info_over_https(server: CairnServer, trust_ca: bool, exit_code: int, expected: str) -> None:
    args = ["admin", "info", "--endpoint", server.endpoint] + (["--ca", str(server.ca)] if trust_ca else [])
    env = server.admin_env()
    del env["CAIRN_CA"]
    result = subprocess.run([tool("cairn"), *args], env=env, capture_output=True, text=True, timeout=TIMEOUT,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == exit_code, result.stderr
    assert expected in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_cairn_admin_reads_the_ca_from_the_environment(server: CairnServer) -> None:
    result = run_cairn(server, "admin", "info", "--endpoint", server.endpoint)
    assert result.returncode == 0, result.stderr


def test_console_serves_https_and_logs_in_through_the_s3_api_over_tls(server: CairnServer) -> None:
    base = f"https://{server.host}:{server.console_port}"
    browser = requests.Session()  # verify per request: REQUESTS_CA_BUNDLE would override Session.verify
    form = browser.get(f"{base}/login", verify=str(server.ca), timeout=TIMEOUT)
    assert form.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    data = {"access_key": server.access_key, "secret_key": server.secret_key, "csrf": csrf.group(1) if csrf else ""}
    dashboard = browser.post(f"{base}/login", data=data, verify=str(server.ca), timeout=TIMEOUT)
    assert dashboard.url == f"{base}/dashboard", dashboard.text[:500]
    assert dashboard.status_code == 200


def _bad_certs(root: Path, ca: CertificateAuthority, case: str) -> Path:
    certs = ca.certs_dir(root / case)
    _, other_key = ca.issue()
    if case == "garbage-key":
        (certs / "private.key").write_text("not a key\n")
    elif case == "mismatched-key":
        (certs / "private.key").write_bytes(other_key)
    elif case == "missing-key":
        (certs / "private.key").unlink()
    elif case == "garbage-cert":
        (certs / "public.crt").write_text("not a certificate\n")
    return certs


@pytest.mark.parametrize(("case", "message"), [
    ("garbage-key", "private.key is not a usable PEM private key"),
    ("mismatched-key", "private.key is not the private key of"),
    ("missing-key", "private.key is missing"),
    ("garbage-cert", "public.crt is not a PEM certificate"),
    ("missing-folder", "no such folder"),
])
def test_unusable_certificates_stop_the_server_with_exit_2(
        tmp_path: Path, ca_file: tuple[CertificateAuthority, Path], case: str, message: str) -> None:
    certs = tmp_path / "absent" if case == "missing-folder" else _bad_certs(tmp_path, ca_file[0], case)
    drive = tmp_path / "drive"
    drive.mkdir()
    result = subprocess.run(
        [tool("cairn"), "server", "--address", f"127.0.0.1:{free_port()}",
         "--console-address", f"127.0.0.1:{free_port()}", "--certs-dir", str(certs), str(drive)],
        capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_two_nodes_form_a_cluster_over_https(tmp_path: Path, ca_file: tuple[CertificateAuthority, Path]) -> None:
    ca, ca_path = ca_file
    certs = ca.certs_dir(tmp_path / "certs")
    nodes = [CairnServer(tmp_path / f"node{i}", [], 1, None, (), None, ca_path) for i in (1, 2)]
    for node in nodes:
        for d in (1, 2):
            (node.root / f"d{d}").mkdir(parents=True)
    drives = [f"https://{node.host}:{node.port}{node.root}/d{d}" for node in nodes for d in (1, 2)]
    for node in nodes:
        node.extra_args = ("--certs-dir", str(certs), *drives)
    try:
        # Each node is ready only once its peer answers: start them together.
        with ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(CairnServer.start, nodes))
        bucket = fresh_bucket_name("tls-cluster")
        first, second = nodes[0].client(), nodes[1].client()
        first.create_bucket(Bucket=bucket)
        first.put_object(Bucket=bucket, Key="k", Body=b"x" * 300_000)
        assert second.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x" * 300_000
        assert all((node.root / f"d{d}" / bucket).is_dir() for node in nodes for d in (1, 2))
    finally:
        # SIGKILL: a graceful stop would wait out uvloop's 30 s TLS close on the peers' idle connections.
        for node in nodes:
            node.kill()


@pytest.mark.parametrize(("scheme", "tls", "message"), [
    ("https", False, "the drive URLs are https:// but TLS is off"),
    ("http", True, "the drive URLs are http:// but TLS is on"),
])
def test_drive_url_scheme_must_match_tls(tmp_path: Path, ca_file: tuple[CertificateAuthority, Path],
                                         scheme: str, tls: bool, message: str) -> None:
    ports = [free_port(), free_port()]
    drives = [f"{scheme}://127.0.0.1:{port}{tmp_path}/n{port}/d1" for port in ports]
    certs = ["--certs-dir", str(ca_file[0].certs_dir(tmp_path / "certs")) if tls else ""]
    result = subprocess.run(
        [tool("cairn"), "server", "--address", f"127.0.0.1:{ports[0]}", "--console-address",
         f"127.0.0.1:{free_port()}", *certs, *drives],
        capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr

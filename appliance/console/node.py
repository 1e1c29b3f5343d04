"""The console's only road to the node: S3 calls with the logged-in user's keys, admin calls signed
with the same keys, and the unauthenticated health probes, all over HTTP.

Contract: the console imports nothing of the server; it is one more client of the node's public
HTTP interfaces. Every failure the node reports, and every failure to reach it, becomes one
`NodeError(code, message, status)` so the pages show the S3 error code and message as the node
said them. Secrets pass through here only to sign requests; nothing here logs or returns them.
An https:// node is verified (hostname too) against the system CAs plus the PEM files it is given.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import tempfile
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import urllib3
from boto3.s3.transfer import TransferConfig
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
from botocore.httpsession import get_cert_path

ADMIN_PREFIX = "/cairn/admin/v1"
HEALTH_PROBES = ("live", "ready", "cluster")


def _upload_transfer() -> TransferConfig:
    """One streamed PutObject up to S3's 5 GiB limit, read from the spooled file as it is sent;
    multipart only above that, where s3transfer reads each part of a file object into memory, so
    at most two 64 MiB parts are held at once."""
    config = TransferConfig(multipart_threshold=5 * 2**30, multipart_chunksize=64 * 2**20, max_concurrency=2)
    config.max_in_memory_upload_chunks = 2
    return config


UPLOAD_TRANSFER = _upload_transfer()

# Messages for HEAD responses, which carry no error body for botocore to read a code from.
STATUS_CODES = {"400": "BadRequest", "403": "AccessDenied", "404": "NotFound", "412": "PreconditionFailed"}


class NodeError(Exception):
    """What the node answered instead of success, or why it could not be asked."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


@contextlib.contextmanager
def node_errors() -> Iterator[None]:
    """Turn botocore's and urllib3's failures into `NodeError`."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 502)
        code = str(error.get("Code") or status)
        code = STATUS_CODES.get(code, code)
        raise NodeError(code, str(error.get("Message") or f"the node answered {status}"), status) from None
    except ParamValidationError as exc:
        # botocore checked the request before sending it (e.g. a bucket name with a space).
        raise NodeError("InvalidArgument", str(exc), 400) from None
    except (BotoCoreError, urllib3.exceptions.HTTPError, OSError) as exc:
        raise NodeError("NodeUnreachable", str(exc), 502) from None


def _ca_bundle(trust: Sequence[str]) -> Any:
    """A temporary PEM file with botocore's default CAs and `trust`: boto3 takes one CA file path,
    no SSL context. It is removed when the returned file object is closed or collected."""
    bundle = tempfile.NamedTemporaryFile(prefix="cairn-console-ca-", suffix=".pem")  # noqa: SIM115 (lives as long as the Node)
    for path in [get_cert_path(True), *trust]:
        bundle.write(Path(path).read_bytes().rstrip(b"\n") + b"\n")
    bundle.flush()
    return bundle


def _close_after_response(request: Any, **kwargs: Any) -> None:
    """botocore `before-send` hook: ask the node to close the connection after this response."""
    request.headers["Connection"] = "close"


class Node:
    """One node's S3 endpoint, as seen by the console; `trust`: PEM files trusted beyond the system CAs."""

    def __init__(self, endpoint: str, region: str, trust: Sequence[str] = ()) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self._ca_bundle = _ca_bundle(trust) if trust else None
        # Over TLS the node's graceful shutdown waits (up to uvloop's 30 s) for every idle kept-alive
        # connection to answer its close_notify, which an idle client in this process never does.
        self._tls = self.endpoint.startswith("https:")
        self._close = {"connection": "close"} if self._tls else {}
        tls: dict[str, Any] = {}
        if trust:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            for path in trust:
                context.load_verify_locations(cafile=path)
            tls["ssl_context"] = context
        # A kept-alive connection the node has just closed fails on reuse: a GET may try once more.
        self.http = urllib3.PoolManager(num_pools=2, maxsize=8, retries=urllib3.Retry(
            total=1, connect=1, read=1, redirect=0, status=0, allowed_methods=frozenset({"GET"})),
            headers=self._close, **tls)
        self.s3_config = Config(
            signature_version="s3v4",
            region_name=region,
            s3={"addressing_style": "path"},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=5,
            read_timeout=120,
            max_pool_connections=8,
            # Only the checksums S3 requires: the console should work with any S3 server.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )

    def s3_client(self, access_key: str, secret_key: str) -> Any:
        """A boto3 S3 client for one user; clients are thread-safe and kept for the session."""
        session = boto3.session.Session()
        client = session.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=self.s3_config,
            verify=self._ca_bundle.name if self._ca_bundle else None,
        )
        if self._tls:
            client.meta.events.register("before-send.s3", _close_after_response)
        return client

    def login(self, access_key: str, secret_key: str) -> Any:
        """The user's S3 client, once a signed ListBuckets proves the keys; NodeError otherwise."""
        client = self.s3_client(access_key, secret_key)
        with node_errors():
            client.list_buckets()
        return client

    def health(self) -> dict[str, bool]:
        """Each health probe: True when it answered 200."""
        result = {}
        for probe in HEALTH_PROBES:
            try:
                response = self.http.request("GET", f"{self.endpoint}/minio/health/{probe}",
                                             timeout=urllib3.Timeout(connect=3, read=5))
                result[probe] = response.status == 200
            except (urllib3.exceptions.HTTPError, OSError):
                result[probe] = False
        return result

    def _admin(self, credentials: Credentials, method: str, path: str, query: dict[str, str],
               read_timeout: float) -> urllib3.BaseHTTPResponse:
        qs = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        url = f"{self.endpoint}{ADMIN_PREFIX}{path}" + (f"?{qs}" if qs else "")
        request = AWSRequest(method=method, url=url, data=b"")
        S3SigV4Auth(credentials, "s3", self.region).add_auth(request)
        with node_errors():
            response = self.http.request(method, url, headers=dict(request.headers.items()) | self._close, body=b"",
                                         preload_content=False,
                                         timeout=urllib3.Timeout(connect=5, read=read_timeout))
        if response.status != 200:
            body = response.read(64 * 1024).decode("utf-8", "replace")
            # The node may close the connection after an error; never hand it to the next request.
            response.close()
            response.release_conn()
            raise NodeError(*_admin_error(response.status, body), response.status)
        return response

    def admin_get(self, credentials: Credentials, path: str) -> Any:
        """A JSON document from the admin API."""
        response = self._admin(credentials, "GET", path, {}, read_timeout=60)
        with node_errors():
            try:
                return json.loads(response.read())
            finally:
                response.release_conn()

    def heal(self, credentials: Credentials, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
        """Start a heal and yield its NDJSON events as they arrive.

        The request is sent (and a refusal raised) before the first event is asked for, so a caller
        can report a refusal before it starts showing progress.
        """
        query = {"bucket": bucket, "prefix": prefix} if bucket else {}
        # A single large object can take minutes to rebuild before the next line is written.
        response = self._admin(credentials, "POST", "/heal", query, read_timeout=900)

        def events() -> Iterator[dict[str, Any]]:
            try:
                with node_errors():
                    for line in response:
                        if line.strip():
                            yield json.loads(line)
            finally:
                response.release_conn()

        return events()


def _admin_error(status: int, body: str) -> tuple[str, str]:
    """(code, message) from an admin API refusal: FastAPI's `{"detail": ...}` or plain text."""
    code = STATUS_CODES.get(str(status), f"HTTP{status}")
    try:
        detail = json.loads(body).get("detail", body)
    except (ValueError, AttributeError):
        detail = body
    detail = str(detail).strip() or f"the admin API answered {status}"
    # The admin API phrases signature refusals as "Code: message".
    head, sep, tail = detail.partition(": ")
    if sep and head.isalnum() and head[:1].isupper():
        return head, tail
    return code, detail

"""Raw HTTP exchanges with a server, for tests that must see exactly what goes over the wire.

Contract: every request here that carries credentials is signed by botocore's own SigV4 signer
(`S3SigV4Auth`), with optional, explicit deviations (a fixed payload hash, a shifted clock, a body
swapped after signing, another region); the transport is http.client or a bare socket, so the test
sees the status, headers and body bytes exactly as the server sent them.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import importlib.util
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from unittest import mock
from urllib.parse import quote

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import get_current_datetime
from botocore.credentials import Credentials

from tests.harness import REGION, CairnServer


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)

    def error_fields(self) -> dict[str, str]:
        """The children of an S3 <Error> document, by tag."""
        root = self.xml()
        assert local_name(root.tag) == "Error", f"not an S3 error document: {self.body[:300]!r}"
        return {local_name(child.tag): child.text or "" for child in root}


def local_name(tag: str) -> str:
    """An XML tag without its namespace."""
    return tag.rsplit("}", 1)[-1]


def find_all(element: ET.Element, name: str) -> list[ET.Element]:
    """Direct children called `name`, whatever their namespace."""
    return [child for child in element if local_name(child.tag) == name]


def find_text(element: ET.Element, name: str) -> str | None:
    children = find_all(element, name)
    return (children[0].text or "") if children else None


@contextlib.contextmanager
def shifted_clock(skew: datetime.timedelta) -> Iterator[None]:
    """Make botocore sign as if its clock were `skew` off, whichever signer it uses (pure or CRT)."""

    def now(remove_tzinfo: bool = True) -> datetime.datetime:
        return get_current_datetime(remove_tzinfo) + skew

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch("botocore.auth.get_current_datetime", now))
        if importlib.util.find_spec("awscrt") is not None:
            stack.enter_context(mock.patch("botocore.crt.auth.get_current_datetime", now))
        yield


class _Signer(S3SigV4Auth):
    """botocore's S3 signer, optionally claiming a payload hash other than the body's."""

    def __init__(self, credentials: Credentials, region: str, payload_hash: str | None) -> None:
        super().__init__(credentials, "s3", region)
        self._payload_hash = payload_hash

    def payload(self, request: Any) -> str:
        if self._payload_hash is not None:
            return self._payload_hash
        return str(super().payload(request))


def encode_path(bucket: str = "", key: str = "") -> str:
    """The request path for a bucket and key, encoded as botocore encodes them."""
    path = "/"
    if bucket:
        path += quote(bucket, safe="")
        if key:
            path += "/" + quote(key, safe="/~")
    return path


def signed_request(
    server: CairnServer,
    method: str,
    path: str,
    *,
    query: Sequence[tuple[str, str]] = (),
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    payload_hash: str | None = None,
    send_body: bytes | None = None,
    send_headers: Mapping[str, str] | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str = REGION,
    clock_skew: datetime.timedelta = datetime.timedelta(0),
    anonymous: bool = False,
) -> RawResponse:
    """Sign a request with botocore (unless `anonymous`) and send it with http.client.

    `path` is already encoded (see `encode_path`). `payload_hash` replaces the body's SHA-256 in
    the signature (e.g. "UNSIGNED-PAYLOAD"); `send_body` is sent instead of the signed `body`, and
    `send_headers` replace signed headers after signing.
    """
    qs = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query)
    target = path + (f"?{qs}" if qs else "")
    request = AWSRequest(method=method, url=server.endpoint + target, headers=dict(headers or {}), data=body)
    if not anonymous:
        credentials = Credentials(access_key or server.access_key, secret_key or server.secret_key)
        signer = _Signer(credentials, region, payload_hash)
        with shifted_clock(clock_skew):
            signer.add_auth(request)
    sent_headers = {name: str(value) for name, value in request.headers.items()}
    sent_headers.update(send_headers or {})
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    try:
        conn.request(method, target, body=body if send_body is None else send_body, headers=sent_headers)
        response = conn.getresponse()
        data = response.read()
        return RawResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def head_exchange(server: CairnServer, path: str) -> tuple[bytes, bytes]:
    """Send a signed HEAD with `Connection: close` over a bare socket; return (head, everything after).

    Reading to EOF shows whether the server wrongly sent body bytes after a HEAD response's headers.
    """
    request = AWSRequest(method="HEAD", url=server.endpoint + path, headers={"Connection": "close"}, data=b"")
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", REGION).add_auth(request)
    lines = [f"HEAD {path} HTTP/1.1", f"Host: {server.host}:{server.port}"]
    lines += [f"{name}: {value}" for name, value in request.headers.items()]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    received = b""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(raw)
        while True:
            try:
                piece = sock.recv(65536)
            except TimeoutError:
                break
            if not piece:
                break
            received += piece
    head, _, rest = received.partition(b"\r\n\r\n")
    return head, rest

"""A lean asyncio S3 client for load generation, with a minimal SigV4 signer.

Contract: `S3Client` sends path-style S3 requests over keep-alive HTTP/1.1 connections (one request
per connection at a time; a connection is reused once its response is complete) and returns a
`Response` holding the status, the lower-cased headers, the whole body and the request's latency.
It never retries and never raises on an HTTP error status: the caller decides what a status means.
Transport failures raise `ConnectionError` or `TimeoutError`.

It exists because boto3 spends about a millisecond of CPU per request, which on a two-core machine
shared with the server under test would make the client the bottleneck. It is a load generator, not
a compatibility test: it speaks only what the benchmark needs (Content-Length or chunked bodies, no
100-continue, no redirects). Bodies are signed as `UNSIGNED-PAYLOAD` unless a payload hash is
given, so a 64 MiB PUT costs the client no hashing. `check_signer_against_botocore()` proves the
signer agrees with botocore byte for byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import unescape

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# Large writes are handed to the transport in slices so that flow control (pause_writing) can hold
# the producer back instead of the transport copying a whole 64 MiB body into its own buffer.
WRITE_SLICE = 1024 * 1024
READ_BUFFER = 256 * 1024
MAX_HEAD = 64 * 1024

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True)
class Response:
    """One complete HTTP response; `latency` runs from the first byte sent to the last byte read."""

    status: int
    headers: dict[str, str]
    body: bytearray | memoryview
    latency: float


class SigV4Signer:
    """AWS Signature Version 4 for S3 (header form), as in the AWS General Reference."""

    def __init__(self, access_key: str, secret_key: str, region: str, service: str = "s3") -> None:
        self.access_key = access_key
        self._secret = secret_key
        self.region = region
        self.service = service
        self._key_date = ""
        self._key = b""

    def _signing_key(self, date: str) -> bytes:
        # The derived key changes once a day; deriving it costs four HMACs, so it is cached.
        if date != self._key_date:
            k = hmac.new(f"AWS4{self._secret}".encode(), date.encode(), hashlib.sha256).digest()
            for part in (self.region, self.service, "aws4_request"):
                k = hmac.new(k, part.encode(), hashlib.sha256).digest()
            self._key_date, self._key = date, k
        return self._key

    def sign(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        payload_hash: str,
        amz_date: str,
    ) -> dict[str, str]:
        """Return `headers` plus x-amz-date, x-amz-content-sha256 and Authorization.

        `path` is the URI-encoded path exactly as sent (S3 does not normalise it); `query` is the
        canonical query string (see `canonical_query`); `headers` must include host.
        """
        signed = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
        signed["x-amz-date"] = amz_date
        signed["x-amz-content-sha256"] = payload_hash
        names = sorted(signed)
        signed_headers = ";".join(names)
        canonical = "\n".join(
            (
                method,
                path,
                query,
                "".join(f"{n}:{signed[n]}\n" for n in names),
                signed_headers,
                payload_hash,
            )
        )
        date = amz_date[:8]
        scope = f"{date}/{self.region}/{self.service}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(date), to_sign.encode(), hashlib.sha256).hexdigest()
        out = dict(headers)
        out["x-amz-date"] = amz_date
        out["x-amz-content-sha256"] = payload_hash
        out["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature}"
        )
        return out


def canonical_query(params: Sequence[tuple[str, str]]) -> str:
    """The SigV4 canonical query string, which is also what the client sends on the wire."""
    pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in pairs)


def object_path(bucket: str, key: str = "") -> str:
    """Path-style request path; each key byte outside the unreserved set is percent-encoded."""
    if not key:
        return f"/{bucket}" if bucket else "/"
    return f"/{bucket}/{quote(key, safe='/~')}"


class _AmzClock:
    """x-amz-date for now, formatted once per second rather than once per request."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        return self._text


_HeadState = Literal["idle", "head", "length", "chunked", "close"]


class _Connection(asyncio.BufferedProtocol):
    """One HTTP/1.1 connection with at most one request in flight.

    Reads go straight into the response body buffer once its length is known, so a 64 MiB GET is
    received without intermediate copies.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reusable = False
        self.exchanges = 0
        self.received_any = False
        self._scratch = bytearray(READ_BUFFER)
        self._state: _HeadState = "idle"
        self._head = bytearray()
        self._body: bytearray | memoryview = bytearray()
        self._into: bytearray | None = None
        self._filled = 0
        self._chunk_raw = bytearray()
        self._status = 0
        self._headers: dict[str, str] = {}
        self._no_body = False
        self._done: asyncio.Future[tuple[int, dict[str, str], bytearray | memoryview]] | None = None
        self._can_write: asyncio.Future[None] | None = None
        self._lost: BaseException | None = None

    # asyncio callbacks -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.reusable = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._lost = exc or ConnectionError("connection closed by the server")
        if self._state == "close":
            self._finish()
        elif self._done is not None and not self._done.done():
            self._done.set_exception(ConnectionError(f"connection lost mid-response: {self._lost!r}"))
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_exception(ConnectionError("connection lost while sending"))

    def pause_writing(self) -> None:
        if self._can_write is None or self._can_write.done():
            self._can_write = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._state == "length":
            return memoryview(self._body)[self._filled :]
        return memoryview(self._scratch)

    def buffer_updated(self, nbytes: int) -> None:
        self.received_any = True
        if self._state == "length":
            self._filled += nbytes
            if self._filled == len(self._body):
                self._finish()
            return
        self._feed(memoryview(self._scratch)[:nbytes])

    def eof_received(self) -> bool | None:
        return False

    # request/response --------------------------------------------------------------------------
    async def exchange(
        self, head: bytes, body: Sequence[Buffer], no_body: bool, into: bytearray | None
    ) -> tuple[int, dict[str, str], bytearray | memoryview]:
        self.exchanges += 1
        self.received_any = False
        if self.transport is None or not self.reusable:
            raise ConnectionError("connection is not usable")
        self._done = asyncio.get_running_loop().create_future()
        self._state = "head"
        self._head = bytearray()
        self._no_body = no_body
        self._into = into
        self.transport.write(head)
        try:
            await self._send_body(body)
        except ConnectionError:
            # A server may answer (say 403) before reading the whole body, then close: the answer
            # is what the caller needs, not the broken pipe.
            if not self._done.done():
                raise
            self.reusable = False
        return await self._done

    async def _send_body(self, body: Sequence[Buffer]) -> None:
        assert self.transport is not None and self._done is not None
        for part in body:
            view = memoryview(part).cast("B")
            for start in range(0, len(view), WRITE_SLICE):
                if self._done.done():
                    self.reusable = False
                    return
                if self._can_write is not None:
                    await self._can_write
                    self._can_write = None
                self.transport.write(view[start : start + WRITE_SLICE])

    def _feed(self, data: memoryview) -> None:
        if self._state == "head":
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > MAX_HEAD:
                    self._fail(ValueError("response head larger than 64 KiB"))
                return
            rest = bytes(self._head[end + 4 :])
            self._parse_head(bytes(self._head[:end]))
            if self._state == "idle":
                self.reusable = self.reusable and not rest
            elif rest or self._state == "chunked":
                self._feed_body(rest)
        elif self._state in ("chunked", "close"):
            self._feed_body(bytes(data))
        elif self._state == "idle" and data:
            # Bytes with no request outstanding: the stream is out of sync and must not be reused.
            self.reusable = False

    def _parse_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        self._status = int(rest[:3])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self._headers = headers
        if version != "HTTP/1.1" or "close" in headers.get("connection", "").lower():
            self.reusable = False
        self._filled = 0
        if self._no_body or self._status in (204, 304) or 100 <= self._status < 200:
            self._body = bytearray()
            self._state = "length"
            self._finish()
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._body = bytearray()
            self._chunk_raw = bytearray()
            self._state = "chunked"
        elif "content-length" in headers:
            length = int(headers["content-length"])
            # Reading into the caller's buffer spares allocating (and zeroing) a fresh one per response.
            if self._into is not None and len(self._into) >= length:
                self._body = memoryview(self._into)[:length]
            else:
                self._body = bytearray(length)
            self._state = "length"
            if not self._body:
                self._finish()
        else:
            self._body = bytearray()
            self._state = "close"
            self.reusable = False

    def _feed_body(self, data: bytes) -> None:
        if self._state == "length":
            take = min(len(data), len(self._body) - self._filled)
            self._body[self._filled : self._filled + take] = data[:take]
            self._filled += take
            if take < len(data):
                self.reusable = False
            if self._filled == len(self._body):
                self._finish()
        elif self._state == "close":
            assert isinstance(self._body, bytearray)
            self._body += data
        elif self._state == "chunked":
            self._chunk_raw += data
            self._parse_chunks()

    def _parse_chunks(self) -> None:
        raw = self._chunk_raw
        pos = 0
        while True:
            line_end = raw.find(b"\r\n", pos)
            if line_end < 0:
                break
            size = int(bytes(raw[pos:line_end]).split(b";")[0], 16)
            if size == 0:
                # Last chunk; trailers (none expected) end with an empty line.
                trailer_end = raw.find(b"\r\n\r\n", line_end)
                if raw[line_end : line_end + 4] == b"\r\n\r\n" or trailer_end >= 0:
                    self._finish()
                    return
                break
            if len(raw) < line_end + 2 + size + 2:
                break
            assert isinstance(self._body, bytearray)
            self._body += raw[line_end + 2 : line_end + 2 + size]
            pos = line_end + 2 + size + 2
        del raw[:pos]

    def _finish(self) -> None:
        state_was_close = self._state == "close"
        self._state = "idle"
        if state_was_close:
            self.reusable = False
        if self._done is not None and not self._done.done():
            self._done.set_result((self._status, self._headers, self._body))

    def _fail(self, exc: BaseException) -> None:
        self.reusable = False
        if self._done is not None and not self._done.done():
            self._done.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


class S3Client:
    """Path-style S3 over keep-alive connections; at most one request per connection at a time."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        timeout: float = 300.0,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"endpoint must be http://HOST:PORT, not {endpoint!r}")
        self.host = parts.hostname
        self.port = parts.port
        self.host_header = f"{self.host}:{self.port}"
        self.signer = SigV4Signer(access_key, secret_key, region)
        self.timeout = timeout
        self._idle: list[_Connection] = []
        self._clock = _AmzClock()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Connection, self.host, self.port)
        return protocol

    async def request(
        self,
        method: str,
        bucket: str,
        key: str = "",
        params: Sequence[tuple[str, str]] = (),
        headers: dict[str, str] | None = None,
        body: Sequence[Buffer] = (),
        payload_hash: str | None = None,
        into: bytearray | None = None,
    ) -> Response:
        """Send one signed request and return its complete response.

        `body` is sent as the concatenation of its buffers (no copy is made); its hash defaults to
        UNSIGNED-PAYLOAD, or to the empty-body hash when there is no body. A Content-Length
        response body that fits in `into` is read into it, and `Response.body` is then a view of it.
        """
        path = object_path(bucket, key)
        query = canonical_query(params)
        length = sum(memoryview(b).nbytes for b in body)
        base = {"host": self.host_header}
        if headers:
            base.update(headers)
        if payload_hash is None:
            payload_hash = UNSIGNED_PAYLOAD if length else EMPTY_SHA256
        signed = self.signer.sign(method, path, query, base, payload_hash, self._clock.now())
        if length or method in ("PUT", "POST"):
            signed["content-length"] = str(length)
        target = f"{path}?{query}" if query else path
        return await self._send(method, target, signed, body, into)

    async def get_unsigned(self, target: str, into: bytearray | None = None) -> Response:
        """A plain GET of `target` (path and query as sent, e.g. a presigned URL's) with no signature added."""
        return await self._send("GET", target, {"host": self.host_header}, (), into)

    async def _send(
        self, method: str, target: str, headers: dict[str, str], body: Sequence[Buffer], into: bytearray | None
    ) -> Response:
        head = "".join(
            [f"{method} {target} HTTP/1.1\r\n", *(f"{k}: {v}\r\n" for k, v in headers.items()), "\r\n"]
        ).encode("utf-8")
        # A kept-alive connection may have been closed by the server's idle timeout just as it was
        # picked; such a request is retried once on a fresh connection if no response byte came.
        for attempt in (1, 2):
            conn = await self._acquire()
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.timeout):
                    status, resp_headers, resp_body = await conn.exchange(head, body, method == "HEAD", into)
                break
            except ConnectionError:
                self._discard(conn)
                if attempt == 2 or conn.exchanges < 2 or conn.received_any:
                    raise
            except BaseException:
                self._discard(conn)
                raise
        latency = time.perf_counter() - started
        if conn.reusable:
            self._idle.append(conn)
        else:
            self._discard(conn)
        return Response(status, resp_headers, resp_body, latency)

    async def _acquire(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable:
                return conn
            self._discard(conn)
        return await self._connect()

    @staticmethod
    def _discard(conn: _Connection) -> None:
        conn.reusable = False
        if conn.transport is not None:
            conn.transport.close()

    async def create_bucket(self, bucket: str) -> Response:
        return await self.request("PUT", bucket)

    async def put_object(self, bucket: str, key: str, body: Sequence[Buffer]) -> Response:
        return await self.request("PUT", bucket, key, body=body)

    async def get_object(self, bucket: str, key: str, into: bytearray | None = None) -> Response:
        return await self.request("GET", bucket, key, into=into)

    async def head_object(self, bucket: str, key: str) -> Response:
        return await self.request("HEAD", bucket, key)

    async def delete_object(self, bucket: str, key: str) -> Response:
        return await self.request("DELETE", bucket, key)

    async def list_objects_v2(
        self, bucket: str, prefix: str = "", token: str = "", max_keys: int = 1000
    ) -> Response:
        params = [("list-type", "2"), ("max-keys", str(max_keys))]
        if prefix:
            params.append(("prefix", prefix))
        if token:
            params.append(("continuation-token", token))
        return await self.request("GET", bucket, params=params)

    def close(self) -> None:
        for conn in self._idle:
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()


_KEY_RE = re.compile(rb"<Key>(.*?)</Key>", re.S)
_TOKEN_RE = re.compile(rb"<NextContinuationToken>(.*?)</NextContinuationToken>", re.S)
_TRUNCATED_RE = re.compile(rb"<IsTruncated>\s*true\s*</IsTruncated>")


def parse_list_page(body: bytes | bytearray | memoryview) -> tuple[list[str], str, bool]:
    """(keys, next continuation token, is truncated) of a ListObjectsV2 response body.

    Regular expressions rather than an XML parser: the page is well-formed S3 XML by contract, and
    parsing 1000 keys with ElementTree would cost the client more than some servers spend listing.
    """
    keys = [unescape(m.decode()) for m in _KEY_RE.findall(body)]
    token_match = _TOKEN_RE.search(body)
    token = unescape(token_match.group(1).decode()) if token_match else ""
    return keys, token, bool(_TRUNCATED_RE.search(body))


# Requests the self-check signs with both signers: (method, key, query params, extra headers, body).
SIGNER_CASES: list[tuple[str, str, list[tuple[str, str]], dict[str, str], bytes | None]] = [
    ("GET", "", [("list-type", "2"), ("max-keys", "1000"), ("prefix", "list/")], {}, None),
    ("GET", "", [("list-type", "2"), ("continuation-token", "a+b/c=d e~")], {}, None),
    ("PUT", "small/k 1", [], {"Content-Type": "application/octet-stream"}, b"x" * 4096),
    ("PUT", "large/ünïcode~key", [], {}, None),
    ("HEAD", "dir/sub/key.txt", [], {"Range": "bytes=0-9"}, None),
    ("DELETE", "a%b&c=d", [], {}, None),
    ("GET", "k", [("uploads", "")], {"X-Amz-Meta-Note": "  two   spaces  "}, None),
]


def check_signer_against_botocore() -> int:
    """Sign SIGNER_CASES with this signer and botocore; raise AssertionError on any difference.

    A case with a body is signed with its SHA-256, the others as UNSIGNED-PAYLOAD (PUT) or the
    empty-body hash. Returns the number of cases checked.
    """
    import datetime
    from unittest import mock

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials

    fixed = datetime.datetime(2024, 5, 17, 12, 34, 56)
    amz_date = fixed.strftime("%Y%m%dT%H%M%SZ")
    host = "127.0.0.1:9000"
    ours = SigV4Signer("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1")
    theirs = S3SigV4Auth(
        Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), "s3", "us-east-1"
    )
    for method, key, params, headers, body in SIGNER_CASES:
        path = object_path("bench", key)
        query = canonical_query(params)
        url = f"http://{host}{path}" + (f"?{query}" if query else "")
        if body is not None:
            payload_hash = hashlib.sha256(body).hexdigest()
        else:
            payload_hash = UNSIGNED_PAYLOAD if method == "PUT" else EMPTY_SHA256
        request = AWSRequest(method=method, url=url, headers=dict(headers), data=body or b"")
        if payload_hash == UNSIGNED_PAYLOAD:
            request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
        with mock.patch("botocore.auth.get_current_datetime", return_value=fixed):
            theirs.add_auth(request)
        mine = ours.sign(method, path, query, {"host": host, **headers}, payload_hash, amz_date)
        if mine["Authorization"] != request.headers["Authorization"]:
            raise AssertionError(
                f"SigV4 mismatch for {method} {url}:\n ours:     {mine['Authorization']}\n"
                f" botocore: {request.headers['Authorization']}"
            )
        if mine["x-amz-content-sha256"] != request.headers["X-Amz-Content-SHA256"]:
            raise AssertionError(f"payload hash mismatch for {method} {url}")
    return len(SIGNER_CASES)

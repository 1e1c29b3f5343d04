"""One request's context, its streamed body, and the response value handlers return.

Contract: `RequestContext.body()` yields the request body exactly once, decoded (aws-chunked
framing removed, chunk signatures verified) and checked: the declared length, the signed
payload hash and any `x-amz-checksum-*` value are verified as the last bytes arrive, and a mismatch
raises the S3 error *before* the iterator ends, so the engine never commits a bad body.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from appliance.s3 import checksums
from appliance.s3.chunked import NEED_DATA, ChunkedDecoder, Data, EndOfBody, Trailers
from appliance.s3.errors import S3Error

if TYPE_CHECKING:
    from appliance.cluster.server_pools import ServerPools
    from appliance.s3.sigv4 import AuthResult

UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING = "STREAMING-"
MAX_XML_BODY = 2 * 1024 * 1024


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | AsyncIterator[bytes] = b""


@dataclass
class RequestContext:
    app: Any
    method: str
    raw_path: str
    query: str
    headers: dict[str, str]
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]]
    request_id: str
    endpoint: Any = None
    auth: AuthResult | None = None
    layer: ServerPools | None = None
    # Filled in by body(): what was received and which checksum it carried.
    checksum: tuple[str, str] | None = None
    _consumed: bool = False

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        if value is None:
            return None
        try:
            n = int(value)
        except ValueError:
            raise S3Error("InvalidArgument", "Content-Length is not a number") from None
        if n < 0:
            raise S3Error("InvalidArgument", "Content-Length is negative")
        return n

    def decoded_length(self) -> int | None:
        """The length of the object being uploaded, if the client declared it."""
        mode = self.auth.payload_mode if self.auth else UNSIGNED
        if mode.startswith(STREAMING) or "aws-chunked" in self.headers.get("content-encoding", ""):
            value = self.headers.get("x-amz-decoded-content-length")
            if value is None:
                if self.content_length is None:
                    return None
                raise S3Error("MissingContentLength", "x-amz-decoded-content-length is required")
            try:
                return int(value)
            except ValueError:
                raise S3Error("InvalidArgument", "x-amz-decoded-content-length is not a number") from None
        return self.content_length

    @property
    def body_consumed(self) -> bool:
        return self._consumed

    def may_have_body(self) -> bool:
        length = self.headers.get("content-length")
        return (length is not None and length != "0") or "transfer-encoding" in self.headers

    async def _raw(self) -> AsyncIterator[bytes]:
        if self._consumed:
            raise RuntimeError("the request body was already read")
        self._consumed = True
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise S3Error("IncompleteBody", "the client closed the connection before the body ended")
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return

    async def body(self) -> AsyncIterator[bytes]:
        """The decoded, verified request body (see module docstring)."""
        mode = self.auth.payload_mode if self.auth else UNSIGNED
        declared = self.decoded_length()
        trailer_names = [t.strip().lower() for t in self.headers.get("x-amz-trailer", "").split(",") if t.strip()]
        expected = checksums.from_headers(self.headers)
        algorithm = expected[0] if expected else None
        if algorithm is None:
            for name in trailer_names:
                if name.startswith("x-amz-checksum-"):
                    algorithm = name[len("x-amz-checksum-"):].upper()
        summer = checksums.Checksum(algorithm) if algorithm else None
        sha = hashlib.sha256() if mode not in (UNSIGNED,) and not mode.startswith(STREAMING) else None
        received = 0
        trailers: dict[str, str] = {}

        if mode.startswith(STREAMING) or "aws-chunked" in self.headers.get("content-encoding", ""):
            decoder = ChunkedDecoder(mode if mode.startswith(STREAMING) else "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                                     auth=self.auth, decoded_length=declared, trailer_names=trailer_names)
            raw = self._raw()
            ended = False
            while not ended:
                event = decoder.next_event()
                if event is NEED_DATA:
                    try:
                        chunk = await raw.__anext__()
                    except StopAsyncIteration:
                        chunk = b""
                    decoder.receive_data(chunk)
                    continue
                if isinstance(event, Data):
                    received += len(event.data)
                    if summer:
                        summer.update(event.data)
                    yield event.data
                elif isinstance(event, Trailers):
                    trailers.update(event.headers)
                elif isinstance(event, EndOfBody):
                    ended = True
        else:
            async for chunk in self._raw():
                received += len(chunk)
                if declared is not None and received > declared:
                    raise S3Error("IncompleteBody", "the body is longer than its Content-Length")
                if sha is not None:
                    sha.update(chunk)
                if summer:
                    summer.update(chunk)
                yield chunk
        if declared is not None and received != declared:
            raise S3Error("IncompleteBody", f"received {received} of {declared} bytes")
        if sha is not None and sha.hexdigest() != mode:
            raise S3Error("XAmzContentSHA256Mismatch")
        if summer is not None:
            assert algorithm is not None
            name = f"x-amz-checksum-{algorithm.lower()}"
            want = expected[1] if expected else trailers.get(name)
            if want is None:
                raise S3Error("InvalidRequest", f"the {name} trailer is missing")
            got = summer.b64()
            if got != want:
                raise S3Error("BadDigest", f"The {algorithm} you specified did not match the calculated checksum.")
            self.checksum = (algorithm, got)

    async def read_all(self, limit: int = MAX_XML_BODY) -> bytes:
        """The whole (small) body, for XML requests; larger than `limit` is refused."""
        parts = []
        total = 0
        async for chunk in self.body():
            total += len(chunk)
            if total > limit:
                raise S3Error("MaxMessageLengthExceeded", "the request body is too large")
            parts.append(chunk)
        return b"".join(parts)

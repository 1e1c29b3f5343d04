"""The aws-chunked request body decoder: bytes in, events out (in the manner of h11).

Contract: feed the raw body with `receive_data()` (b"" means the client closed) and call
`next_event()` until it returns `NEED_DATA` (feed more) or `EndOfBody`. Events are `Data` (decoded
object bytes), at most one `Trailers`, then `EndOfBody`. Every framing, length, trailer or
signature problem raises `S3Error`; after an error the decoder raises the same error again.

Signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]) are held until their signature
verifies, so no unverified byte is ever handed out; memory is bounded by `max_chunk_size`. Unsigned
chunks are handed out as their bytes arrive. The decoder verifies framing, the declared decoded
length and signatures; checking a trailer's checksum value is the caller's job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple

from appliance.s3.errors import S3Error
from appliance.s3.sigv4 import (
    EMPTY_SHA256,
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    sign_string,
    signature_mismatch,
    signatures_equal,
)

if TYPE_CHECKING:
    from appliance.s3.sigv4 import AuthResult

TRAILER_SIGNATURE = "x-amz-trailer-signature"
# A chunk header is a hex size and one signature: far below this. Bounding it bounds the buffer.
MAX_LINE = 4096
MAX_TRAILER_BYTES = 16 * 1024


class Data(NamedTuple):
    data: bytes


class Trailers(NamedTuple):
    headers: dict[str, str]


@dataclass(frozen=True)
class EndOfBody:
    """The body ended; its framing, length, trailers and signatures all verified."""


class NeedData:
    """The type of the `NEED_DATA` sentinel."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()

Event = Data | Trailers | EndOfBody | NeedData

_HEADER, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


def _malformed(detail: str) -> S3Error:
    return S3Error("InvalidRequest", f"Malformed aws-chunked body: {detail}")


def _malformed_trailer(detail: str) -> S3Error:
    return S3Error(
        "MalformedTrailerError",
        "The request contained trailing data that was not well-formed or did not conform to our "
        f"published schema: {detail}",
    )


class ChunkedDecoder:
    """Decodes one aws-chunked body for the payload mode the request was signed with."""

    def __init__(
        self,
        payload_mode: str,
        *,
        auth: AuthResult | None,
        decoded_length: int | None,
        trailer_names: Sequence[str] = (),
        max_chunk_size: int = 16 * 1024 * 1024,
    ) -> None:
        if payload_mode not in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER):
            raise ValueError(f"not an aws-chunked payload mode: {payload_mode!r}")
        self._signed = payload_mode != STREAMING_UNSIGNED_TRAILER
        self._signed_trailer = payload_mode == STREAMING_SIGNED_TRAILER
        if self._signed and (auth is None or not auth.signing_key):
            raise ValueError(f"{payload_mode} needs the SigV4 result of the request")
        self._declared = {name.strip().lower() for name in trailer_names if name.strip()}
        if self._declared and payload_mode == STREAMING_SIGNED:
            raise S3Error("InvalidRequest", f"x-amz-trailer is not allowed with {STREAMING_SIGNED}")
        self._auth = auth
        self._decoded_length = decoded_length
        self._max_chunk_size = max_chunk_size
        self._buf = bytearray()
        self._scanned = 0
        self._eof = False
        self._state = _HEADER
        self._error: S3Error | None = None
        self._total = 0
        self._remaining = 0
        self._chunk_signature = ""
        self._chunk_hash = hashlib.sha256()
        self._chunk_parts: list[bytes] = []
        self._previous_signature = auth.signature if auth else ""
        self._trailers: dict[str, str] = {}
        self._trailer_signature: str | None = None
        self._trailer_bytes = 0

    def receive_data(self, data: bytes) -> None:
        """Add received body bytes; b"" says the client closed the body."""
        if self._eof:
            raise RuntimeError("receive_data() after the end of the body was signalled")
        if data:
            self._buf += data
        else:
            self._eof = True

    def next_event(self) -> Event:
        """The next event, or `NEED_DATA` when the buffered bytes are used up."""
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except S3Error as exc:
            self._error = exc
            raise

    def _next(self) -> Event:
        while True:
            if self._state == _HEADER:
                line = self._read_line()
                if line is None:
                    return self._need_data()
                self._start_chunk(line)
            elif self._state == _DATA:
                if not self._buf:
                    return self._need_data()
                piece = self._take(min(self._remaining, len(self._buf)))
                self._remaining -= len(piece)
                if self._remaining == 0:
                    self._state = _DATA_END
                if not self._signed:
                    return Data(piece)
                self._chunk_hash.update(piece)
                self._chunk_parts.append(piece)
            elif self._state == _DATA_END:
                if len(self._buf) < 2:
                    return self._need_data()
                if self._take(2) != b"\r\n":
                    raise _malformed("chunk data is not followed by CRLF")
                self._state = _HEADER
                if self._signed:
                    self._verify_chunk()
                    data = b"".join(self._chunk_parts)
                    self._chunk_parts = []
                    return Data(data)
            elif self._state == _TRAILER:
                line = self._read_line()
                if line is None:
                    return self._need_data()
                if line:
                    self._add_trailer(line)
                    continue
                self._finish()
                self._state = _DONE
                if self._trailers:
                    return Trailers(dict(self._trailers))
            else:
                if self._buf:
                    raise _malformed("data after the final chunk")
                return EndOfBody()

    def _need_data(self) -> NeedData:
        if self._eof:
            raise S3Error("IncompleteBody", "The request body ended before its final chunk.")
        return NEED_DATA

    def _take(self, n: int) -> bytes:
        if n == len(self._buf):
            piece = bytes(self._buf)
            self._buf.clear()
        else:
            piece = bytes(self._buf[:n])
            del self._buf[:n]
        return piece

    def _read_line(self) -> bytes | None:
        end = self._buf.find(b"\r\n", self._scanned)
        if end < 0:
            # The CRLF may straddle two receives, so the next search starts one byte back.
            self._scanned = max(len(self._buf) - 1, 0)
            if len(self._buf) > MAX_LINE:
                raise _malformed("line too long")
            return None
        self._scanned = 0
        if end > MAX_LINE:
            raise _malformed("line too long")
        line = self._take(end)
        del self._buf[:2]
        return line

    def _start_chunk(self, line: bytes) -> None:
        size_text, *extensions = line.split(b";")
        if not size_text or len(size_text) > 16 or size_text.strip(b"0123456789abcdefABCDEF"):
            raise _malformed(f"bad chunk size {size_text[:32]!r}")
        size = int(size_text, 16)
        if size > self._max_chunk_size:
            raise _malformed(f"chunk of {size} bytes exceeds the limit of {self._max_chunk_size}")
        if self._decoded_length is not None and self._total + size > self._decoded_length:
            raise S3Error("IncompleteBody", "The request body is longer than x-amz-decoded-content-length.")
        self._total += size
        if self._signed:
            signatures = [
                value.strip() for name, _, value in (ext.partition(b"=") for ext in extensions)
                if name.strip() == b"chunk-signature"
            ]
            if len(signatures) != 1:
                raise _malformed("a signed chunk needs exactly one chunk-signature")
            self._chunk_signature = signatures[0].decode("ascii", "replace")
            self._chunk_hash = hashlib.sha256()
        if size:
            self._remaining = size
            self._state = _DATA
            return
        if self._signed:
            self._verify_chunk()
        if self._decoded_length is not None and self._total != self._decoded_length:
            raise S3Error("IncompleteBody", "The request body is shorter than x-amz-decoded-content-length.")
        self._state = _TRAILER

    def _verify_chunk(self) -> None:
        assert self._auth is not None
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                self._auth.amz_date,
                self._auth.scope,
                self._previous_signature,
                EMPTY_SHA256,
                self._chunk_hash.hexdigest(),
            ]
        )
        expected = sign_string(self._auth.signing_key, string_to_sign)
        if not signatures_equal(expected, self._chunk_signature):
            raise signature_mismatch(self._auth.access_key, string_to_sign, self._chunk_signature)
        self._previous_signature = expected

    def _add_trailer(self, line: bytes) -> None:
        self._trailer_bytes += len(line) + 2
        if self._trailer_bytes > MAX_TRAILER_BYTES:
            raise _malformed_trailer("the trailers are too large")
        if self._trailer_signature is not None:
            raise _malformed_trailer(f"a trailer follows {TRAILER_SIGNATURE}")
        name_bytes, sep, value_bytes = line.partition(b":")
        try:
            name = name_bytes.decode("ascii").strip().lower()
            value = value_bytes.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise _malformed_trailer("a trailer is not text") from None
        if not sep or not name:
            raise _malformed_trailer("a trailer line is not name:value")
        if name == TRAILER_SIGNATURE and self._signed_trailer:
            self._trailer_signature = value
            return
        if name not in self._declared:
            raise S3Error("InvalidRequest", f"The trailer {name} was not declared in x-amz-trailer.")
        if name in self._trailers:
            raise _malformed_trailer(f"the trailer {name} appears twice")
        self._trailers[name] = value

    def _finish(self) -> None:
        missing = sorted(self._declared - self._trailers.keys())
        if missing:
            raise _malformed_trailer(f"the declared trailer {missing[0]} is missing")
        if not self._signed_trailer:
            return
        assert self._auth is not None
        if self._trailer_signature is None:
            raise _malformed_trailer(f"{TRAILER_SIGNATURE} is missing")
        # Trailers are signed like canonical headers: sorted by name, values with whitespace collapsed.
        canonical = "".join(
            f"{name}:{' '.join(value.split())}\n" for name, value in sorted(self._trailers.items())
        ).encode()
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-TRAILER",
                self._auth.amz_date,
                self._auth.scope,
                self._previous_signature,
                hashlib.sha256(canonical).hexdigest(),
            ]
        )
        expected = sign_string(self._auth.signing_key, string_to_sign)
        if not signatures_equal(expected, self._trailer_signature):
            raise signature_mismatch(self._auth.access_key, string_to_sign, self._trailer_signature)

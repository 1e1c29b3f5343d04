"""The aws-chunked decoder: AWS's example, botocore bodies, every split point, and every failure."""

from __future__ import annotations

import hashlib
import hmac
import io
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.httpchecksum import (
    AwsChunkedWrapper,
    Crc32Checksum,
    CrtCrc32cChecksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)

from appliance.s3 import checksums, sigv4
from appliance.s3.chunked import NEED_DATA, ChunkedDecoder, Data, EndOfBody, Event, Trailers
from appliance.s3.errors import S3Error

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
EMPTY = hashlib.sha256(b"").hexdigest()

# "Signature Calculations for the Authorization Header: Transferring Payload in Multiple Chunks".
SEED_HEADERS = {
    "host": "s3.amazonaws.com",
    "x-amz-date": "20130524T000000Z",
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
    "x-amz-content-sha256": SIGNED,
    "content-encoding": "aws-chunked",
    "x-amz-decoded-content-length": "66560",
    "content-length": "66824",
    "authorization": (
        f"AWS4-HMAC-SHA256 Credential={AK}/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;"
        "content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,"
        "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    ),
}
AWS_BODY = (
    b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n"
    + b"a" * 65536 + b"\r\n"
    + b"400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n"
    + b"a" * 1024 + b"\r\n"
    + b"0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n"
)


def seed_auth() -> sigv4.AuthResult:
    result = sigv4.authenticate("PUT", "/examplebucket/chunkObject.txt", "", SEED_HEADERS, {AK: SK}.get,
                                now=datetime(2013, 5, 24, tzinfo=UTC))
    assert result is not None
    return result


AUTH = seed_auth()


def _sign(auth: sigv4.AuthResult, *lines: str) -> str:
    string_to_sign = "\n".join(lines)
    return hmac.new(auth.signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def encode_signed(chunks: Sequence[bytes], trailers: dict[str, str] | None = None,
                  auth: sigv4.AuthResult = AUTH) -> bytes:
    """An independent encoder written from the AWS documentation (checked against AWS's example below)."""
    previous = auth.signature
    out = []
    for data in [*chunks, b""]:
        previous = _sign(auth, "AWS4-HMAC-SHA256-PAYLOAD", auth.amz_date, auth.scope, previous, EMPTY,
                         hashlib.sha256(data).hexdigest())
        out.append(b"%x;chunk-signature=%s\r\n" % (len(data), previous.encode()) + data + (b"\r\n" if data else b""))
    if trailers is None:
        out.append(b"\r\n")
    else:
        canonical = "".join(f"{name}:{value}\n" for name, value in trailers.items())
        signature = _sign(auth, "AWS4-HMAC-SHA256-TRAILER", auth.amz_date, auth.scope, previous,
                          hashlib.sha256(canonical.encode()).hexdigest())
        out.extend(f"{name}:{value}\r\n".encode() for name, value in trailers.items())
        out.append(f"x-amz-trailer-signature:{signature}\r\n\r\n".encode())
    return b"".join(out)


def encode_unsigned(chunks: Sequence[bytes], trailers: dict[str, str] | None = None) -> bytes:
    out = [b"%x\r\n%s\r\n" % (len(data), data) for data in chunks]
    out.append(b"0\r\n" + b"".join(f"{n}:{v}\r\n".encode() for n, v in (trailers or {}).items()) + b"\r\n")
    return b"".join(out)


def decode(mode: str, pieces: Iterable[bytes], *, decoded_length: int | None = None,
           trailer_names: Sequence[str] = (), auth: sigv4.AuthResult | None = AUTH,
           max_chunk_size: int = 16 * 1024 * 1024) -> list[Event]:
    """Feed `pieces` (then EOF) and collect the events; bytes after the end must raise too."""
    decoder = ChunkedDecoder(mode, auth=auth, decoded_length=decoded_length, trailer_names=trailer_names,
                             max_chunk_size=max_chunk_size)
    events: list[Event] = []
    for piece in [*(p for p in pieces if p), b""]:
        decoder.receive_data(piece)
        while not (events and isinstance(events[-1], EndOfBody)):
            event = decoder.next_event()
            if event is NEED_DATA:
                break
            events.append(event)
        if events and isinstance(events[-1], EndOfBody):
            assert decoder.next_event() == EndOfBody()
    return events


def merged(events: list[Event]) -> list[Event]:
    """Events with adjacent Data joined: unsigned data may arrive in any slicing."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, Data) and out and isinstance(out[-1], Data):
            out[-1] = Data(out[-1].data + event.data)
        else:
            out.append(event)
    return out


def test_aws_example_is_decoded() -> None:
    assert len(AWS_BODY) == int(SEED_HEADERS["content-length"])
    events = decode(SIGNED, [AWS_BODY], decoded_length=66560)
    assert events == [Data(b"a" * 65536), Data(b"a" * 1024), EndOfBody()]


# "Signature Calculations for the Authorization Header: Including Trailing Headers (Chunked Upload)".
TRAILER_HEADERS = {
    "host": "s3.amazonaws.com",
    "x-amz-date": "20130524T000000Z",
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
    "x-amz-content-sha256": SIGNED_TRAILER,
    "content-encoding": "aws-chunked",
    "x-amz-decoded-content-length": "66560",
    "x-amz-trailer": "x-amz-checksum-crc32c",
    "authorization": (
        f"AWS4-HMAC-SHA256 Credential={AK}/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;host;"
        "x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer,"
        "Signature=106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
    ),
}
AWS_TRAILER_BODY = (
    b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n"
    + b"a" * 65536 + b"\r\n"
    + b"400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n"
    + b"a" * 1024 + b"\r\n"
    + b"0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n"
    + b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
    + b"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n"
)


def test_aws_trailer_example_is_decoded() -> None:
    auth = sigv4.authenticate("PUT", "/examplebucket/chunkObject.txt", "", TRAILER_HEADERS, {AK: SK}.get,
                              now=datetime(2013, 5, 24, tzinfo=UTC))
    assert auth is not None
    events = decode(SIGNED_TRAILER, [AWS_TRAILER_BODY], auth=auth, decoded_length=66560,
                    trailer_names=["x-amz-checksum-crc32c"])
    assert events == [Data(b"a" * 65536), Data(b"a" * 1024), Trailers({"x-amz-checksum-crc32c": "sOO8/Q=="}),
                      EndOfBody()]
    assert encode_signed([b"a" * 65536, b"a" * 1024], {"x-amz-checksum-crc32c": "sOO8/Q=="}, auth) == AWS_TRAILER_BODY


def test_test_encoder_reproduces_the_aws_example() -> None:
    assert encode_signed([b"a" * 65536, b"a" * 1024]) == AWS_BODY


def test_aws_example_one_byte_at_a_time() -> None:
    pieces = [AWS_BODY[i:i + 1] for i in range(len(AWS_BODY))]
    assert decode(SIGNED, pieces, decoded_length=66560) == [Data(b"a" * 65536), Data(b"a" * 1024), EndOfBody()]


def _interesting_offsets(body: bytes) -> list[int]:
    """Every offset around the chunk boundaries, plus a sparse sample of the rest."""
    boundaries = [0, 85, 85 + 65536, 85 + 65538, 85 + 65538 + 84, 85 + 65538 + 84 + 1026, len(body)]
    near = {o for b in boundaries for o in range(b - 90, b + 90) if 0 <= o <= len(body)}
    return sorted(near | set(range(0, len(body), 1009)))


def test_aws_example_in_two_pieces() -> None:
    expected = [Data(b"a" * 65536), Data(b"a" * 1024), EndOfBody()]
    for offset in _interesting_offsets(AWS_BODY):
        assert decode(SIGNED, [AWS_BODY[:offset], AWS_BODY[offset:]], decoded_length=66560) == expected, offset


TRAILER = {"x-amz-checksum-crc32": "NSRBwg=="}
SMALL = [b"hello world", b"x" * 37, b"\r\n0;\r\n"]
SPLIT_BODIES = [
    ("signed", SIGNED, encode_signed(SMALL), ()),
    ("signed-trailer", SIGNED_TRAILER, encode_signed(SMALL, TRAILER), tuple(TRAILER)),
    ("unsigned-trailer", UNSIGNED_TRAILER, encode_unsigned(SMALL, TRAILER), tuple(TRAILER)),
    ("unsigned-no-trailer", UNSIGNED_TRAILER, encode_unsigned(SMALL), ()),
    ("unsigned-extensions", UNSIGNED_TRAILER, b"b;name=value;x\r\nhello world\r\n0;ext\r\n\r\n", ()),
]


@pytest.mark.parametrize(("mode", "body", "names"), [r[1:] for r in SPLIT_BODIES], ids=[r[0] for r in SPLIT_BODIES])
def test_every_split_point_gives_the_same_events(mode: str, body: bytes, names: tuple[str, ...]) -> None:
    whole = decode(mode, [body], trailer_names=names)
    assert isinstance(whole[-1], EndOfBody)
    if mode in (SIGNED, SIGNED_TRAILER):
        assert [e.data for e in whole if isinstance(e, Data)] == SMALL
    assert merged(decode(mode, [body[i:i + 1] for i in range(len(body))], trailer_names=names)) == merged(whole)
    for offset in range(len(body) + 1):
        assert merged(decode(mode, [body[:offset], body[offset:]], trailer_names=names)) == merged(whole), offset


def test_trailers_are_reported() -> None:
    events = decode(SIGNED_TRAILER, [encode_signed(SMALL, TRAILER)], trailer_names=["X-Amz-Checksum-CRC32 "])
    assert events[-2:] == [Trailers(TRAILER), EndOfBody()]


def test_unsigned_bytes_are_handed_out_as_they_arrive() -> None:
    decoder = ChunkedDecoder(UNSIGNED_TRAILER, auth=None, decoded_length=None)
    decoder.receive_data(b"64\r\n" + b"z" * 10)
    assert decoder.next_event() == Data(b"z" * 10)
    assert decoder.next_event() is NEED_DATA


def test_signed_bytes_are_held_until_verified() -> None:
    body = encode_signed([b"first", b"second"])
    second_end = body.index(b"second") + len(b"second")
    decoder = ChunkedDecoder(SIGNED, auth=AUTH, decoded_length=None)
    decoder.receive_data(body[:second_end + 1])
    assert decoder.next_event() == Data(b"first")
    # All of "second" has arrived, but not the CRLF that ends it, so it is not verified yet.
    assert decoder.next_event() is NEED_DATA


def test_a_forged_chunk_is_never_handed_out() -> None:
    body = encode_signed([b"first", b"second"]).replace(b"second", b"SECOND")
    decoder = ChunkedDecoder(SIGNED, auth=AUTH, decoded_length=None)
    decoder.receive_data(body)
    assert decoder.next_event() == Data(b"first")
    with pytest.raises(S3Error) as info:
        decoder.next_event()
    assert info.value.code == "SignatureDoesNotMatch"
    # The error is sticky: the decoder never resumes after it.
    with pytest.raises(S3Error):
        decoder.next_event()


# --- botocore-built bodies -----------------------------------------------------------------------

BOTOCORE_CHECKSUMS = [
    ("CRC32", Crc32Checksum),
    ("CRC32C", CrtCrc32cChecksum),
    ("CRC64NVME", CrtCrc64NvmeChecksum),
    ("SHA1", Sha1Checksum),
    ("SHA256", Sha256Checksum),
]
PAYLOADS = [b"", b"q", bytes(range(256)) * 40, b"\r\n0\r\n\r\n" * 3000]


@pytest.mark.parametrize(("algorithm", "checksum_cls"), BOTOCORE_CHECKSUMS)
@pytest.mark.parametrize("payload", PAYLOADS, ids=[f"{len(p)}B" for p in PAYLOADS])
@pytest.mark.parametrize("chunk_size", [1, 1000, 1024 * 1024])
def test_botocore_aws_chunked_wrapper(algorithm: str, checksum_cls: Any, payload: bytes, chunk_size: int) -> None:
    if chunk_size == 1 and len(payload) > 300:
        payload = payload[:300]
    name = checksums.header_name(algorithm)
    body = AwsChunkedWrapper(io.BytesIO(payload), checksum_cls=checksum_cls, checksum_name=name,
                             chunk_size=chunk_size).read()
    events = decode(UNSIGNED_TRAILER, [body[i:i + 4096] for i in range(0, len(body), 4096)],
                    decoded_length=len(payload), trailer_names=[name])
    data = b"".join(e.data for e in events if isinstance(e, Data))
    assert data == payload
    trailers = next(e for e in events if isinstance(e, Trailers))
    ours = checksums.Checksum(algorithm)
    ours.update(data)
    assert trailers.headers == {name: ours.b64()}


class Captured(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def _raise_captured(request: Any, **_: Any) -> None:
    raise Captured(request)


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_botocore_client_put_object_end_to_end(algorithm: str) -> None:
    secrets = {"AKIDCHUNK": "chunk/secret"}
    s3 = boto3.client("s3", endpoint_url="https://s3.example.test", region_name="us-east-1",
                      aws_access_key_id="AKIDCHUNK", aws_secret_access_key=secrets["AKIDCHUNK"],
                      config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                    retries={"max_attempts": 1}))
    s3.meta.events.register("before-send.s3", _raise_captured)
    payload = bytes(range(256)) * 5000
    with pytest.raises(Captured) as info:
        s3.put_object(Bucket="bkt", Key="k", Body=payload, ChecksumAlgorithm=algorithm)
    request = info.value.request
    headers = {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    url = urlsplit(request.url)
    headers.setdefault("host", url.netloc)
    auth = sigv4.authenticate(request.method, url.path, url.query, headers, secrets.get)
    assert auth is not None and auth.payload_mode == UNSIGNED_TRAILER
    body = request.body.read()
    events = decode(auth.payload_mode, [body[i:i + 65536] for i in range(0, len(body), 65536)], auth=auth,
                    decoded_length=int(headers["x-amz-decoded-content-length"]),
                    trailer_names=headers["x-amz-trailer"].split(","))
    assert b"".join(e.data for e in events if isinstance(e, Data)) == payload
    expected = checksums.Checksum(algorithm)
    expected.update(payload)
    assert next(e for e in events if isinstance(e, Trailers)).headers == {checksums.header_name(algorithm):
                                                                          expected.b64()}


# --- failures ------------------------------------------------------------------------------------

GOOD_SIGNED = encode_signed([b"hello", b"world"])
GOOD_SIGNED_TRAILER = encode_signed([b"hello", b"world"], TRAILER)
GOOD_UNSIGNED = encode_unsigned([b"hello", b"world"], TRAILER)
_lines = GOOD_SIGNED.split(b"\r\n")


def _flip_signature(body: bytes, index: int) -> bytes:
    at = 0
    for _ in range(index + 1):
        at = body.index(b"chunk-signature=", at) + len(b"chunk-signature=")
    flipped = b"0" if body[at:at + 1] != b"0" else b"1"
    return body[:at] + flipped + body[at + 1:]


# id, mode, body, decoded length, declared trailers, code
FAILURES: list[tuple[str, str, bytes, int | None, tuple[str, ...], str]] = [
    ("first-signature", SIGNED, _flip_signature(GOOD_SIGNED, 0), None, (), "SignatureDoesNotMatch"),
    ("second-signature", SIGNED, _flip_signature(GOOD_SIGNED, 1), None, (), "SignatureDoesNotMatch"),
    ("final-signature", SIGNED, _flip_signature(GOOD_SIGNED, 2), None, (), "SignatureDoesNotMatch"),
    ("tampered-data", SIGNED, GOOD_SIGNED.replace(b"world", b"World"), None, (), "SignatureDoesNotMatch"),
    ("reordered", SIGNED, b"\r\n".join([_lines[2], _lines[3], _lines[0], _lines[1], *_lines[4:]]), None, (),
     "SignatureDoesNotMatch"),
    ("other-seed", SIGNED, encode_signed([b"hello"], auth=sigv4.AuthResult(
        AK, SIGNED, False, "0" * 64, AUTH.signing_key, AUTH.amz_date, AUTH.scope)), None, (), "SignatureDoesNotMatch"),
    ("no-signature", SIGNED, b"5\r\nhello\r\n0\r\n\r\n", None, (), "InvalidRequest"),
    ("two-signatures", SIGNED, GOOD_SIGNED.replace(b";chunk", b";chunk-signature=ab;chunk", 1), None, (),
     "InvalidRequest"),
    ("truncated-signed", SIGNED, GOOD_SIGNED[:-10], None, (), "IncompleteBody"),
    ("truncated-unsigned", UNSIGNED_TRAILER, GOOD_UNSIGNED[:12], None, tuple(TRAILER), "IncompleteBody"),
    ("truncated-before-final-crlf", UNSIGNED_TRAILER, GOOD_UNSIGNED[:-2], None, tuple(TRAILER), "IncompleteBody"),
    ("empty", UNSIGNED_TRAILER, b"", None, (), "IncompleteBody"),
    ("bad-hex", UNSIGNED_TRAILER, b"zz\r\nhello\r\n0\r\n\r\n", None, (), "InvalidRequest"),
    ("negative-hex", UNSIGNED_TRAILER, b"-5\r\nhello\r\n0\r\n\r\n", None, (), "InvalidRequest"),
    ("spaced-hex", UNSIGNED_TRAILER, b" 5\r\nhello\r\n0\r\n\r\n", None, (), "InvalidRequest"),
    ("empty-size", UNSIGNED_TRAILER, b";x\r\nhello\r\n0\r\n\r\n", None, (), "InvalidRequest"),
    ("no-crlf-after-data", UNSIGNED_TRAILER, b"5\r\nhelloXX0\r\n\r\n", None, (), "InvalidRequest"),
    ("bare-lf", UNSIGNED_TRAILER, b"5\nhello\n0\n\n", None, (), "IncompleteBody"),
    ("chunk-too-large", UNSIGNED_TRAILER, b"1000001\r\n", None, (), "InvalidRequest"),
    ("line-too-long", UNSIGNED_TRAILER, b"5" + b";x" * 5000, None, (), "InvalidRequest"),
    ("longer-than-declared", UNSIGNED_TRAILER, encode_unsigned([b"hello", b"world"]), 9, (), "IncompleteBody"),
    ("shorter-than-declared", UNSIGNED_TRAILER, encode_unsigned([b"hello", b"world"]), 11, (), "IncompleteBody"),
    ("signed-shorter", SIGNED, GOOD_SIGNED, 11, (), "IncompleteBody"),
    ("undeclared-trailer", UNSIGNED_TRAILER, GOOD_UNSIGNED, None, (), "InvalidRequest"),
    ("missing-trailer", UNSIGNED_TRAILER, encode_unsigned([b"hello"]), None, tuple(TRAILER), "MalformedTrailerError"),
    ("trailer-not-name-value", UNSIGNED_TRAILER, b"0\r\nnonsense\r\n\r\n", None, ("nonsense",),
     "MalformedTrailerError"),
    ("duplicate-trailer", UNSIGNED_TRAILER, encode_unsigned([], TRAILER).replace(b"\r\n\r\n", b"\r\n" + (
        b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n")), None, tuple(TRAILER), "MalformedTrailerError"),
    ("trailer-in-signed", SIGNED, GOOD_SIGNED[:-2] + b"x-amz-checksum-crc32:NSRBwg==\r\n\r\n", None, (),
     "InvalidRequest"),
    ("trailer-signature", SIGNED_TRAILER, GOOD_SIGNED_TRAILER.replace(b"signature:", b"signature:0"), None,
     tuple(TRAILER), "SignatureDoesNotMatch"),
    ("trailer-value", SIGNED_TRAILER, GOOD_SIGNED_TRAILER.replace(b"NSRBwg==", b"AAAAAA=="), None, tuple(TRAILER),
     "SignatureDoesNotMatch"),
    ("trailer-signature-missing", SIGNED_TRAILER,
     re.sub(rb"x-amz-trailer-signature:[0-9a-f]{64}\r\n", b"", GOOD_SIGNED_TRAILER), None, tuple(TRAILER),
     "MalformedTrailerError"),
    ("trailer-after-signature", SIGNED_TRAILER, GOOD_SIGNED_TRAILER[:-2] + b"x-amz-checksum-crc32:x\r\n\r\n",
     None, tuple(TRAILER), "MalformedTrailerError"),
    ("data-after-end", UNSIGNED_TRAILER, encode_unsigned([b"hello"]) + b"junk", None, (), "InvalidRequest"),
]


@pytest.mark.parametrize(("mode", "body", "length", "names", "code"), [f[1:] for f in FAILURES],
                         ids=[f[0] for f in FAILURES])
def test_failures(mode: str, body: bytes, length: int | None, names: tuple[str, ...], code: str) -> None:
    for pieces in ([body], [body[i:i + 1] for i in range(len(body))]):
        with pytest.raises(S3Error) as info:
            decode(mode, pieces, decoded_length=length, trailer_names=names, max_chunk_size=1 << 24)
        assert info.value.code == code


def test_constructor_rejects_misuse() -> None:
    with pytest.raises(ValueError):
        ChunkedDecoder("UNSIGNED-PAYLOAD", auth=None, decoded_length=None)
    with pytest.raises(ValueError):
        ChunkedDecoder(SIGNED, auth=None, decoded_length=None)
    with pytest.raises(S3Error) as info:
        ChunkedDecoder(SIGNED, auth=AUTH, decoded_length=None, trailer_names=["x-amz-checksum-crc32"])
    assert info.value.code == "InvalidRequest"
    decoder = ChunkedDecoder(UNSIGNED_TRAILER, auth=None, decoded_length=None)
    decoder.receive_data(b"")
    with pytest.raises(RuntimeError):
        decoder.receive_data(b"more")


def test_end_of_body_repeats() -> None:
    decoder = ChunkedDecoder(UNSIGNED_TRAILER, auth=None, decoded_length=0)
    decoder.receive_data(b"0\r\n\r\n")
    assert decoder.next_event() == EndOfBody()
    assert decoder.next_event() == EndOfBody()

"""Bad input against the real server: each request gets AWS's error code and leaves storage unchanged.

Every case runs against a bucket that already holds an object (`victim`) and a multipart upload of
that key with one part, so a bad request has something to damage. "Unchanged" is checked on the
drives themselves: every file holding the bucket's objects, uploads in progress and metadata has
the same bytes afterwards, and the drives' temporary areas drain. Requests a real client cannot
send (broken XML, broken aws-chunked framing, oversized headers) go through `rawhttp`, signed by
botocore's own signer; the rest use boto3.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.functional.payloads import body, error_of
from tests.functional.rawhttp import RawResponse, encode_path, signed_request
from tests.harness import CairnServer, S3Client, wait_until

VICTIM = "victim"
ORIGINAL = body(70_000, seed="original")
NEW = body(70_000, seed="new")
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
SYS = ".cairn.sys"


@dataclass(frozen=True)
class Scene:
    server: CairnServer
    s3: S3Client
    bucket: str
    upload_id: str


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def md5_b64(data: bytes) -> str:
    return b64(hashlib.md5(data).digest())


def crc32_b64(data: bytes) -> str:
    return b64(zlib.crc32(data).to_bytes(4, "big"))


def code_of(response: RawResponse) -> tuple[int, str]:
    return response.status, response.error_fields()["Code"]


def aws_chunked(data: bytes, trailer: bytes = b"", *, chunk: int = 8192) -> bytes:
    """`data` in aws-chunked framing with unsigned chunks, the final chunk, then `trailer` lines."""
    out = b"".join(f"{len(data[i : i + chunk]):x}\r\n".encode() + data[i : i + chunk] + b"\r\n"
                   for i in range(0, len(data), chunk))
    return out + b"0\r\n" + trailer + b"\r\n"


def streaming_put(scene: Scene, framed: bytes, decoded_length: int = len(NEW)) -> RawResponse:
    """PUT `victim` with an aws-chunked body announcing a CRC32 trailer (the SDKs' default upload)."""
    headers = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(decoded_length),
               "x-amz-trailer": "x-amz-checksum-crc32"}
    return signed_request(scene.server, "PUT", encode_path(scene.bucket, VICTIM), headers=headers, body=framed,
                          payload_hash=UNSIGNED_TRAILER)


def raw_xml(scene: Scene, method: str, key: str, query: list[tuple[str, str]], document: bytes,
            content_md5: str | None = None) -> tuple[int, str]:
    headers = {"content-md5": content_md5 or md5_b64(document)}
    return code_of(signed_request(scene.server, method, encode_path(scene.bucket, key), query=query,
                                  headers=headers, body=document))


def put_with(scene: Scene, headers: dict[str, str], data: bytes = NEW, key: str = VICTIM) -> tuple[int, str]:
    return code_of(signed_request(scene.server, "PUT", encode_path(scene.bucket, key), headers=headers, body=data))


LONG_KEY = "k" * 1025
Act = Callable[[Scene], tuple[int, str]]
CASES: list[tuple[str, Act, tuple[int, str]]] = [
    # malformed XML
    ("xml-complete-unclosed", lambda s: raw_xml(
        s, "POST", VICTIM, [("uploadId", s.upload_id)],
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"), (400, "MalformedXML")),
    ("xml-complete-not-xml", lambda s: raw_xml(
        s, "POST", VICTIM, [("uploadId", s.upload_id)], b"this is not xml"), (400, "MalformedXML")),
    ("xml-complete-no-parts", lambda s: raw_xml(
        s, "POST", VICTIM, [("uploadId", s.upload_id)], b"<CompleteMultipartUpload></CompleteMultipartUpload>"),
     (400, "MalformedXML")),
    ("xml-delete-objects-unclosed", lambda s: raw_xml(
        s, "POST", "", [("delete", "")], b"<Delete><Object><Key>victim</Key></Object>"), (400, "MalformedXML")),
    ("xml-tagging-unclosed", lambda s: raw_xml(
        s, "PUT", VICTIM, [("tagging", "")], b"<Tagging><TagSet><Tag><Key>a</Key>"), (400, "MalformedXML")),
    # Content-MD5
    ("md5-wrong-put", lambda s: error_of(lambda: s.s3.put_object(
        Bucket=s.bucket, Key=VICTIM, Body=NEW, ContentMD5=md5_b64(ORIGINAL))), (400, "BadDigest")),
    ("md5-not-base64-put", lambda s: error_of(lambda: s.s3.put_object(
        Bucket=s.bucket, Key=VICTIM, Body=NEW, ContentMD5="not*base64")), (400, "InvalidDigest")),
    ("md5-wrong-length-put", lambda s: error_of(lambda: s.s3.put_object(
        Bucket=s.bucket, Key=VICTIM, Body=NEW, ContentMD5=b64(b"short"))), (400, "InvalidDigest")),
    ("md5-wrong-upload-part", lambda s: error_of(lambda: s.s3.upload_part(
        Bucket=s.bucket, Key=VICTIM, UploadId=s.upload_id, PartNumber=1, Body=NEW,
        ContentMD5=md5_b64(ORIGINAL))), (400, "BadDigest")),
    ("md5-wrong-delete-objects", lambda s: raw_xml(
        s, "POST", "", [("delete", "")], b"<Delete><Object><Key>victim</Key></Object></Delete>",
        content_md5=md5_b64(b"other")), (400, "BadDigest")),
    # checksums, in a header and in a trailer
    ("checksum-header-wrong", lambda s: put_with(
        s, {"x-amz-checksum-sha256": b64(hashlib.sha256(ORIGINAL).digest())}), (400, "BadDigest")),
    ("checksum-trailer-wrong", lambda s: code_of(streaming_put(
        s, aws_chunked(NEW, f"x-amz-checksum-crc32:{crc32_b64(ORIGINAL)}\r\n".encode()))), (400, "BadDigest")),
    ("checksum-trailer-no-colon", lambda s: code_of(streaming_put(
        s, aws_chunked(NEW, f"x-amz-checksum-crc32 {crc32_b64(NEW)}\r\n".encode()))),
     (400, "MalformedTrailerError")),
    ("checksum-trailer-missing", lambda s: code_of(streaming_put(s, aws_chunked(NEW))),
     (400, "MalformedTrailerError")),
    # truncated aws-chunked bodies (Content-Length matches what is sent: the framing is cut, not the stream)
    ("chunked-no-final-chunk", lambda s: code_of(streaming_put(
        s, aws_chunked(NEW, f"x-amz-checksum-crc32:{crc32_b64(NEW)}\r\n".encode()).rsplit(b"0\r\n", 1)[0])),
     (400, "IncompleteBody")),
    ("chunked-cut-mid-chunk", lambda s: code_of(streaming_put(s, aws_chunked(NEW)[:20_000])), (400, "IncompleteBody")),
    ("chunked-shorter-than-decoded-length", lambda s: code_of(streaming_put(
        s, aws_chunked(NEW[:1000], f"x-amz-checksum-crc32:{crc32_b64(NEW[:1000])}\r\n".encode()))),
     (400, "IncompleteBody")),
    # oversized headers
    ("header-section-too-large", lambda s: put_with(s, {"x-padding": "p" * 9000}),
     (400, "RequestHeaderSectionTooLarge")),
    ("user-metadata-too-large", lambda s: error_of(lambda: s.s3.put_object(
        Bucket=s.bucket, Key=VICTIM, Body=NEW, Metadata={"big": "m" * 2100})), (400, "MetadataTooLarge")),
    # keys over 1024 bytes
    ("key-too-long-put", lambda s: error_of(lambda: s.s3.put_object(Bucket=s.bucket, Key=LONG_KEY, Body=NEW)),
     (400, "KeyTooLongError")),
    ("key-too-long-utf8-put", lambda s: error_of(lambda: s.s3.put_object(
        Bucket=s.bucket, Key="\u00e9" * 513, Body=NEW)), (400, "KeyTooLongError")),
    ("key-too-long-copy", lambda s: error_of(lambda: s.s3.copy_object(
        Bucket=s.bucket, Key=LONG_KEY, CopySource={"Bucket": s.bucket, "Key": VICTIM})), (400, "KeyTooLongError")),
    ("key-too-long-create-multipart", lambda s: error_of(lambda: s.s3.create_multipart_upload(
        Bucket=s.bucket, Key=LONG_KEY)), (400, "KeyTooLongError")),
]


def storage_state(server: CairnServer, bucket: str) -> dict[str, str]:
    """sha256 of every file that holds the bucket's objects, its uploads in progress and its metadata."""
    state = {}
    for drive in server.drives:
        for root in (drive / bucket, drive / SYS / "multipart", drive / SYS / "buckets"):
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                state[str(path.relative_to(drive.parent))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def temp_areas_empty(drives: list[Path]) -> bool:
    return not any(any((drive / SYS / "tmp").iterdir()) for drive in drives)


@pytest.fixture
def scene(server: CairnServer, s3: S3Client, bucket: str) -> Scene:
    s3.put_object(Bucket=bucket, Key=VICTIM, Body=ORIGINAL, Metadata={"kept": "yes"}, Tagging="a=1")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=VICTIM)["UploadId"]
    s3.upload_part(Bucket=bucket, Key=VICTIM, UploadId=upload_id, PartNumber=1, Body=ORIGINAL)
    return Scene(server, s3, bucket, upload_id)


def test_the_good_forms_of_the_raw_requests_succeed(scene: Scene) -> None:
    """The helpers build valid requests: only the deliberate defect makes the cases below fail."""
    good = streaming_put(scene, aws_chunked(NEW, f"x-amz-checksum-crc32:{crc32_b64(NEW)}\r\n".encode()))
    assert good.status == 200, good.body
    assert scene.s3.get_object(Bucket=scene.bucket, Key=VICTIM)["Body"].read() == NEW
    document = b"<Tagging><TagSet><Tag><Key>a</Key><Value>2</Value></Tag></TagSet></Tagging>"
    tagged = signed_request(scene.server, "PUT", encode_path(scene.bucket, VICTIM), query=[("tagging", "")],
                            headers={"content-md5": md5_b64(document)}, body=document)
    assert tagged.status == 200, tagged.body
    ok = signed_request(scene.server, "PUT", encode_path(scene.bucket, "other"),
                        headers={"x-amz-checksum-sha256": b64(hashlib.sha256(b"ok").digest())}, body=b"ok")
    assert ok.status == 200, ok.body


@pytest.mark.parametrize(("act", "expected"), [pytest.param(act, expected, id=name) for name, act, expected in CASES])
def test_bad_input_is_refused_and_changes_nothing(scene: Scene, act: Act, expected: tuple[int, str]) -> None:
    before = storage_state(scene.server, scene.bucket)
    assert act(scene) == expected
    wait_until(lambda: temp_areas_empty(scene.server.drives), 10, message="temporary areas to drain")
    assert storage_state(scene.server, scene.bucket) == before
    got = scene.s3.get_object(Bucket=scene.bucket, Key=VICTIM)
    assert got["Body"].read() == ORIGINAL and got["Metadata"] == {"kept": "yes"}
    parts = scene.s3.list_parts(Bucket=scene.bucket, Key=VICTIM, UploadId=scene.upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, f'"{hashlib.md5(ORIGINAL).hexdigest()}"')]

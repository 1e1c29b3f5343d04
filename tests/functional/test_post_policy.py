"""POST Object: browser-form uploads with a SigV4 POST policy, sent by `requests` to a real server.

The policy and its signature are built here by hand, step by step as the AWS documentation
describes them ("Browser-based uploads using POST", "Calculating a signature"), never with a Cairn
helper; one test also uses boto3's `generate_presigned_post`. Every refused upload must leave the
bucket empty.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.functional.payloads import MiB, body, etag_of
from tests.functional.rawhttp import find_text, local_name
from tests.harness import REGION, CairnServer, S3Client

ALGORITHM = "AWS4-HMAC-SHA256"
FILENAME = "hello.txt"
CONTENT = b"hello from a browser form\n"
BASE_CONDITIONS: list[Any] = [
    ["starts-with", "$key", "uploads/"],
    ["content-length-range", 1, 1024],
    ["starts-with", "$Content-Type", "text/"],
]
BASE_FIELDS = {"key": "uploads/${filename}", "Content-Type": "text/plain"}


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signed_form(
    server: CairnServer, bucket: str, conditions: list[Any], fields: dict[str, str], *,
    expires_in: timedelta = timedelta(hours=1), access_key: str | None = None, secret_key: str | None = None,
) -> dict[str, str]:
    """The form fields of a SigV4 POST upload, per the AWS documentation."""
    now = datetime.now(UTC)
    date_stamp = now.strftime("%Y%m%d")
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    credential = f"{access_key or server.access_key}/{date_stamp}/{REGION}/s3/aws4_request"
    policy = {
        "expiration": (now + expires_in).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "conditions": [
            {"bucket": bucket}, *conditions,
            {"x-amz-algorithm": ALGORITHM}, {"x-amz-credential": credential}, {"x-amz-date": amz_date},
        ],
    }
    encoded = base64.b64encode(json.dumps(policy).encode()).decode()
    key = _hmac(("AWS4" + (secret_key or server.secret_key)).encode(), date_stamp)
    for part in (REGION, "s3", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, encoded.encode(), hashlib.sha256).hexdigest()
    return {**fields, "x-amz-algorithm": ALGORITHM, "x-amz-credential": credential, "x-amz-date": amz_date,
            "policy": encoded, "x-amz-signature": signature}


def upload(server: CairnServer, bucket: str, fields: dict[str, str], content: bytes = CONTENT,
           filename: str = FILENAME) -> requests.Response:
    return requests.post(f"{server.endpoint}/{bucket}", data=fields, files={"file": (filename, content, "text/plain")},
                         allow_redirects=False, timeout=30)


def error_code(response: requests.Response) -> str:
    root = ET.fromstring(response.content)
    assert local_name(root.tag) == "Error", response.text
    return find_text(root, "Code") or ""


def stored_keys(s3: S3Client, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


# --- uploads that succeed -----------------------------------------------------------------------


@pytest.mark.parametrize("status", ["", "200", "201", "204", "299"])
def test_success_action_status(server: CairnServer, s3: S3Client, bucket: str, status: str) -> None:
    extra = {"success_action_status": status} if status else {}
    fields = signed_form(server, bucket, [*BASE_CONDITIONS, *([extra] if extra else [])], {**BASE_FIELDS, **extra})
    response = upload(server, bucket, fields)
    expected = int(status) if status in ("200", "201") else 204
    assert response.status_code == expected, response.text
    assert response.headers["ETag"] == etag_of(CONTENT)
    if expected == 201:
        root = ET.fromstring(response.content)
        assert local_name(root.tag) == "PostResponse"
        assert find_text(root, "Bucket") == bucket and find_text(root, "Key") == f"uploads/{FILENAME}"
        assert find_text(root, "ETag") == etag_of(CONTENT)
        assert (find_text(root, "Location") or "").endswith(f"/{bucket}/uploads/{FILENAME}")
    else:
        assert response.content == b""
    got = s3.get_object(Bucket=bucket, Key=f"uploads/{FILENAME}")
    assert got["Body"].read() == CONTENT and got["ContentType"] == "text/plain"


@pytest.mark.parametrize(("key", "filename", "stored"), [
    ("uploads/${filename}", "report.csv", "uploads/report.csv"),
    ("uploads/${filename}", "C:\\Users\\me\\photo.jpg", "uploads/photo.jpg"),
    ("uploads/fixed-name", "ignored.txt", "uploads/fixed-name"),
    ("uploads/ünïcode ${filename}", "a b.txt", "uploads/ünïcode a b.txt"),
])
def test_key_with_filename(server: CairnServer, s3: S3Client, bucket: str, key: str, filename: str,
                           stored: str) -> None:
    fields = signed_form(server, bucket, BASE_CONDITIONS, {**BASE_FIELDS, "key": key})
    assert upload(server, bucket, fields, filename=filename).status_code == 204
    assert stored_keys(s3, bucket) == [stored]


def test_metadata_tagging_and_acl_fields(server: CairnServer, s3: S3Client, bucket: str) -> None:
    tagging = "<Tagging><TagSet><Tag><Key>team</Key><Value>web</Value></Tag></TagSet></Tagging>"
    extra = {"x-amz-meta-color": "blue", "Cache-Control": "max-age=60", "acl": "public-read", "tagging": tagging}
    fields = signed_form(server, bucket, [*BASE_CONDITIONS, *({k: v} for k, v in extra.items())],
                         {**BASE_FIELDS, **extra, "x-ignore-anything": "not covered, and fine"})
    assert upload(server, bucket, fields).status_code == 204
    head = s3.head_object(Bucket=bucket, Key=f"uploads/{FILENAME}")
    assert head["Metadata"] == {"color": "blue"} and head["CacheControl"] == "max-age=60"
    tags = s3.get_object_tagging(Bucket=bucket, Key=f"uploads/{FILENAME}")["TagSet"]
    assert tags == [{"Key": "team", "Value": "web"}]


def test_success_action_redirect(server: CairnServer, bucket: str) -> None:
    redirect = "https://app.example.com/done?from=form"
    fields = signed_form(server, bucket, [*BASE_CONDITIONS, {"success_action_redirect": redirect}],
                         {**BASE_FIELDS, "success_action_redirect": redirect})
    response = upload(server, bucket, fields)
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert location.netloc == "app.example.com" and location.path == "/done"
    assert parse_qs(location.query) == {"from": ["form"], "bucket": [bucket], "key": [f"uploads/{FILENAME}"],
                                        "etag": [etag_of(CONTENT)]}


def test_large_file_with_delimiter_lookalikes(server: CairnServer, s3: S3Client, bucket: str) -> None:
    # Bytes that start like a delimiter, at the edges of the server's network chunks and inside them.
    content = b"\r\n--" + body(3 * MiB, seed="post") + b"\r\n-" + body(70_000, seed="tail") + b"\r\n"
    conditions = [["starts-with", "$key", "uploads/"], ["content-length-range", 1, 4 * MiB]]
    fields = signed_form(server, bucket, conditions, {"key": "uploads/big"})
    assert upload(server, bucket, fields, content=content).status_code == 204
    assert s3.get_object(Bucket=bucket, Key="uploads/big")["Body"].read() == content


def test_boto3_generate_presigned_post(server: CairnServer, s3: S3Client, bucket: str) -> None:
    post = s3.generate_presigned_post(
        bucket, "presigned/${filename}", Fields={"Content-Type": "text/plain"},
        Conditions=[{"Content-Type": "text/plain"}, ["content-length-range", 1, 100]], ExpiresIn=600,
    )
    response = requests.post(post["url"], data=post["fields"], files={"file": ("note.txt", b"presigned")},
                             timeout=30)
    assert response.status_code == 204, response.text
    assert s3.get_object(Bucket=bucket, Key="presigned/note.txt")["Body"].read() == b"presigned"


# --- uploads that are refused -------------------------------------------------------------------


REFUSED: list[tuple[str, dict[str, Any], int, str]] = [
    # what is wrong, how the form differs, status, code
    ("expired", {"expires_in": timedelta(minutes=-1)}, 403, "AccessDenied"),
    ("wrong secret", {"secret_key": "not-the-secret"}, 403, "SignatureDoesNotMatch"),
    ("unknown access key", {"access_key": "nobody"}, 403, "InvalidAccessKeyId"),
    ("key outside the prefix", {"fields": {"key": "elsewhere/${filename}"}}, 403, "AccessDenied"),
    ("Content-Type not allowed", {"fields": {"Content-Type": "image/png"}}, 403, "AccessDenied"),
    ("field not in the policy", {"fields": {"x-amz-meta-extra": "1"}}, 403, "AccessDenied"),
    ("too large", {"content": b"x" * 1025}, 400, "EntityTooLarge"),
    ("far too large", {"content": b"x" * (512 * 1024)}, 400, "EntityTooLarge"),
    ("empty", {"content": b""}, 400, "EntityTooSmall"),
    ("no key", {"drop": "key"}, 400, "UserKeyMustBeSpecified"),
    ("no signature", {"drop": "x-amz-signature"}, 400, "InvalidArgument"),
]


@pytest.mark.parametrize(("case", "change", "status", "code"), REFUSED, ids=[row[0] for row in REFUSED])
def test_refused_upload(server: CairnServer, s3: S3Client, bucket: str, case: str, change: dict[str, Any],
                        status: int, code: str) -> None:
    signing = {k: v for k, v in change.items() if k in ("expires_in", "access_key", "secret_key")}
    fields = signed_form(server, bucket, BASE_CONDITIONS, {**BASE_FIELDS, **change.get("fields", {})}, **signing)
    fields.pop(change.get("drop", ""), None)
    response = upload(server, bucket, fields, content=change.get("content", CONTENT))
    assert (response.status_code, error_code(response)) == (status, code), response.text
    assert stored_keys(s3, bucket) == []


FORM = "multipart/form-data; boundary=xyz"
MALFORMED: list[tuple[str, str, bytes, int, str]] = [
    # what is wrong, Content-Type, body, status, code
    ("no file part", FORM, b'--xyz\r\nContent-Disposition: form-data; name="key"\r\n\r\nk\r\n--xyz--\r\n',
     400, "IncorrectNumberOfFilesInPostRequest"),
    ("part without a name", FORM, b"--xyz\r\nContent-Disposition: form-data\r\n\r\nk\r\n--xyz--\r\n",
     400, "MalformedPOSTRequest"),
    ("no boundary", "multipart/form-data", b"--xyz--\r\n", 400, "MalformedPOSTRequest"),
    ("not a form", "application/octet-stream", b"data", 412, "PreconditionFailed"),
    ("anonymous form", FORM, b'--xyz\r\nContent-Disposition: form-data; name="key"\r\n\r\nk\r\n'
     b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\ndata\r\n--xyz--\r\n',
     403, "AccessDenied"),
]


@pytest.mark.parametrize(("case", "content_type", "payload", "status", "code"), MALFORMED,
                         ids=[row[0] for row in MALFORMED])
def test_malformed_form(server: CairnServer, s3: S3Client, bucket: str, case: str, content_type: str,
                        payload: bytes, status: int, code: str) -> None:
    response = requests.post(f"{server.endpoint}/{bucket}", data=payload, headers={"Content-Type": content_type},
                             timeout=30)
    assert (response.status_code, error_code(response)) == (status, code), response.text
    assert stored_keys(s3, bucket) == []


def test_form_cut_before_its_closing_boundary(server: CairnServer, s3: S3Client, bucket: str) -> None:
    fields = signed_form(server, bucket, BASE_CONDITIONS, BASE_FIELDS)
    prepared = requests.Request("POST", f"{server.endpoint}/{bucket}", data=fields,
                                files={"file": (FILENAME, CONTENT, "text/plain")}).prepare()
    assert isinstance(prepared.body, bytes)
    cut = prepared.body[: prepared.body.rindex(b"\r\n--")]
    prepared.body = cut
    prepared.headers["Content-Length"] = str(len(cut))
    with requests.Session() as session:
        response = session.send(prepared, timeout=30)
    assert (response.status_code, error_code(response)) == (400, "MalformedPOSTRequest"), response.text
    assert stored_keys(s3, bucket) == []


def test_fields_after_the_file_are_ignored(server: CairnServer, s3: S3Client, bucket: str) -> None:
    fields = signed_form(server, bucket, BASE_CONDITIONS, BASE_FIELDS)
    prepared = requests.Request("POST", f"{server.endpoint}/{bucket}", data=fields,
                                files={"file": (FILENAME, CONTENT, "text/plain")}).prepare()
    assert isinstance(prepared.body, bytes)
    closing = prepared.body.rindex(b"\r\n--")
    boundary = prepared.body[: prepared.body.index(b"\r\n")]
    late_field = b'\r\n' + boundary + b'\r\nContent-Disposition: form-data; name="x-amz-meta-late"\r\n\r\nno'
    prepared.body = prepared.body[:closing] + late_field + prepared.body[closing:] + b"epilogue"
    prepared.headers["Content-Length"] = str(len(prepared.body))
    with requests.Session() as session:
        response = session.send(prepared, timeout=30)
    assert response.status_code == 204, response.text
    assert s3.head_object(Bucket=bucket, Key=f"uploads/{FILENAME}")["Metadata"] == {}


def test_no_such_bucket(server: CairnServer) -> None:
    fields = signed_form(server, "no-such-bucket-here", BASE_CONDITIONS, BASE_FIELDS)
    response = upload(server, "no-such-bucket-here", fields)
    assert (response.status_code, error_code(response)) == (404, "NoSuchBucket")

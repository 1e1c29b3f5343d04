"""The S3 error table, the domain-error table and the error body."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from appliance.engine import errors as engine
from appliance.s3.errors import DOMAIN_ERRORS, ERRORS, S3Error, error_body, escape, from_exception

STATUS = [
    ("AccessDenied", 403), ("AccountProblem", 403), ("AuthorizationHeaderMalformed", 400),
    ("AuthorizationQueryParametersError", 400), ("BadDigest", 400), ("BucketAlreadyExists", 409),
    ("BucketAlreadyOwnedByYou", 409), ("BucketNotEmpty", 409), ("EntityTooLarge", 400),
    ("EntityTooSmall", 400),
    ("IncompleteBody", 400), ("InternalError", 500), ("InvalidAccessKeyId", 403), ("InvalidArgument", 400),
    ("InvalidBucketName", 400), ("InvalidDigest", 400), ("InvalidObjectState", 403), ("InvalidPart", 400),
    ("InvalidPartOrder", 400), ("InvalidRange", 416), ("InvalidRequest", 400), ("InvalidStorageClass", 400),
    ("InvalidTag", 400), ("InvalidURI", 400), ("KeyTooLongError", 400), ("MalformedPOSTRequest", 400),
    ("MalformedXML", 400), ("MethodNotAllowed", 405), ("MissingContentLength", 411),
    ("MissingRequestBodyError", 400), ("MissingSecurityHeader", 400), ("NoSuchBucket", 404),
    ("NoSuchBucketPolicy", 404), ("NoSuchCORSConfiguration", 404), ("NoSuchKey", 404), ("NoSuchTagSet", 404),
    ("NoSuchUpload", 404), ("NoSuchVersion", 404), ("NotImplemented", 501), ("NotModified", 304),
    ("PreconditionFailed", 412), ("RequestHeaderSectionTooLarge", 400), ("RequestTimeTooSkewed", 403),
    ("RequestTimeout", 400), ("ServiceUnavailable", 503), ("SignatureDoesNotMatch", 403), ("SlowDown", 503),
    ("XAmzContentSHA256Mismatch", 400), ("MetadataTooLarge", 400),
    ("IllegalLocationConstraintException", 400),
    ("MaxMessageLengthExceeded", 400), ("InvalidChunkSizeError", 403), ("ConditionalRequestConflict", 409),
    ("OperationAborted", 409), ("TooManyBuckets", 400), ("PermanentRedirect", 301),
    ("TemporaryRedirect", 307),
]


@pytest.mark.parametrize(("code", "status"), STATUS)
def test_table_status(code: str, status: int) -> None:
    assert ERRORS[code][0] == status
    err = S3Error(code)
    assert (err.status, err.message) == (status, ERRORS[code][1])


def test_every_message_is_a_sentence() -> None:
    assert all(message and status in range(300, 600) for status, message in ERRORS.values())


@pytest.mark.parametrize(("args", "kwargs", "expected"), [
    (("NoSuchKey",), {}, ("NoSuchKey", "The specified key does not exist.", 404, {})),
    (("InvalidArgument", "bad max-keys"), {"ArgumentName": "max-keys"},
     ("InvalidArgument", "bad max-keys", 400, {"ArgumentName": "max-keys"})),
    (("SlowDown",), {"status": 429}, ("SlowDown", "Please reduce your request rate.", 429, {})),
    (("XNotInTheTable",), {}, ("XNotInTheTable", "XNotInTheTable", 400, {})),
])
def test_s3_error(args: tuple[str, ...], kwargs: dict[str, object], expected: tuple[object, ...]) -> None:
    err = S3Error(*args, **kwargs)  # type: ignore[arg-type]
    assert (err.code, err.message, err.status, err.extra) == expected


DOMAIN: list[tuple[BaseException, str, int, dict[str, object]]] = [
    (engine.BucketNotFound("b"), "NoSuchBucket", 404, {"BucketName": "b"}),
    (engine.BucketExists("b"), "BucketAlreadyOwnedByYou", 409, {"BucketName": "b"}),
    (engine.BucketNotEmpty("b"), "BucketNotEmpty", 409, {"BucketName": "b"}),
    (engine.InvalidBucketName("B"), "InvalidBucketName", 400, {"BucketName": "B"}),
    (engine.ObjectNotFound("b", "k"), "NoSuchKey", 404, {"Key": "k"}),
    (engine.VersionNotFound("b", "k", "v1"), "NoSuchVersion", 404, {"Key": "k", "VersionId": "v1"}),
    (engine.KeyTooLong("/srv/secret"), "KeyTooLongError", 400, {}),
    (engine.InvalidObjectName("/srv/secret"), "InvalidArgument", 400, {}),
    (engine.InvalidRange(10), "InvalidRange", 416, {"ActualObjectSize": 10}),
    (engine.ReadQuorumUnavailable("2 of 4"), "ServiceUnavailable", 503, {}),
    (engine.WriteQuorumUnavailable("2 of 4"), "ServiceUnavailable", 503, {}),
    (engine.PreconditionFailed(), "PreconditionFailed", 412, {}),
    (engine.DriveOffline("/mnt/d1"), "ServiceUnavailable", 503, {}),
    (engine.DriveFull("/mnt/d1"), "ServiceUnavailable", 503, {}),
    (engine.DriveReadOnly("/mnt/d1"), "ServiceUnavailable", 503, {}),
    (engine.FileCorrupt("/mnt/d1/x"), "InternalError", 500, {}),
    (engine.UnformattedDrive("/mnt/d1"), "InternalError", 500, {}),
    (engine.CodecSelfTestFailed("k=4"), "InternalError", 500, {}),
    (KeyError("secret"), "InternalError", 500, {}),
    (RuntimeError("/etc/secret path"), "InternalError", 500, {}),
]


@pytest.mark.parametrize(("exc", "code", "status", "extra"), DOMAIN)
def test_from_exception(exc: BaseException, code: str, status: int, extra: dict[str, object]) -> None:
    err = from_exception(exc)
    assert (err.code, err.status, err.extra) == (code, status, extra)
    # A domain error's own text (paths, drive names) is never what the client reads.
    assert str(exc) not in err.message or not str(exc)


def test_quorum_messages_say_which_quorum() -> None:
    assert "read quorum not available" in from_exception(engine.ReadQuorumUnavailable()).message
    assert "write quorum not available" in from_exception(engine.WriteQuorumUnavailable()).message


def test_subclasses_map_through_their_mro() -> None:
    class LostObject(engine.ObjectNotFound):
        pass

    assert from_exception(LostObject("b", "k")).code == "NoSuchKey"
    # The most specific class wins: KeyTooLong is an InvalidObjectName.
    assert from_exception(engine.KeyTooLong()).code == "KeyTooLongError"


def test_s3_errors_pass_through() -> None:
    err = S3Error("AccessDenied")
    assert from_exception(err) is err


def test_every_domain_code_is_in_the_table() -> None:
    assert all(mapping.code in ERRORS for mapping in DOMAIN_ERRORS.values())


def test_error_body() -> None:
    err = S3Error("NoSuchKey", Key="a&b<c>")
    body = error_body(err, resource="/bucket/a&b<c>", request_id="REQ1", host_id="host")
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(body)
    assert root.tag == "Error"
    assert [(child.tag, child.text or "") for child in root] == [
        ("Code", "NoSuchKey"), ("Message", "The specified key does not exist."), ("Key", "a&b<c>"),
        ("Resource", "/bucket/a&b<c>"), ("RequestId", "REQ1"), ("HostId", "host"),
    ]


@pytest.mark.parametrize(("text", "escaped"), [
    ("plain", "plain"),
    ("a&b", "a&amp;b"),
    ("<tag>", "&lt;tag&gt;"),
    ("\"q\" 'a'", "&quot;q&quot; &apos;a&apos;"),
    ("tab\there", "tab\there"),
    ("cr\rlf\n", "cr&#xD;lf&#xA;"),
    ("\x01\x1f", "&#x1;&#x1F;"),
    ("caf\u00e9 \u2713", "caf\u00e9 \u2713"),
])
def test_escape(text: str, escaped: str) -> None:
    assert escape(text) == escaped

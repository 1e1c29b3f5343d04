"""XML bodies: builders parsed back with ElementTree, parsers fed good and bad bodies."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote_plus

import pytest

from appliance.s3 import xml
from appliance.s3.errors import S3Error

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
WHEN = datetime(2009, 10, 12, 17, 50, 30, 123_456, tzinfo=UTC)
STAMP = "2009-10-12T17:50:30.123Z"
OWNER = ("abc123", "alice")


def parse(body: bytes) -> ET.Element:
    """The document with the S3 namespace stripped from every tag, after checking it was there."""
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(body)
    assert root.tag.startswith(NS)
    for element in root.iter():
        element.tag = element.tag.removeprefix(NS)
    return root


def text(root: ET.Element, path: str) -> str | None:
    found = root.find(path)
    return None if found is None else (found.text or "")


def texts(root: ET.Element, path: str) -> list[str]:
    return [e.text or "" for e in root.findall(path)]


# Keys that need escaping, and what survives an ElementTree round trip without URL encoding.
KEYS = ["plain", "a&b", "<x>", '"quoted"', "it's", "tab\tkey", "cr\rlf\nkey", "\u65e5\u672c/\u2713", "a+b c",
        "100%", "dir/sub/"]
CONTROL_KEYS = ["bell\x07", "nul\x00", "esc\x1b[0m"]


def entry(key: str, **kw: Any) -> xml.ObjectEntry:
    return xml.ObjectEntry(key=key, last_modified=WHEN, etag="d41d8cd98f00b204e9800998ecf8427e", size=7, **kw)


# --- service and buckets ------------------------------------------------------------------------


def test_list_buckets() -> None:
    later = WHEN + timedelta(days=1)
    root = parse(xml.list_buckets(OWNER, [("b1", WHEN), ("b&2", later)]))
    assert root.tag == "ListAllMyBucketsResult"
    assert (text(root, "Owner/ID"), text(root, "Owner/DisplayName")) == OWNER
    assert texts(root, "Buckets/Bucket/Name") == ["b1", "b&2"]
    assert texts(root, "Buckets/Bucket/CreationDate") == [STAMP, "2009-10-13T17:50:30.123Z"]
    assert root.find("ContinuationToken") is None and root.find("Buckets/Bucket/BucketRegion") is None


def test_list_buckets_pagination_fields() -> None:
    root = parse(xml.list_buckets(OWNER, [], prefix="p", continuation_token="tok", region="eu-west-1"))
    assert (text(root, "Prefix"), text(root, "ContinuationToken")) == ("p", "tok")
    root = parse(xml.list_buckets(OWNER, [("b", WHEN)], region="eu-west-1"))
    assert text(root, "Buckets/Bucket/BucketRegion") == "eu-west-1"


@pytest.mark.parametrize(("when", "stamp"), [
    (WHEN, STAMP),
    (datetime(2009, 10, 12, 19, 50, 30, 999_999, tzinfo=timezone(timedelta(hours=2))),
     "2009-10-12T17:50:30.999Z"),
    (datetime(2009, 10, 12, 17, 50, 30), "2009-10-12T17:50:30.000Z"),
])
def test_times(when: datetime, stamp: str) -> None:
    assert text(parse(xml.list_buckets(OWNER, [("b", when)])), "Buckets/Bucket/CreationDate") == stamp


@pytest.mark.parametrize(("region", "expected"), [("us-east-1", ""), ("", ""), ("eu-west-1", "eu-west-1")])
def test_location(region: str, expected: str) -> None:
    root = parse(xml.location(region))
    assert (root.tag, root.text or "") == ("LocationConstraint", expected)


# --- listings -----------------------------------------------------------------------------------


def v2(**kw: Any) -> bytes:
    args: dict[str, Any] = {
        "bucket": "bucket", "prefix": "", "delimiter": "", "max_keys": 1000, "start_after": "",
        "continuation_token": "", "next_continuation_token": None, "encoding_type": "", "is_truncated": False,
        "contents": [], "common_prefixes": [],
    }
    return xml.list_objects_v2(**{**args, **kw})


def test_list_objects_v2_fields() -> None:
    root = parse(v2(prefix="p/", delimiter="/", max_keys=2, start_after="p/a", continuation_token="tok",
                    next_continuation_token="next", is_truncated=True,
                    contents=[entry("p/b", owner=OWNER, storage_class="REDUCED_REDUNDANCY",
                                    checksum_algorithm="CRC32")],
                    common_prefixes=["p/c/"]))
    assert root.tag == "ListBucketResult"
    assert {child.tag: child.text for child in root if child.tag not in ("Contents", "CommonPrefixes")} == {
        "Name": "bucket", "Prefix": "p/", "Delimiter": "/", "MaxKeys": "2", "KeyCount": "2",
        "IsTruncated": "true", "ContinuationToken": "tok", "NextContinuationToken": "next",
        "StartAfter": "p/a",
    }
    assert [(c.tag, c.text) for c in root.find("Contents") or []][:4] == [
        ("Key", "p/b"), ("LastModified", STAMP), ("ETag", '"d41d8cd98f00b204e9800998ecf8427e"'),
        ("ChecksumAlgorithm", "CRC32"),
    ]
    assert text(root, "Contents/Size") == "7"
    assert text(root, "Contents/Owner/ID") == "abc123"
    assert text(root, "Contents/StorageClass") == "REDUCED_REDUNDANCY"
    assert texts(root, "CommonPrefixes/Prefix") == ["p/c/"]


def test_list_objects_v2_minimal() -> None:
    root = parse(v2())
    tags = [child.tag for child in root]
    assert tags == ["Name", "Prefix", "MaxKeys", "KeyCount", "IsTruncated"]
    assert (text(root, "Prefix"), text(root, "KeyCount")) == ("", "0")


@pytest.mark.parametrize("key", KEYS)
def test_keys_are_escaped(key: str) -> None:
    root = parse(v2(contents=[entry(key)], prefix=key, common_prefixes=[key]))
    assert text(root, "Contents/Key") == key
    assert text(root, "Prefix") == key
    assert texts(root, "CommonPrefixes/Prefix") == [key]


@pytest.mark.parametrize("key", KEYS + CONTROL_KEYS)
def test_url_encoding_type(key: str) -> None:
    root = parse(v2(encoding_type="url", prefix=key, delimiter=key, start_after=key, continuation_token="t+k",
                    contents=[entry(key)], common_prefixes=[key]))
    assert text(root, "EncodingType") == "url"
    for path in ("Contents/Key", "Prefix", "Delimiter", "StartAfter", "CommonPrefixes/Prefix"):
        value = text(root, path)
        assert value is not None and value.isascii() and unquote_plus(value) == key
    assert text(root, "ContinuationToken") == "t+k"


@pytest.mark.parametrize(("key", "reference"), [("bell\x07", b"bell&#x7;"), ("esc\x1b", b"esc&#x1B;")])
def test_control_characters_become_references(key: str, reference: bytes) -> None:
    assert b"<Key>" + reference + b"</Key>" in v2(contents=[entry(key)])


def v1(**kw: Any) -> bytes:
    args: dict[str, Any] = {
        "bucket": "bucket", "prefix": "", "delimiter": "", "marker": "", "next_marker": None,
        "max_keys": 1000, "encoding_type": "", "is_truncated": False, "contents": [], "common_prefixes": [],
    }
    return xml.list_objects_v1(**{**args, **kw})


def test_list_objects_v1() -> None:
    root = parse(v1(marker="a b", next_marker="c+d", delimiter="/", is_truncated=True, encoding_type="url",
                    contents=[entry("k 1", owner=OWNER)], common_prefixes=["p q/"]))
    paths = ("Marker", "NextMarker", "Delimiter", "Contents/Key", "CommonPrefixes/Prefix")
    assert [text(root, p) for p in paths] == ["a%20b", "c%2Bd", "/", "k%201", "p%20q/"]
    assert text(root, "Contents/Owner/DisplayName") == "alice"
    root = parse(v1())
    assert (text(root, "Marker"), root.find("NextMarker"), root.find("Delimiter")) == ("", None, None)


def test_list_object_versions() -> None:
    versions = [
        xml.VersionEntry(key="k&", version_id="v3", is_latest=True, last_modified=WHEN, delete_marker=True,
                         owner=OWNER),
        xml.VersionEntry(key="k&", version_id="v2", is_latest=False, last_modified=WHEN, etag="e2", size=3),
        xml.VersionEntry(key="l", version_id="null", is_latest=True, last_modified=WHEN, etag='"e1"', size=0),
    ]
    root = parse(xml.list_object_versions(
        bucket="b", prefix="", delimiter="", key_marker="a", version_id_marker="v9", next_key_marker="l",
        next_version_id_marker="null", max_keys=3, encoding_type="", is_truncated=True, versions=versions,
        common_prefixes=["d/"],
    ))
    assert root.tag == "ListVersionsResult"
    assert [e.tag for e in root if e.tag in ("Version", "DeleteMarker")] == [
        "DeleteMarker", "Version", "Version"]
    paths = ("KeyMarker", "VersionIdMarker", "NextKeyMarker", "NextVersionIdMarker")
    assert [text(root, p) for p in paths] == ["a", "v9", "l", "null"]
    marker = root.find("DeleteMarker")
    assert marker is not None
    assert [(c.tag, c.text) for c in marker][:4] == [
        ("Key", "k&"), ("VersionId", "v3"), ("IsLatest", "true"), ("LastModified", STAMP)]
    assert marker.find("ETag") is None and marker.find("Owner/ID") is not None
    assert texts(root, "Version/ETag") == ['"e2"', '"e1"']
    assert texts(root, "Version/Size") == ["3", "0"]
    assert texts(root, "Version/IsLatest") == ["false", "true"]
    assert texts(root, "CommonPrefixes/Prefix") == ["d/"]


def test_list_object_versions_url_encoding() -> None:
    root = parse(xml.list_object_versions(
        bucket="b", prefix="p q", delimiter="/", key_marker="a b", version_id_marker="",
        next_key_marker="c d", next_version_id_marker=None, max_keys=1, encoding_type="url",
        is_truncated=False,
        versions=[xml.VersionEntry(key="k l", version_id="v", is_latest=True, last_modified=WHEN, etag="e")],
        common_prefixes=[],
    ))
    paths = ("Prefix", "KeyMarker", "NextKeyMarker", "Version/Key", "EncodingType")
    assert [text(root, p) for p in paths] == ["p%20q", "a%20b", "c%20d", "k%20l", "url"]
    assert root.find("NextVersionIdMarker") is None


# --- DeleteObjects ------------------------------------------------------------------------------


def test_delete_result() -> None:
    root = parse(xml.delete_result(
        [("a", None, False, None), ("b<", "v1", False, None), ("c", None, True, "dm1")],
        [("d&", "v2", "AccessDenied", "Access Denied"), ("e", None, "InternalError", "oops")],
    ))
    assert root.tag == "DeleteResult"
    assert texts(root, "Deleted/Key") == ["a", "b<", "c"]
    assert texts(root, "Deleted/VersionId") == ["v1"]
    assert texts(root, "Deleted/DeleteMarker") == ["true"]
    assert texts(root, "Deleted/DeleteMarkerVersionId") == ["dm1"]
    errors = root.findall("Error")
    assert [[(c.tag, c.text) for c in e] for e in errors] == [
        [("Key", "d&"), ("VersionId", "v2"), ("Code", "AccessDenied"), ("Message", "Access Denied")],
        [("Key", "e"), ("Code", "InternalError"), ("Message", "oops")],
    ]


DELETE_BODIES: list[tuple[bytes, tuple[bool, list[tuple[str, str | None]]]]] = [
    (b"<Delete><Object><Key>a</Key></Object></Delete>", (False, [("a", None)])),
    (b'<?xml version="1.0" encoding="UTF-8"?>\n<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
     b"<Quiet>true</Quiet><Object><Key>a&amp;b</Key><VersionId>v1</VersionId></Object>"
     b"<Object><Key> spaced </Key><VersionId></VersionId></Object></Delete>",
     (True, [("a&b", "v1"), (" spaced ", None)])),
    (b"<Delete>\n  <Quiet> FALSE </Quiet>\n"
     b"  <Object><Key>cr&#13;lf&#10;</Key><ETag>x</ETag></Object>\n</Delete>",
     (False, [("cr\rlf\n", None)])),
    ("<Delete><Object><Key>\u65e5\u672c</Key></Object></Delete>".encode(), (False, [("\u65e5\u672c", None)])),
    (b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1000 + b"</Delete>", (False, [("k", None)] * 1000)),
]


@pytest.mark.parametrize(("body", "expected"), DELETE_BODIES)
def test_parse_delete_objects(body: bytes, expected: tuple[bool, list[tuple[str, str | None]]]) -> None:
    assert xml.parse_delete_objects(body) == expected


# --- copy and multipart -------------------------------------------------------------------------


def test_copy_object_result() -> None:
    root = parse(xml.copy_object_result("abc", WHEN, {"crc32": "AAAAAA==", "x-amz-checksum-sha256": "s"}))
    assert [(c.tag, c.text) for c in root] == [
        ("ETag", '"abc"'), ("LastModified", STAMP), ("ChecksumCRC32", "AAAAAA=="), ("ChecksumSHA256", "s")]
    assert parse(xml.copy_object_result('"abc"', WHEN)).tag == "CopyObjectResult"
    assert b"&quot;abc&quot;" in xml.copy_object_result("abc", WHEN)


def test_unknown_checksum_algorithm_is_a_bug() -> None:
    with pytest.raises(ValueError):
        xml.copy_object_result("abc", WHEN, {"md4": "x"})


def test_copy_part_result() -> None:
    root = parse(xml.copy_part_result("e-1", WHEN))
    assert (root.tag, text(root, "ETag"), text(root, "LastModified")) == ("CopyPartResult", '"e-1"', STAMP)


def test_initiate_and_complete() -> None:
    root = parse(xml.initiate_multipart_upload("b", "k&<", "up1"))
    assert [(c.tag, c.text) for c in root] == [("Bucket", "b"), ("Key", "k&<"), ("UploadId", "up1")]
    root = parse(xml.complete_multipart_upload("http://h/b/k", "b", "k", "abc-2", {"CRC32C": "c"}))
    assert [(c.tag, c.text) for c in root] == [
        ("Location", "http://h/b/k"), ("Bucket", "b"), ("Key", "k"), ("ETag", '"abc-2"'),
        ("ChecksumCRC32C", "c")]


Parts = list[tuple[int, str, dict[str, str]]]
COMPLETE_BODIES: list[tuple[bytes, Parts]] = [
    (b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"a\"</ETag></Part>"
     b"<Part><ETag>&quot;b&quot;</ETag><PartNumber> 3 </PartNumber><ChecksumCRC32>c==</ChecksumCRC32></Part>"
     b"</CompleteMultipartUpload>",
     [(1, "a", {}), (3, "b", {"CRC32": "c=="})]),
    (b'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><PartNumber>10000'
     b"</PartNumber><ETag>e</ETag><ChecksumSHA256>s</ChecksumSHA256><ChecksumType>x</ChecksumType></Part>"
     b"</CompleteMultipartUpload>",
     [(10000, "e", {"SHA256": "s"})]),
]


@pytest.mark.parametrize(("body", "expected"), COMPLETE_BODIES)
def test_parse_complete_multipart_upload(body: bytes, expected: Parts) -> None:
    assert xml.parse_complete_multipart_upload(body) == expected


def test_list_parts() -> None:
    parts = [xml.PartEntry(part_number=2, last_modified=WHEN, etag="p2", size=5 * 2**20,
                           checksums={"CRC32": "x"})]
    root = parse(xml.list_parts(
        bucket="b", key="k", upload_id="u", initiator=OWNER, owner=("o", "bob"), storage_class="STANDARD",
        part_number_marker=1, next_part_number_marker=2, max_parts=1, is_truncated=True, parts=parts,
        checksum_algorithm="CRC32",
    ))
    assert root.tag == "ListPartsResult"
    assert [text(root, p) for p in ("Bucket", "Key", "UploadId", "Initiator/ID", "Owner/DisplayName",
                                     "StorageClass", "PartNumberMarker", "NextPartNumberMarker", "MaxParts",
                                     "IsTruncated", "ChecksumAlgorithm")] == [
        "b", "k", "u", "abc123", "bob", "STANDARD", "1", "2", "1", "true", "CRC32"]
    assert [(c.tag, c.text) for c in root.find("Part") or []] == [
        ("PartNumber", "2"), ("LastModified", STAMP), ("ETag", '"p2"'), ("Size", str(5 * 2**20)),
        ("ChecksumCRC32", "x")]
    root = parse(xml.list_parts(
        bucket="b", key="k", upload_id="u", initiator=OWNER, owner=OWNER, storage_class="STANDARD",
        part_number_marker=0, next_part_number_marker=None, max_parts=1000, is_truncated=False, parts=[],
    ))
    assert root.find("NextPartNumberMarker") is None and root.find("Part") is None


def test_list_multipart_uploads() -> None:
    uploads = [
        xml.UploadEntry(key="a b", upload_id="u1", initiated=WHEN, owner=OWNER),
        xml.UploadEntry(key="c", upload_id="u2", initiated=WHEN, owner=OWNER, initiator=("i", "ivan"),
                        checksum_algorithm="SHA1"),
    ]
    root = parse(xml.list_multipart_uploads(
        bucket="b", prefix="", delimiter="/", key_marker="", upload_id_marker="", next_key_marker="c",
        next_upload_id_marker="u2", max_uploads=2, encoding_type="url", is_truncated=True, uploads=uploads,
        common_prefixes=["d e/"],
    ))
    assert root.tag == "ListMultipartUploadsResult"
    paths = ("Bucket", "KeyMarker", "UploadIdMarker", "NextKeyMarker", "NextUploadIdMarker", "Delimiter",
             "MaxUploads", "IsTruncated", "EncodingType")
    assert [text(root, p) for p in paths] == [
        "b", "", "", "c", "u2", "/", "2", "true", "url"]
    assert texts(root, "Upload/Key") == ["a%20b", "c"]
    assert texts(root, "Upload/Initiator/ID") == ["abc123", "i"]
    assert texts(root, "Upload/Initiated") == [STAMP, STAMP]
    assert texts(root, "Upload/ChecksumAlgorithm") == ["SHA1"]
    assert texts(root, "CommonPrefixes/Prefix") == ["d%20e/"]


# --- configuration documents --------------------------------------------------------------------


@pytest.mark.parametrize(("status", "expected"), [
    ("Enabled", "Enabled"), ("Suspended", "Suspended"), (None, None),
])
def test_versioning(status: str | None, expected: str | None) -> None:
    root = parse(xml.versioning(status))
    assert (root.tag, text(root, "Status")) == ("VersioningConfiguration", expected)


@pytest.mark.parametrize(("body", "expected"), [
    (b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>", "Enabled"),
    (b'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"> <Status>Suspended</Status>'
     b"<MfaDelete>Disabled</MfaDelete></VersioningConfiguration>", "Suspended"),
])
def test_parse_versioning(body: bytes, expected: str) -> None:
    assert xml.parse_versioning(body) == expected


@pytest.mark.parametrize("tags", [
    {},
    {"a": "1", "unicode \u00e9\u65e5": "", "k+-=._:/@": "v w"},
    {f"k{i}": "v" * 256 for i in range(10)},
])
def test_tagging_round_trip(tags: dict[str, str]) -> None:
    body = xml.tagging(tags)
    assert parse(body).tag == "Tagging"
    assert xml.parse_tagging(body) == tags


def test_bucket_tags_allow_fifty() -> None:
    tags = {f"k{i}": "v" for i in range(50)}
    assert xml.parse_tagging(xml.tagging(tags), bucket=True) == tags


@pytest.mark.parametrize(("value", "expected"), [
    ("a=1&b=two%20words", {"a": "1", "b": "two words"}),
    ("empty=&x=%C3%A9", {"empty": "", "x": "\u00e9"}),
    ("", {}),
])
def test_parse_tagging_header(value: str, expected: dict[str, str]) -> None:
    assert xml.parse_tagging_header(value) == expected


@pytest.mark.parametrize(("value", "code"), [("a=1&a=2", "InvalidTag"), ("aws:x=1", "InvalidTag"),
                                             ("check=%E2%9C%93", "InvalidTag"),
                                             ("k=%FF", "InvalidArgument"),
                                             ("&".join(f"k{i}=v" for i in range(11)), "BadRequest")])
def test_bad_tagging_header(value: str, code: str) -> None:
    with pytest.raises(S3Error) as info:
        xml.parse_tagging_header(value)
    assert info.value.code == code


RULES = [
    xml.CorsRule(allowed_origins=("https://a.example", "http://*.b.example"), allowed_methods=("GET", "PUT"),
                 allowed_headers=("*",), expose_headers=("ETag", "x-amz-request-id"), max_age_seconds=3000,
                 id="rule&1"),
    xml.CorsRule(allowed_origins=("*",), allowed_methods=("HEAD",)),
]


def test_cors_round_trip() -> None:
    body = xml.cors(RULES)
    root = parse(body)
    assert root.tag == "CORSConfiguration"
    assert texts(root, "CORSRule/AllowedOrigin") == ["https://a.example", "http://*.b.example", "*"]
    assert xml.parse_cors(body) == RULES


def test_parse_cors_trims_whitespace() -> None:
    body = (b"<CORSConfiguration><CORSRule>\n <AllowedOrigin> * </AllowedOrigin>\n <AllowedMethod>GET"
            b"</AllowedMethod><MaxAgeSeconds> 10 </MaxAgeSeconds></CORSRule></CORSConfiguration>")
    assert xml.parse_cors(body) == [xml.CorsRule(allowed_origins=("*",), allowed_methods=("GET",),
                                                 max_age_seconds=10)]


def test_get_object_attributes() -> None:
    parts = xml.AttributeParts(
        total_parts_count=3, part_number_marker=1, next_part_number_marker=2, max_parts=1, is_truncated=True,
        parts=[xml.AttributePart(part_number=2, size=10, checksums={"CRC32": "p"})],
    )
    body = xml.get_object_attributes(["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"],
                                     etag='"abc-3"', size=30, checksums={"CRC32": "o"},
                                     checksum_type="COMPOSITE", parts=parts)
    root = parse(body)
    assert root.tag == "GetObjectAttributesResponse"
    assert [c.tag for c in root] == ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]
    assert [text(root, p) for p in ("ETag", "ObjectSize", "StorageClass")] == ["abc-3", "30", "STANDARD"]
    assert [(c.tag, c.text) for c in root.find("Checksum") or []] == [
        ("ChecksumCRC32", "o"), ("ChecksumType", "COMPOSITE")]
    paths = ("PartsCount", "PartNumberMarker", "NextPartNumberMarker", "MaxParts", "IsTruncated")
    assert [text(root, f"ObjectParts/{p}") for p in paths] == ["3", "1", "2", "1", "true"]
    assert [(c.tag, c.text) for c in root.find("ObjectParts/Part") or []] == [
        ("ChecksumCRC32", "p"), ("PartNumber", "2"), ("Size", "10")]


@pytest.mark.parametrize(("attributes", "tags"), [
    (["ObjectSize"], ["ObjectSize"]),
    (["ETag", "Checksum", "ObjectParts"], ["ETag"]),
    ([], []),
])
def test_get_object_attributes_only_what_exists(attributes: list[str], tags: list[str]) -> None:
    root = parse(xml.get_object_attributes(attributes, etag="e", size=1))
    assert [c.tag for c in root] == tags


def test_acl() -> None:
    root = parse(xml.acl(OWNER))
    assert root.tag == "AccessControlPolicy"
    assert (text(root, "Owner/ID"), text(root, "Owner/DisplayName")) == OWNER
    grantee = root.find("AccessControlList/Grant/Grantee")
    assert grantee is not None
    assert grantee.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "CanonicalUser"
    assert text(grantee, "ID") == "abc123"
    assert text(root, "AccessControlList/Grant/Permission") == "FULL_CONTROL"


@pytest.mark.parametrize(("body", "expected"), [
    (b"", None),
    (b"  \n", None),
    (b"<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint>"
     b"</CreateBucketConfiguration>",
     "eu-west-1"),
    (b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>'
     b"</LocationConstraint></CreateBucketConfiguration>", None),
    (b"<CreateBucketConfiguration/>", None),
])
def test_parse_create_bucket(body: bytes, expected: str | None) -> None:
    assert xml.parse_create_bucket(body) == expected


# --- bad request bodies -------------------------------------------------------------------------

BOMB = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b"<Delete><Object><Key>&lol2;</Key></Object></Delete>")
EXTERNAL = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<Delete><Object><Key>&x;</Key></Object></Delete>")


def tag_body(pairs: list[tuple[str, str]]) -> bytes:
    tags = "".join(f"<Tag><Key>{k}</Key><Value>{v}</Value></Tag>" for k, v in pairs)
    return f"<Tagging><TagSet>{tags}</TagSet></Tagging>".encode()


def cors_body(rule: str, count: int = 1) -> bytes:
    return f"<CORSConfiguration>{('<CORSRule>' + rule + '</CORSRule>') * count}</CORSConfiguration>".encode()


GOOD_RULE = "<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"

BAD_BODIES: list[tuple[Callable[[bytes], object], bytes, str]] = [
    (xml.parse_delete_objects, b"", "MissingRequestBodyError"),
    (xml.parse_delete_objects, b"not xml", "MalformedXML"),
    (xml.parse_delete_objects, b"<Delete>", "MalformedXML"),
    (xml.parse_delete_objects, b"<Remove><Object><Key>a</Key></Object></Remove>", "MalformedXML"),
    (xml.parse_delete_objects, b'<Delete xmlns="urn:other"><Object><Key>a</Key></Object></Delete>',
     "MalformedXML"),
    (xml.parse_delete_objects, b"<Delete></Delete>", "MalformedXML"),
    (xml.parse_delete_objects, b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>",
     "MalformedXML"),
    (xml.parse_delete_objects, b"<Delete><Object><VersionId>v</VersionId></Object></Delete>", "MalformedXML"),
    (xml.parse_delete_objects, b"<Delete><Quiet>maybe</Quiet><Object><Key>a</Key></Object></Delete>",
     "MalformedXML"),
    (xml.parse_delete_objects, BOMB, "MalformedXML"),
    (xml.parse_delete_objects, EXTERNAL, "MalformedXML"),
    (xml.parse_complete_multipart_upload, b"", "MissingRequestBodyError"),
    (xml.parse_complete_multipart_upload, b"<CompleteMultipartUpload/>", "MalformedXML"),
    (xml.parse_complete_multipart_upload,
     b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>a</ETag></Part>"
     b"</CompleteMultipartUpload>",
     "MalformedXML"),
    (xml.parse_complete_multipart_upload,
     b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
     "MalformedXML"),
    (xml.parse_complete_multipart_upload,
     b"<CompleteMultipartUpload><Part><ETag>a</ETag></Part></CompleteMultipartUpload>", "MalformedXML"),
    (xml.parse_complete_multipart_upload,
     b"<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>a</ETag></Part>"
     b"</CompleteMultipartUpload>",
     "InvalidArgument"),
    (xml.parse_complete_multipart_upload,
     b"<CompleteMultipartUpload><Part><PartNumber>10001</PartNumber><ETag>a</ETag></Part>"
     b"</CompleteMultipartUpload>", "InvalidArgument"),
    (xml.parse_complete_multipart_upload,
     b"<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>a</ETag></Part>"
     b"<Part><PartNumber>1</PartNumber><ETag>b</ETag></Part></CompleteMultipartUpload>", "InvalidPartOrder"),
    (xml.parse_complete_multipart_upload,
     b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>a</ETag></Part>"
     b"<Part><PartNumber>1</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>", "InvalidPartOrder"),
    (xml.parse_versioning, b"", "MissingRequestBodyError"),
    (xml.parse_versioning, b"<VersioningConfiguration/>", "MalformedXML"),
    (xml.parse_versioning, b"<VersioningConfiguration><Status>On</Status></VersioningConfiguration>",
     "MalformedXML"),
    (xml.parse_versioning, b"<VersioningConfiguration><Status>enabled</Status></VersioningConfiguration>",
     "MalformedXML"),
    (xml.parse_versioning, b"<Versioning><Status>Enabled</Status></Versioning>", "MalformedXML"),
    (xml.parse_versioning,
     b"<VersioningConfiguration><Status>Enabled</Status><MfaDelete>Enabled</MfaDelete>"
     b"</VersioningConfiguration>",
     "NotImplemented"),
    (xml.parse_tagging, b"", "MissingRequestBodyError"),
    (xml.parse_tagging, b"<Tagging/>", "MalformedXML"),
    (xml.parse_tagging, b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>", "MalformedXML"),
    (xml.parse_tagging, tag_body([(f"k{i}", "v") for i in range(11)]), "BadRequest"),
    (xml.parse_tagging, tag_body([("a", "1"), ("a", "2")]), "InvalidTag"),
    (xml.parse_tagging, tag_body([("k" * 129, "v")]), "InvalidTag"),
    (xml.parse_tagging, tag_body([("k", "v" * 257)]), "InvalidTag"),
    (xml.parse_tagging, tag_body([("", "v")]), "InvalidTag"),
    (xml.parse_tagging, tag_body([("aws:cloudformation", "v")]), "InvalidTag"),
    (xml.parse_tagging, tag_body([("a*b", "v")]), "InvalidTag"),
    (xml.parse_tagging, tag_body([("k", "v#")]), "InvalidTag"),
    (xml.parse_cors, b"", "MissingRequestBodyError"),
    (xml.parse_cors, b"<CORSConfiguration/>", "MalformedXML"),
    (xml.parse_cors, cors_body("<AllowedMethod>GET</AllowedMethod>"), "MalformedXML"),
    (xml.parse_cors, cors_body("<AllowedOrigin>*</AllowedOrigin>"), "MalformedXML"),
    (xml.parse_cors, cors_body("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod>"),
     "InvalidRequest"),
    (xml.parse_cors, cors_body("<AllowedOrigin>*.*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"),
     "InvalidRequest"),
    (xml.parse_cors, cors_body(GOOD_RULE + "<AllowedHeader>x-*-*</AllowedHeader>"), "InvalidRequest"),
    (xml.parse_cors, cors_body(GOOD_RULE + "<MaxAgeSeconds>soon</MaxAgeSeconds>"), "MalformedXML"),
    (xml.parse_cors, cors_body(GOOD_RULE + "<ID>" + "i" * 256 + "</ID>"), "MalformedXML"),
    (xml.parse_cors, cors_body(GOOD_RULE, 101), "InvalidRequest"),
    (xml.parse_create_bucket, b"<Bucket><LocationConstraint>x</LocationConstraint></Bucket>", "MalformedXML"),
    (xml.parse_create_bucket, b"<CreateBucketConfiguration>", "MalformedXML"),
]


@pytest.mark.parametrize(("parser", "body", "code"), BAD_BODIES)
def test_bad_bodies(parser: Callable[[bytes], object], body: bytes, code: str) -> None:
    with pytest.raises(S3Error) as info:
        parser(body)
    assert info.value.code == code


def test_bucket_tag_limit() -> None:
    with pytest.raises(S3Error, match="InvalidTag"):
        xml.parse_tagging(tag_body([(f"k{i}", "v") for i in range(51)]), bucket=True)


# --- what the AWS SDK reads back ----------------------------------------------------------------

SDK: list[tuple[str, bytes, dict[str, Any]]] = [
    ("ListObjectsV2", v2(prefix="p", max_keys=1, next_continuation_token="n", is_truncated=True,
                         contents=[entry("k", owner=OWNER)], common_prefixes=["p/"]),
     {"Prefix": "p", "KeyCount": 2, "NextContinuationToken": "n", "IsTruncated": True,
      "CommonPrefixes": [{"Prefix": "p/"}]}),
    ("ListObjectVersions", xml.list_object_versions(
        bucket="b", prefix="", delimiter="", key_marker="", version_id_marker="", next_key_marker="k",
        next_version_id_marker="v0", max_keys=2, encoding_type="", is_truncated=True, common_prefixes=[],
        versions=[xml.VersionEntry("k", "v1", True, WHEN, delete_marker=True),
                  xml.VersionEntry("k", "v0", False, WHEN, "e", 5)]),
     {"NextKeyMarker": "k", "NextVersionIdMarker": "v0", "IsTruncated": True}),
    ("ListParts", xml.list_parts(bucket="b", key="k", upload_id="u", initiator=OWNER, owner=OWNER,
                                 storage_class="STANDARD", part_number_marker=0, next_part_number_marker=1,
                                 max_parts=1, is_truncated=True, parts=[xml.PartEntry(1, WHEN, "e", 5)]),
     {"UploadId": "u", "NextPartNumberMarker": 1, "MaxParts": 1, "IsTruncated": True}),
    ("ListMultipartUploads", xml.list_multipart_uploads(
        bucket="b", prefix="", delimiter="", key_marker="", upload_id_marker="", next_key_marker=None,
        next_upload_id_marker=None, max_uploads=1000, encoding_type="", is_truncated=False,
        common_prefixes=[],
        uploads=[xml.UploadEntry("k", "u", WHEN, OWNER)]),
     {"Bucket": "b", "MaxUploads": 1000, "IsTruncated": False}),
    ("GetObjectAttributes", xml.get_object_attributes(
        ["ETag", "ObjectParts", "ObjectSize"], etag="e-2", size=9,
        parts=xml.AttributeParts(2, 0, 1, 1, True, [xml.AttributePart(1, 4)])),
     {"ETag": "e-2", "ObjectSize": 9,
      "ObjectParts": {"TotalPartsCount": 2, "PartNumberMarker": 0, "NextPartNumberMarker": 1, "MaxParts": 1,
                      "IsTruncated": True, "Parts": [{"PartNumber": 1, "Size": 4}]}}),
    ("DeleteObjects",
     xml.delete_result([("a", None, True, "dm")], [("b", "v", "AccessDenied", "Access Denied")]),
     {"Deleted": [{"Key": "a", "DeleteMarker": True, "DeleteMarkerVersionId": "dm"}],
      "Errors": [{"Key": "b", "VersionId": "v", "Code": "AccessDenied", "Message": "Access Denied"}]}),
    ("CompleteMultipartUpload", xml.complete_multipart_upload("loc", "b", "k", "e-2", {"CRC32": "c"}),
     {"Location": "loc", "ETag": '"e-2"', "ChecksumCRC32": "c"}),
    ("CreateMultipartUpload", xml.initiate_multipart_upload("b", "k", "u"), {"Bucket": "b", "Key": "k",
                                                                             "UploadId": "u"}),
    ("GetBucketVersioning", xml.versioning("Suspended"), {"Status": "Suspended"}),
    ("GetObjectTagging", xml.tagging({"a": "b"}), {"TagSet": [{"Key": "a", "Value": "b"}]}),
    ("GetBucketCors", xml.cors(RULES[1:]),
     {"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]}]}),
    ("GetBucketAcl", xml.acl(OWNER), {"Grants": [{"Grantee": {"ID": "abc123", "DisplayName": "alice",
                                                              "Type": "CanonicalUser"},
                                                  "Permission": "FULL_CONTROL"}]}),
]


@pytest.mark.parametrize(("operation", "body", "expected"), SDK)
def test_botocore_reads_it(operation: str, body: bytes, expected: dict[str, Any]) -> None:
    botocore_session = pytest.importorskip("botocore.session")
    from botocore.parsers import RestXMLParser

    shape = botocore_session.get_session().get_service_model("s3").operation_model(operation).output_shape
    parsed = RestXMLParser().parse({"body": body, "headers": {}, "status_code": 200}, shape)
    assert {name: parsed.get(name) for name in expected} == expected

"""The router as tables: requests in, endpoints (or S3 error codes) out."""

from __future__ import annotations

import inspect
import random

import pytest

from appliance.s3 import endpoints as ep
from appliance.s3.errors import S3Error
from appliance.s3.router import parse

DOMAINS = ("s3.example.com", "example.com")
MD5 = {"content-md5": "1B2M2Y8AsgTpgAEwWGLdbQ=="}
HOST = {"host": "localhost:9000"}
VHOST = {"host": "bucket.s3.example.com:9000"}
COPY = {"x-amz-copy-source": "/src/a%20b?versionId=v1"}
SRC = ep.CopySource("src", "a b", "v1")
LONG_KEY = "k" * 1024

ROUTES: list[tuple[str, str, str, dict[str, str], ep.Endpoint]] = [
    # --- service
    ("GET", "/", "", HOST, ep.ListBuckets()),
    ("GET", "/", "", {"host": "s3.example.com"}, ep.ListBuckets()),
    ("GET", "/", "max-buckets=10&prefix=a&continuation-token=t&bucket-region=eu-west-1", {},
     ep.ListBuckets(prefix="a", continuation_token="t", max_buckets=10, bucket_region="eu-west-1")),
    ("get", "/", "", {}, ep.ListBuckets()),
    # --- buckets, path style
    ("PUT", "/bucket", "", HOST, ep.CreateBucket(bucket="bucket")),
    ("PUT", "/bucket/", "", HOST, ep.CreateBucket(bucket="bucket")),
    ("PUT", "/my.bucket-1", "", {"x-amz-acl": "private", "x-amz-bucket-object-lock-enabled": "True",
                                 "x-amz-object-ownership": "BucketOwnerEnforced"},
     ep.CreateBucket(bucket="my.bucket-1", acl="private", object_lock_enabled=True,
                     object_ownership="BucketOwnerEnforced")),
    ("DELETE", "/bucket", "", HOST, ep.DeleteBucket(bucket="bucket")),
    ("HEAD", "/bucket", "", HOST, ep.HeadBucket(bucket="bucket")),
    ("HEAD", "/bucket/", "", HOST, ep.HeadBucket(bucket="bucket")),
    ("GET", "/bucket", "location", HOST, ep.GetBucketLocation(bucket="bucket")),
    ("GET", "/bucket", "location=", HOST, ep.GetBucketLocation(bucket="bucket")),
    ("GET", "/bucket", "", HOST, ep.ListObjects(bucket="bucket")),
    ("GET", "/bucket", "prefix=a%2Fb&delimiter=%2F&marker=m&max-keys=5&encoding-type=url", HOST,
     ep.ListObjects(bucket="bucket", prefix="a/b", delimiter="/", marker="m", max_keys=5,
                    encoding_type="url")),
    ("GET", "/bucket", "max-keys=5000", HOST, ep.ListObjects(bucket="bucket", max_keys=1000)),
    ("GET", "/bucket", "max-keys=0", HOST, ep.ListObjects(bucket="bucket", max_keys=0)),
    ("GET", "/bucket", "encoding-type=", HOST, ep.ListObjects(bucket="bucket")),
    ("GET", "/bucket", "x-id=ListObjects", HOST, ep.ListObjects(bucket="bucket")),
    ("GET", "/bucket", "list-type=2&prefix=photos/&start-after=x&continuation-token=tok&fetch-owner=true",
     HOST,
     ep.ListObjectsV2(bucket="bucket", prefix="photos/", start_after="x", continuation_token="tok",
                      fetch_owner=True)),
    ("GET", "/bucket", "list-type=2&prefix=a+b", HOST, ep.ListObjectsV2(bucket="bucket", prefix="a b")),
    ("GET", "/bucket", "list-type=2&prefix=a%2Bb", HOST, ep.ListObjectsV2(bucket="bucket", prefix="a+b")),
    ("GET", "/bucket", "list-type=2&prefix=%E2%9C%93&fetch-owner=false", HOST,
     ep.ListObjectsV2(bucket="bucket", prefix="\u2713")),
    ("GET", "/bucket", "list-type=2&max-keys=7&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab", HOST,
     ep.ListObjectsV2(bucket="bucket", max_keys=7)),
    ("GET", "/bucket", "versions&key-marker=k&version-id-marker=v&max-keys=3&delimiter=/", HOST,
     ep.ListObjectVersions(bucket="bucket", key_marker="k", version_id_marker="v", max_keys=3,
                           delimiter="/")),
    ("GET", "/bucket", "versions&prefix=p&encoding-type=url", HOST,
     ep.ListObjectVersions(bucket="bucket", prefix="p", encoding_type="url")),
    ("GET", "/bucket", "uploads&prefix=p&max-uploads=3&key-marker=k&upload-id-marker=u&delimiter=/", HOST,
     ep.ListMultipartUploads(bucket="bucket", prefix="p", max_uploads=3, key_marker="k", upload_id_marker="u",
                             delimiter="/")),
    ("POST", "/bucket", "delete", MD5, ep.DeleteObjects(bucket="bucket")),
    ("POST", "/bucket", "delete=", {"x-amz-checksum-crc32": "AAAAAA=="}, ep.DeleteObjects(bucket="bucket")),
    ("POST", "/bucket", "delete", {"x-amz-sdk-checksum-algorithm": "CRC32"},
     ep.DeleteObjects(bucket="bucket")),
    ("GET", "/bucket", "versioning", HOST, ep.GetBucketVersioning(bucket="bucket")),
    ("PUT", "/bucket", "versioning", HOST, ep.PutBucketVersioning(bucket="bucket")),
    ("GET", "/bucket", "cors", HOST, ep.GetBucketCors(bucket="bucket")),
    ("PUT", "/bucket", "cors", MD5, ep.PutBucketCors(bucket="bucket")),
    ("DELETE", "/bucket", "cors", HOST, ep.DeleteBucketCors(bucket="bucket")),
    ("GET", "/bucket", "tagging", HOST, ep.GetBucketTagging(bucket="bucket")),
    ("PUT", "/bucket", "tagging", MD5, ep.PutBucketTagging(bucket="bucket")),
    ("DELETE", "/bucket", "tagging", HOST, ep.DeleteBucketTagging(bucket="bucket")),
    ("GET", "/bucket", "policy", HOST, ep.GetBucketPolicy(bucket="bucket")),
    ("PUT", "/bucket", "policy", HOST, ep.PutBucketPolicy(bucket="bucket")),
    ("DELETE", "/bucket", "policy", HOST, ep.DeleteBucketPolicy(bucket="bucket")),
    ("GET", "/bucket", "acl", HOST, ep.GetBucketAcl(bucket="bucket")),
    ("PUT", "/bucket", "acl", {"x-amz-acl": "private"}, ep.PutBucketAcl(bucket="bucket", acl="private")),
    ("PUT", "/bucket", "acl", {}, ep.PutBucketAcl(bucket="bucket")),
    ("POST", "/bucket", "", {"content-type": "multipart/form-data; boundary=xyz"},
     ep.PostObject(bucket="bucket", content_type="multipart/form-data; boundary=xyz")),
    # --- buckets, virtual-host style
    ("PUT", "/", "", VHOST, ep.CreateBucket(bucket="bucket")),
    ("GET", "/", "list-type=2", VHOST, ep.ListObjectsV2(bucket="bucket")),
    ("GET", "/", "", {"host": "my.dotted.bucket.s3.example.com"}, ep.ListObjects(bucket="my.dotted.bucket")),
    ("GET", "/", "", {"host": "BUCKET.S3.EXAMPLE.COM"}, ep.ListObjects(bucket="bucket")),
    ("GET", "/", "", {"host": "bucket.s3.example.com.:443"}, ep.ListObjects(bucket="bucket")),
    ("GET", "/", "", {"host": "bucket.example.com"}, ep.ListObjects(bucket="bucket")),
    ("GET", "/bucket", "", {"host": "other.host.org"}, ep.ListObjects(bucket="bucket")),
    ("GET", "/bucket", "", {"host": "[::1]:9000"}, ep.ListObjects(bucket="bucket")),
    # --- objects
    ("PUT", "/bucket/key", "", HOST, ep.PutObject(bucket="bucket", key="key")),
    ("PUT", "/bucket/a//b/", "", HOST, ep.PutObject(bucket="bucket", key="a//b/")),
    ("PUT", "/bucket//", "", HOST, ep.PutObject(bucket="bucket", key="/")),
    ("PUT", "/bucket/a+b", "", HOST, ep.PutObject(bucket="bucket", key="a+b")),
    ("PUT", "/bucket/a%2Bb%20c", "", HOST, ep.PutObject(bucket="bucket", key="a+b c")),
    ("PUT", "/bucket/%E2%9C%93%20x", "", HOST, ep.PutObject(bucket="bucket", key="\u2713 x")),
    ("PUT", "/bucket/caf\u00c3\u00a9", "", HOST, ep.PutObject(bucket="bucket", key="caf\u00e9")),
    ("PUT", "/bucket/\u65e5\u672c", "", HOST, ep.PutObject(bucket="bucket", key="\u65e5\u672c")),
    ("PUT", "/bucket/%3Fq%23%25", "", HOST, ep.PutObject(bucket="bucket", key="?q#%")),
    ("PUT", "/bucket/./../x", "", HOST, ep.PutObject(bucket="bucket", key="./../x")),
    ("PUT", "/bucket/" + LONG_KEY, "", HOST, ep.PutObject(bucket="bucket", key=LONG_KEY)),
    ("PUT", "/key/with/slash", "", VHOST, ep.PutObject(bucket="bucket", key="key/with/slash")),
    ("PUT", "//x", "", VHOST, ep.PutObject(bucket="bucket", key="/x")),
    ("PUT", "/bucket/key", "x-id=PutObject", {"if-none-match": "*", "if-modified-since": "x"},
     ep.PutObject(bucket="bucket", key="key", conditions={"if-none-match": "*"})),
    ("PUT", "/bucket/key", "", COPY, ep.CopyObject(bucket="bucket", key="key", source=SRC)),
    ("PUT", "/bucket/key", "", {"x-amz-copy-source": "src/k%2Fj"},
     ep.CopyObject(bucket="bucket", key="key", source=ep.CopySource("src", "k/j"))),
    ("PUT", "/bucket/key", "", {"x-amz-copy-source": "/bucket/key", "x-amz-metadata-directive": "REPLACE",
                                "x-amz-tagging-directive": "REPLACE", "if-match": '"e"',
                                "x-amz-copy-source-if-none-match": '"s"'},
     ep.CopyObject(bucket="bucket", key="key", source=ep.CopySource("bucket", "key"),
                   metadata_directive="REPLACE", tagging_directive="REPLACE", conditions={"if-match": '"e"'},
                   source_conditions={"x-amz-copy-source-if-none-match": '"s"'})),
    ("PUT", "/bucket/key", "",
     {"x-amz-copy-source": "/bucket/key", "x-amz-storage-class": "REDUCED_REDUNDANCY"},
     ep.CopyObject(bucket="bucket", key="key", source=ep.CopySource("bucket", "key"))),
    ("PUT", "/bucket/key", "", {"x-amz-copy-source": "/bucket/key?versionId=old"},
     ep.CopyObject(bucket="bucket", key="key", source=ep.CopySource("bucket", "key", "old"))),
    ("GET", "/bucket/key", "", HOST, ep.GetObject(bucket="bucket", key="key")),
    ("GET", "/bucket/key",
     "versionId=v&response-content-type=text/plain&response-cache-control=no-cache&other=1",
     {"range": "bytes=0-9", "if-match": '"abc"', "if-modified-since": "Wed, 21 Oct 2015 07:28:00 GMT",
      "x-amz-checksum-mode": "ENABLED"},
     ep.GetObject(bucket="bucket", key="key", version_id="v", range="bytes=0-9",
                  response_overrides={"response-content-type": "text/plain",
                                      "response-cache-control": "no-cache"},
                  checksum_mode=True,
                  conditions={"if-match": '"abc"', "if-modified-since": "Wed, 21 Oct 2015 07:28:00 GMT"})),
    ("GET", "/bucket/key", "partNumber=2", HOST, ep.GetObject(bucket="bucket", key="key", part_number=2)),
    ("GET", "/bucket/key", "", {"range": "bytes=0-1,5-6"}, ep.GetObject(bucket="bucket", key="key",
                                                                        range="bytes=0-1,5-6")),
    ("HEAD", "/bucket/key", "versionId=null&partNumber=1", {"if-none-match": '"x"'},
     ep.HeadObject(bucket="bucket", key="key", version_id="null", part_number=1,
                   conditions={"if-none-match": '"x"'})),
    ("DELETE", "/bucket/key", "versionId=null", {"if-match": '"e"'},
     ep.DeleteObject(bucket="bucket", key="key", version_id="null", conditions={"if-match": '"e"'})),
    ("GET", "/bucket/key", "attributes", {"x-amz-object-attributes": "ETag, ObjectSize",
                                          "x-amz-max-parts": "5", "x-amz-part-number-marker": "2"},
     ep.GetObjectAttributes(bucket="bucket", key="key", attributes=("ETag", "ObjectSize"), max_parts=5,
                            part_number_marker=2)),
    ("GET", "/bucket/key", "tagging&versionId=v", HOST,
     ep.GetObjectTagging(bucket="bucket", key="key", version_id="v")),
    ("PUT", "/bucket/key", "tagging", HOST, ep.PutObjectTagging(bucket="bucket", key="key")),
    ("DELETE", "/bucket/key", "tagging", HOST, ep.DeleteObjectTagging(bucket="bucket", key="key")),
    ("GET", "/bucket/key", "acl", HOST, ep.GetObjectAcl(bucket="bucket", key="key")),
    ("PUT", "/bucket/key", "acl&versionId=v", {"x-amz-acl": "bucket-owner-full-control"},
     ep.PutObjectAcl(bucket="bucket", key="key", version_id="v", acl="bucket-owner-full-control")),
    ("POST", "/bucket/key", "uploads", HOST, ep.CreateMultipartUpload(bucket="bucket", key="key")),
    ("POST", "/bucket/key", "uploads=", HOST, ep.CreateMultipartUpload(bucket="bucket", key="key")),
    ("PUT", "/bucket/key", "partNumber=1&uploadId=u%2B1", HOST,
     ep.UploadPart(bucket="bucket", key="key", upload_id="u+1", part_number=1)),
    ("PUT", "/bucket/key", "uploadId=u&partNumber=10000",
     {**COPY, "x-amz-copy-source-range": "bytes=0-99", "x-amz-copy-source-if-match": '"s"'},
     ep.UploadPartCopy(bucket="bucket", key="key", upload_id="u", part_number=10000, source=SRC,
                       source_range=(0, 99), source_conditions={"x-amz-copy-source-if-match": '"s"'})),
    ("POST", "/bucket/key", "uploadId=u", {"if-none-match": "*"},
     ep.CompleteMultipartUpload(bucket="bucket", key="key", upload_id="u",
                                conditions={"if-none-match": "*"})),
    ("DELETE", "/bucket/key", "uploadId=u", HOST,
     ep.AbortMultipartUpload(bucket="bucket", key="key", upload_id="u")),
    ("GET", "/bucket/key", "uploadId=u&max-parts=2&part-number-marker=3", HOST,
     ep.ListParts(bucket="bucket", key="key", upload_id="u", max_parts=2, part_number_marker=3)),
    ("GET", "/bucket/key", "uploadId=u&max-parts=2000", HOST,
     ep.ListParts(bucket="bucket", key="key", upload_id="u", max_parts=1000)),
    # --- CORS preflight: the query never matters, the request is for the browser
    ("OPTIONS", "/bucket/key", "uploads",
     {"origin": "https://a.example", "access-control-request-method": "POST",
      "access-control-request-headers": "Content-Type, X-Amz-Date"},
     ep.CorsPreflight(bucket="bucket", key="key", origin="https://a.example", method="POST",
                      request_headers=("content-type", "x-amz-date"))),
    ("OPTIONS", "/bucket", "lifecycle", {"origin": "*", "access-control-request-method": "GET"},
     ep.CorsPreflight(bucket="bucket", origin="*", method="GET")),
]


@pytest.mark.parametrize(("method", "path", "query", "headers", "expected"), ROUTES)
def test_route(method: str, path: str, query: str, headers: dict[str, str], expected: ep.Endpoint) -> None:
    assert parse(method, path, query, headers, domains=DOMAINS) == expected


def test_every_operation_has_a_route() -> None:
    operations = {
        cls for _, cls in inspect.getmembers(ep, inspect.isclass)
        if issubclass(cls, ep.Endpoint) and cls not in (ep.Endpoint, ep.ObjectEndpoint)
    }
    assert operations == {type(row[-1]) for row in ROUTES}


@pytest.mark.parametrize(("cls", "operation", "action"), [
    (ep.GetObject, "s3:GetObject", "s3:GetObject"),
    (ep.HeadObject, "s3:HeadObject", "s3:GetObject"),
    (ep.ListObjectsV2, "s3:ListObjectsV2", "s3:ListBucket"),
    (ep.ListBuckets, "s3:ListBuckets", "s3:ListAllMyBuckets"),
    (ep.UploadPart, "s3:UploadPart", "s3:PutObject"),
    (ep.DeleteBucketCors, "s3:DeleteBucketCors", "s3:PutBucketCORS"),
])
def test_operation_names(cls: type[ep.Endpoint], operation: str, action: str) -> None:
    assert (cls.operation, cls.action) == (operation, action)


BAD: list[tuple[str, str, str, dict[str, str], str]] = [
    # sub-resources this server does not implement are never served as a plain GET/PUT
    ("GET", "/bucket", "lifecycle", {}, "NotImplemented"),
    ("PUT", "/bucket", "lifecycle", {}, "NotImplemented"),
    ("PUT", "/bucket", "replication", {}, "NotImplemented"),
    ("GET", "/bucket", "website", {}, "NotImplemented"),
    ("PUT", "/bucket", "object-lock", {}, "NotImplemented"),
    ("GET", "/bucket", "notification", {}, "NotImplemented"),
    ("GET", "/bucket", "logging", {}, "NotImplemented"),
    ("PUT", "/bucket", "encryption", {}, "NotImplemented"),
    ("GET", "/bucket", "accelerate", {}, "NotImplemented"),
    ("GET", "/bucket", "requestPayment", {}, "NotImplemented"),
    ("GET", "/bucket", "ownershipControls", {}, "NotImplemented"),
    ("DELETE", "/bucket", "publicAccessBlock", {}, "NotImplemented"),
    ("GET", "/bucket", "intelligent-tiering&id=x", {}, "NotImplemented"),
    ("GET", "/bucket", "list-type=2&analytics", {}, "NotImplemented"),
    ("GET", "/bucket", "session", {}, "NotImplemented"),
    ("POST", "/bucket/key", "select&select-type=2", {}, "NotImplemented"),
    ("POST", "/bucket/key", "restore", {}, "NotImplemented"),
    ("GET", "/bucket/key", "torrent", {}, "NotImplemented"),
    ("GET", "/bucket/key", "retention", {}, "NotImplemented"),
    ("PUT", "/bucket/key", "legal-hold", {}, "NotImplemented"),
    ("PUT", "/bucket/key", "renameObject", {}, "NotImplemented"),
    # methods and resources that do not go together
    ("PATCH", "/bucket", "", {}, "MethodNotAllowed"),
    ("TRACE", "/", "", {}, "MethodNotAllowed"),
    ("PUT", "/", "", {}, "MethodNotAllowed"),
    ("OPTIONS", "/", "", {"origin": "x", "access-control-request-method": "GET"}, "MethodNotAllowed"),
    ("POST", "/bucket/key", "", {}, "MethodNotAllowed"),
    ("GET", "/bucket/key", "versioning", {}, "MethodNotAllowed"),
    ("GET", "/bucket/key", "uploads", {}, "MethodNotAllowed"),
    ("GET", "/bucket", "uploadId=x", {}, "MethodNotAllowed"),
    ("POST", "/bucket", "uploads", {}, "MethodNotAllowed"),
    ("DELETE", "/bucket", "versioning", {}, "MethodNotAllowed"),
    ("HEAD", "/bucket", "acl", {}, "MethodNotAllowed"),
    # parameters
    ("GET", "/bucket", "max-keys=-1", {}, "InvalidArgument"),
    ("GET", "/bucket", "max-keys=abc", {}, "InvalidArgument"),
    ("GET", "/bucket", "max-keys=", {}, "InvalidArgument"),
    ("GET", "/bucket", "max-keys=%EF%BC%91", {}, "InvalidArgument"),
    ("GET", "/bucket", "list-type=2&max-keys=99999999999", {}, "InvalidArgument"),
    ("GET", "/bucket", "uploads&max-uploads=x", {}, "InvalidArgument"),
    ("GET", "/bucket/key", "uploadId=u&max-parts=-2", {}, "InvalidArgument"),
    ("GET", "/bucket/key", "uploadId=u&part-number-marker=z", {}, "InvalidArgument"),
    ("PUT", "/bucket/key", "uploadId=u&partNumber=0", {}, "InvalidArgument"),
    ("PUT", "/bucket/key", "uploadId=u&partNumber=10001", {}, "InvalidArgument"),
    ("PUT", "/bucket/key", "uploadId=u&partNumber=one", {}, "InvalidArgument"),
    ("PUT", "/bucket/key", "uploadId=u", {}, "InvalidArgument"),
    ("PUT", "/bucket/key", "partNumber=1", {}, "InvalidArgument"),
    ("GET", "/bucket/key", "partNumber=0", {}, "InvalidArgument"),
    ("GET", "/bucket", "encoding-type=xml", {}, "InvalidArgument"),
    ("GET", "/bucket", "list-type=2&encoding-type=URL2", {}, "InvalidArgument"),
    ("GET", "/bucket", "list-type=2&continuation-token=", {}, "InvalidArgument"),
    ("GET", "/bucket", "versions&version-id-marker=v", {}, "InvalidArgument"),
    ("GET", "/bucket/key", "versionId=", {}, "InvalidArgument"),
    ("DELETE", "/bucket/key", "versionId=", {}, "InvalidArgument"),
    ("GET", "/", "max-buckets=0", {}, "InvalidArgument"),
    ("PUT", "/bucket", "", {"x-amz-acl": "everyone"}, "InvalidArgument"),
    ("GET", "/bucket/key", "partNumber=1", {"range": "bytes=0-1"}, "InvalidRequest"),
    ("GET", "/bucket/key", "attributes", {}, "InvalidRequest"),
    ("GET", "/bucket/key", "attributes", {"x-amz-object-attributes": "ETag,Owner"}, "InvalidArgument"),
    # keys and buckets
    ("PUT", "/bucket/" + "k" * 1025, "", {}, "KeyTooLongError"),
    ("PUT", "/bucket/" + "\u00e9" * 513, "", {}, "KeyTooLongError"),
    ("PUT", "/ab", "", {}, "InvalidBucketName"),
    ("PUT", "/Bucket", "", {}, "InvalidBucketName"),
    ("PUT", "/bucket_1", "", {}, "InvalidBucketName"),
    ("PUT", "/192.168.1.1", "", {}, "InvalidBucketName"),
    ("GET", "/Bucket", "", {}, "NoSuchBucket"),
    ("GET", "/my_bucket/key", "", {}, "NoSuchBucket"),
    ("HEAD", "/ab", "", {}, "NoSuchBucket"),
    ("GET", "/bad!name", "", {}, "InvalidBucketName"),
    ("GET", "/..", "", {}, "InvalidBucketName"),
    ("GET", "/%2E%2E/key", "", {}, "InvalidBucketName"),
    ("GET", "//key", "", {}, "InvalidBucketName"),
    ("GET", "/" + "a" * 256, "", {}, "InvalidBucketName"),
    ("GET", "/bucket/%FF", "", {}, "InvalidURI"),
    ("GET", "bucket/key", "", {}, "InvalidURI"),
    ("GET", "/bucket", "prefix=%FF", {}, "InvalidURI"),
    # copy sources
    ("PUT", "/bucket/key", "", {"x-amz-copy-source": "nokey"}, "InvalidArgument"),
    ("PUT", "/bucket/key", "", {"x-amz-copy-source": "/src/"}, "InvalidArgument"),
    ("PUT", "/bucket/key", "", {"x-amz-copy-source": "/src/k?versionId="}, "InvalidArgument"),
    ("PUT", "/bucket/key", "", {"x-amz-copy-source": "/Src_Bucket/k"}, "NoSuchBucket"),
    ("PUT", "/bucket/key", "", {"x-amz-copy-source": "/src/" + "k" * 1025}, "KeyTooLongError"),
    ("PUT", "/bucket/key", "", {"x-amz-copy-source": "/bucket/key"}, "InvalidRequest"),
    ("PUT", "/bucket/key", "", {"x-amz-copy-source": "/bucket/key", "x-amz-tagging-directive": "REPLACE"},
     "InvalidRequest"),
    ("PUT", "/bucket/key", "", {**COPY, "x-amz-metadata-directive": "MOVE"}, "InvalidArgument"),
    ("PUT", "/bucket/key", "", {**COPY, "x-amz-tagging-directive": "copy"}, "InvalidArgument"),
    ("PUT", "/bucket/key", "uploadId=u&partNumber=1", {**COPY, "x-amz-copy-source-range": "bytes=5-1"},
     "InvalidArgument"),
    ("PUT", "/bucket/key", "uploadId=u&partNumber=1", {**COPY, "x-amz-copy-source-range": "bytes=5-"},
     "InvalidArgument"),
    # integrity headers S3 requires
    ("POST", "/bucket", "delete", {}, "InvalidRequest"),
    ("PUT", "/bucket", "cors", {}, "InvalidRequest"),
    ("PUT", "/bucket", "tagging", {}, "InvalidRequest"),
    # browser forms and preflights
    ("POST", "/bucket", "", {"content-type": "application/xml"}, "PreconditionFailed"),
    ("POST", "/bucket", "", {}, "PreconditionFailed"),
    ("OPTIONS", "/bucket/key", "", {"access-control-request-method": "GET"}, "BadRequest"),
    ("OPTIONS", "/bucket/key", "", {"origin": "https://a.example"}, "BadRequest"),
]


@pytest.mark.parametrize(("method", "path", "query", "headers", "code"), BAD)
def test_bad_request(method: str, path: str, query: str, headers: dict[str, str], code: str) -> None:
    with pytest.raises(S3Error) as info:
        parse(method, path, query, headers, domains=DOMAINS)
    assert info.value.code == code


@pytest.mark.parametrize(("query", "name"), [
    ("max-keys=-1", "max-keys"),
    ("encoding-type=xml", "encoding-type"),
    ("versions&version-id-marker=v", "version-id-marker"),
])
def test_invalid_argument_names_the_argument(query: str, name: str) -> None:
    with pytest.raises(S3Error) as info:
        parse("GET", "/bucket", query, {})
    assert info.value.extra["ArgumentName"] == name


def test_no_such_bucket_names_the_bucket() -> None:
    with pytest.raises(S3Error) as info:
        parse("GET", "/Legacy_Bucket/k", "", {})
    assert (info.value.status, info.value.extra["BucketName"]) == (404, "Legacy_Bucket")


def test_fuzz_only_s3_errors() -> None:
    """Whatever arrives, the router answers with an endpoint or an S3 error, never a crash."""
    rng = random.Random(1234)
    alphabet = ["/", "%", "%2F", "%FF", "%C3%A9", "?", "&", "=", "+", "a", "B", "_", ".", "-", "..",
                "\u00e9", "\u65e5", " ", "uploads", "uploadId", "partNumber", "versionId", "acl", "tagging",
                "list-type", "2", "max-keys", "lifecycle", "delete", "1", "0"]
    headers: list[dict[str, str]] = [
        {}, {"host": "b.s3.example.com"}, {"x-amz-copy-source": "/s%2/k?versionId"}, {"range": "bytes=1-"},
        {"origin": "o", "access-control-request-method": "PUT"}, {"content-type": "multipart/form-data"},
        {"x-amz-copy-source-range": "bytes=1-x", "x-amz-copy-source": "a/b"},
    ]
    for _ in range(5000):
        path = "/" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        query = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        method = rng.choice(["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH"])
        try:
            endpoint = parse(method, path, query, rng.choice(headers), domains=DOMAINS)
        except S3Error:
            continue
        assert isinstance(endpoint, ep.Endpoint)

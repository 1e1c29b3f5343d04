"""The sans-IO S3 router: (method, path, query, headers) in, one typed endpoint out.

Contract: `parse` decides which S3 operation a request is and validates its parameters, or raises
the `S3Error` AWS would send; it touches no socket, file or clock. The bucket comes from the
virtual host (`Host: <bucket>.<domain>` for a configured domain) or else from the first path
segment; the key is the rest of the path, percent-decoded exactly (`//`, a trailing `/` and `+`
are kept as sent). The query is decoded with the form rules (`+` is a space), as S3 does.
A sub-resource this server does not implement is `NotImplemented`, never served as a plain
GET or PUT; a known sub-resource used with the wrong method or on the wrong kind of resource
is `MethodNotAllowed`. Unknown query parameters (`x-id`, presigned-URL fields) are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_to_bytes

from appliance.s3 import endpoints as ep
from appliance.s3.conditions import COPY_SOURCE_HEADERS, READ_HEADERS
from appliance.s3.errors import S3Error
from appliance.s3.names import validate_bucket_name, validate_bucket_reference, validate_key
from appliance.s3.ranges import parse_copy_source_range

METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS"})

# Sub-resources of the S3 API that this server does not serve.
UNIMPLEMENTED = frozenset({
    "abac", "accelerate", "analytics", "annotation", "encryption", "intelligent-tiering", "inventory",
    "legal-hold", "lifecycle", "logging", "metadataAnnotationTable", "metadataConfiguration",
    "metadataInventoryTable", "metadataJournalTable", "metadataTable", "metrics", "notification",
    "object-lock", "ownershipControls", "policyStatus", "publicAccessBlock", "renameObject", "replication",
    "requestPayment", "restore", "retention", "select", "select-type", "session", "torrent", "website",
})
# Implemented sub-resources, in the order that decides when a request names several.
SUBRESOURCES = (
    "uploadId", "uploads", "versions", "versioning", "location", "cors", "tagging", "policy", "acl",
    "attributes", "delete",
)

RESPONSE_OVERRIDES = (
    "response-content-type", "response-content-language", "response-expires", "response-cache-control",
    "response-content-disposition", "response-content-encoding",
)
CANNED_ACLS = frozenset({
    "private", "public-read", "public-read-write", "authenticated-read", "aws-exec-read", "bucket-owner-read",
    "bucket-owner-full-control", "log-delivery-write",
})
OBJECT_ATTRIBUTES = frozenset({"ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"})
MAX_LIST = 1000
MAX_BUCKETS = 10000
MAX_INT32 = 2**31 - 1
MAX_PART_NUMBER = 10000
# Bytes of request header section S3 accepts (names, values, ": " and CRLF), user metadata included.
MAX_HEADER_SECTION = 8 * 1024
# A copy onto itself must change one of these, or S3 refuses it as a no-op.
_COPY_CHANGES = (
    "x-amz-storage-class", "x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-customer-algorithm", "x-amz-website-redirect-location",
    "x-amz-checksum-algorithm",
)
_DELETE_CONDITIONS = ("if-match", "x-amz-if-match-last-modified-time", "x-amz-if-match-size")
_WRITE_CONDITIONS = ("if-match", "if-none-match")


@dataclass(frozen=True)
class Request:
    """What the route builders see: the addressed resource and the decoded request."""

    method: str
    bucket: str
    key: str
    query: Mapping[str, str]
    headers: Mapping[str, str]


Route = Callable[[Request], ep.Endpoint]


def parse(
    method: str, raw_path: str, query_string: str, headers: Mapping[str, str], *, domains: Sequence[str] = ()
) -> ep.Endpoint:
    """The endpoint of one request. `raw_path` is percent-encoded as sent, without the query;
    `headers` have lower-case names."""
    method = method.upper()
    if sum(len(name) + len(value) + 4 for name, value in headers.items()) > MAX_HEADER_SECTION:
        raise S3Error("RequestHeaderSectionTooLarge", MaxSizeAllowed=str(MAX_HEADER_SECTION))
    if method not in METHODS:
        raise S3Error("MethodNotAllowed", Method=method, ResourceType="SERVICE")
    bucket, key = _locate(raw_path, headers.get("host", ""), domains)
    req = Request(method, bucket, key, _parse_query(query_string), headers)
    if not bucket:
        if key:
            raise S3Error("InvalidBucketName", BucketName="")
        return _service(req)
    if method == "PUT" and not key and _subresource(req.query) is None:
        validate_bucket_name(bucket)
    else:
        validate_bucket_reference(bucket)
    if key:
        validate_key(key)
    if method == "OPTIONS":
        return _preflight(req)
    sub = _subresource(req.query)
    table = OBJECT_ROUTES if key else BUCKET_ROUTES
    build = table.get((method, sub))
    if build is None:
        raise S3Error("MethodNotAllowed", Method=method, ResourceType="OBJECT" if key else "BUCKET")
    return build(req)


# --- decoding -----------------------------------------------------------------------------------


def _wire_bytes(text: str) -> bytes:
    """The bytes a request line carried. ASGI servers hand them over decoded as latin-1; a caller
    that passes real unicode instead is taken as UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode()


def _percent_decode(text: str) -> str:
    try:
        return unquote_to_bytes(_wire_bytes(text)).decode()
    except UnicodeDecodeError:
        # Unicode characters that happen to fit latin-1 ("é") came from a caller passing real text.
        pass
    try:
        return unquote_to_bytes(text.encode()).decode()
    except UnicodeDecodeError:
        raise S3Error("InvalidURI") from None


def _parse_query(query_string: str) -> dict[str, str]:
    try:
        text = _wire_bytes(query_string).decode()
    except UnicodeDecodeError:
        text = query_string
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI") from None
    query: dict[str, str] = {}
    for name, value in pairs:
        query.setdefault(name, value)
    return query


def _host_bucket(host: str, domains: Sequence[str]) -> str | None:
    """The bucket named by a virtual-host `Host`, or None for a path-style request."""
    host = host.strip().lower()
    if not host or host.startswith("["):
        return None
    name, _, port = host.rpartition(":")
    if name and port.isdigit():
        host = name
    host = host.rstrip(".")
    names = [d.strip().strip(".").lower() for d in domains]
    if host in names:
        return None
    # The longest matching domain wins: with "example.com" and "s3.example.com" both configured,
    # "b.s3.example.com" is bucket "b", not bucket "b.s3".
    best: str | None = None
    best_len = -1
    for domain in names:
        if domain and host.endswith("." + domain) and len(domain) > best_len:
            best, best_len = host[: -len(domain) - 1], len(domain)
    return best


def _locate(raw_path: str, host: str, domains: Sequence[str]) -> tuple[str, str]:
    """(bucket, key) addressed by the request; "" for absent parts."""
    if not raw_path.startswith("/"):
        raise S3Error("InvalidURI")
    path = _percent_decode(raw_path)
    bucket = _host_bucket(host, domains)
    if bucket is not None:
        return bucket, path[1:]
    bucket, _, key = path[1:].partition("/")
    return bucket, key


def _subresource(query: Mapping[str, str]) -> str | None:
    unimplemented = UNIMPLEMENTED.intersection(query)
    if unimplemented:
        name = min(unimplemented)
        raise S3Error("NotImplemented", f"The '{name}' sub-resource is not implemented by this server.")
    for name in SUBRESOURCES:
        if name in query:
            return name
    return None


# --- parameters ---------------------------------------------------------------------------------


def _invalid(name: str, value: str, message: str) -> S3Error:
    return S3Error("InvalidArgument", message, ArgumentName=name, ArgumentValue=value)


def _count(query: Mapping[str, str], name: str, *, cap: int = MAX_LIST) -> int:
    """A max-keys style limit: a non-negative integer, silently capped as S3 does."""
    value = query.get(name)
    if value is None:
        return cap
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_INT32:
        raise _invalid(name, value, f"Argument {name} must be an integer between 0 and {MAX_INT32}")
    return min(int(value), cap)


def _marker_number(value: str | None, name: str) -> int:
    if value is None or value == "":
        return 0
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_INT32:
        raise _invalid(name, value, f"Argument {name} must be an integer between 0 and {MAX_INT32}")
    return int(value)


def _part_number(value: str | None) -> int:
    if value is None or not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_PART_NUMBER:
        raise _invalid("partNumber", value or "",
                       f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive")
    return int(value)


def _encoding_type(query: Mapping[str, str]) -> str:
    value = query.get("encoding-type", "")
    if value not in ("", "url"):
        raise _invalid("encoding-type", value, "Invalid Encoding Method specified in Request")
    return value


def _version_id(query: Mapping[str, str]) -> str | None:
    value = query.get("versionId")
    if value == "":
        raise _invalid("versionId", value, "Version id cannot be the empty string")
    return value


def _acl(headers: Mapping[str, str]) -> str | None:
    value = headers.get("x-amz-acl")
    if value is not None and value not in CANNED_ACLS:
        raise _invalid("x-amz-acl", value, "Invalid canned ACL")
    return value


def _pick(headers: Mapping[str, str], names: Sequence[str]) -> dict[str, str]:
    return {name: headers[name] for name in names if name in headers}


def _directive(headers: Mapping[str, str], name: str, kind: str) -> str:
    value = headers.get(name, "COPY")
    if value not in ("COPY", "REPLACE"):
        raise _invalid(name, value, f"Unknown {kind} directive.")
    return value


def _copy_source(headers: Mapping[str, str]) -> ep.CopySource:
    raw = headers["x-amz-copy-source"]
    path, has_query, query = raw.partition("?")
    decoded = _percent_decode(path)
    bucket, _, key = decoded.removeprefix("/").partition("/")
    if not bucket or not key:
        raise _invalid("x-amz-copy-source", raw,
                       "Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
    version_id = _version_id(_parse_query(query)) if has_query else None
    validate_bucket_reference(bucket)
    validate_key(key)
    return ep.CopySource(bucket, key, version_id)


def _require_checksum(req: Request) -> None:
    """S3 refuses these bodies without an integrity check (Content-MD5 or an x-amz-checksum)."""
    headers = req.headers
    if "content-md5" in headers or "x-amz-sdk-checksum-algorithm" in headers:
        return
    if any(name.startswith("x-amz-checksum-") for name in headers):
        return
    if "x-amz-checksum-" in headers.get("x-amz-trailer", "").lower():
        return
    raise S3Error("InvalidRequest",
                  "Missing required header for this request: Content-MD5 or x-amz-checksum-*")


# --- service and preflight ----------------------------------------------------------------------


def _service(req: Request) -> ep.Endpoint:
    if req.method != "GET":
        raise S3Error("MethodNotAllowed", Method=req.method, ResourceType="SERVICE")
    q = req.query
    max_buckets = None
    if "max-buckets" in q:
        value = q["max-buckets"]
        if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_BUCKETS:
            raise _invalid("max-buckets", value,
                           f"Argument max-buckets must be an integer between 1 and {MAX_BUCKETS}")
        max_buckets = int(value)
    return ep.ListBuckets(
        prefix=q.get("prefix", ""), continuation_token=q.get("continuation-token", ""),
        max_buckets=max_buckets, bucket_region=q.get("bucket-region", ""),
    )


def _preflight(req: Request) -> ep.CorsPreflight:
    origin = req.headers.get("origin")
    if not origin:
        raise S3Error("BadRequest", "Insufficient information. Origin request header needed.")
    method = req.headers.get("access-control-request-method")
    if not method:
        raise S3Error("BadRequest",
                      "Insufficient information. Access-Control-Request-Method request header needed.")
    requested = req.headers.get("access-control-request-headers", "")
    names = tuple(name.strip().lower() for name in requested.split(",") if name.strip())
    return ep.CorsPreflight(bucket=req.bucket, key=req.key, origin=origin, method=method,
                            request_headers=names)


# --- buckets ------------------------------------------------------------------------------------


def _create_bucket(req: Request) -> ep.Endpoint:
    lock = req.headers.get("x-amz-bucket-object-lock-enabled", "").lower() == "true"
    return ep.CreateBucket(bucket=req.bucket, acl=_acl(req.headers), object_lock_enabled=lock,
                           object_ownership=req.headers.get("x-amz-object-ownership"))


def _list_objects(req: Request) -> ep.Endpoint:
    q = req.query
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    max_keys, encoding_type = _count(q, "max-keys"), _encoding_type(q)
    if q.get("list-type") == "2":
        token = q.get("continuation-token")
        if token == "":
            raise _invalid("continuation-token", token, "The continuation token provided is incorrect")
        return ep.ListObjectsV2(
            bucket=req.bucket, prefix=prefix, delimiter=delimiter, max_keys=max_keys,
            encoding_type=encoding_type, start_after=q.get("start-after", ""), continuation_token=token or "",
            fetch_owner=q.get("fetch-owner", "").lower() == "true",
        )
    return ep.ListObjects(bucket=req.bucket, prefix=prefix, delimiter=delimiter, max_keys=max_keys,
                          encoding_type=encoding_type, marker=q.get("marker", ""))


def _list_object_versions(req: Request) -> ep.Endpoint:
    q = req.query
    key_marker = q.get("key-marker", "")
    version_marker = q.get("version-id-marker", "")
    if version_marker and not key_marker:
        raise _invalid("version-id-marker", version_marker,
                       "A version-id marker cannot be specified without a key marker.")
    return ep.ListObjectVersions(
        bucket=req.bucket, prefix=q.get("prefix", ""), delimiter=q.get("delimiter", ""),
        key_marker=key_marker, version_id_marker=version_marker, max_keys=_count(q, "max-keys"),
        encoding_type=_encoding_type(q),
    )


def _list_multipart_uploads(req: Request) -> ep.Endpoint:
    q = req.query
    return ep.ListMultipartUploads(
        bucket=req.bucket, prefix=q.get("prefix", ""), delimiter=q.get("delimiter", ""),
        key_marker=q.get("key-marker", ""), upload_id_marker=q.get("upload-id-marker", ""),
        max_uploads=_count(q, "max-uploads"), encoding_type=_encoding_type(q),
    )


def _delete_objects(req: Request) -> ep.Endpoint:
    _require_checksum(req)
    return ep.DeleteObjects(bucket=req.bucket)


def _post_bucket(req: Request) -> ep.Endpoint:
    content_type = req.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise S3Error("PreconditionFailed",
                      Condition="Bucket POST must be of the enclosure-type multipart/form-data")
    return ep.PostObject(bucket=req.bucket, content_type=content_type)


def _bucket_only(cls: Callable[..., ep.Endpoint], *, checksum: bool = False) -> Route:
    def build(req: Request) -> ep.Endpoint:
        if checksum:
            _require_checksum(req)
        return cls(bucket=req.bucket)

    return build


def _put_bucket_acl(req: Request) -> ep.Endpoint:
    return ep.PutBucketAcl(bucket=req.bucket, acl=_acl(req.headers))


BUCKET_ROUTES: dict[tuple[str, str | None], Route] = {
    ("GET", None): _list_objects,
    ("GET", "versions"): _list_object_versions,
    ("GET", "uploads"): _list_multipart_uploads,
    ("GET", "location"): _bucket_only(ep.GetBucketLocation),
    ("GET", "versioning"): _bucket_only(ep.GetBucketVersioning),
    ("GET", "cors"): _bucket_only(ep.GetBucketCors),
    ("GET", "tagging"): _bucket_only(ep.GetBucketTagging),
    ("GET", "policy"): _bucket_only(ep.GetBucketPolicy),
    ("GET", "acl"): _bucket_only(ep.GetBucketAcl),
    ("HEAD", None): _bucket_only(ep.HeadBucket),
    ("PUT", None): _create_bucket,
    ("PUT", "versioning"): _bucket_only(ep.PutBucketVersioning),
    ("PUT", "cors"): _bucket_only(ep.PutBucketCors, checksum=True),
    ("PUT", "tagging"): _bucket_only(ep.PutBucketTagging, checksum=True),
    ("PUT", "policy"): _bucket_only(ep.PutBucketPolicy),
    ("PUT", "acl"): _put_bucket_acl,
    ("DELETE", None): _bucket_only(ep.DeleteBucket),
    ("DELETE", "cors"): _bucket_only(ep.DeleteBucketCors),
    ("DELETE", "tagging"): _bucket_only(ep.DeleteBucketTagging),
    ("DELETE", "policy"): _bucket_only(ep.DeleteBucketPolicy),
    ("POST", None): _post_bucket,
    ("POST", "delete"): _delete_objects,
}


# --- objects ------------------------------------------------------------------------------------


def _read_object(req: Request) -> ep.Endpoint:
    q, headers = req.query, req.headers
    part_number = _part_number(q["partNumber"]) if "partNumber" in q else None
    byte_range = headers.get("range")
    if part_number is not None and byte_range is not None:
        raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber query parameter.")
    cls = ep.GetObject if req.method == "GET" else ep.HeadObject
    return cls(
        bucket=req.bucket, key=req.key, version_id=_version_id(q), range=byte_range, part_number=part_number,
        response_overrides={name: q[name] for name in RESPONSE_OVERRIDES if name in q},
        checksum_mode=headers.get("x-amz-checksum-mode", "").upper() == "ENABLED",
        conditions=_pick(headers, READ_HEADERS),
    )


def _put_object(req: Request) -> ep.Endpoint:
    if "partNumber" in req.query:
        raise _invalid("uploadId", "", "A partNumber needs the uploadId of a multipart upload")
    if "x-amz-copy-source" not in req.headers:
        return ep.PutObject(bucket=req.bucket, key=req.key, conditions=_pick(req.headers, _WRITE_CONDITIONS))
    headers = req.headers
    source = _copy_source(headers)
    metadata_directive = _directive(headers, "x-amz-metadata-directive", "metadata")
    tagging_directive = _directive(headers, "x-amz-tagging-directive", "tagging")
    to_itself = (source.bucket, source.key, source.version_id) == (req.bucket, req.key, None)
    if to_itself and metadata_directive == "COPY" and not any(name in headers for name in _COPY_CHANGES):
        raise S3Error(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself without changing "
            "the object's metadata, storage class, website redirect location or encryption attributes.",
        )
    return ep.CopyObject(
        bucket=req.bucket, key=req.key, source=source, metadata_directive=metadata_directive,
        tagging_directive=tagging_directive, conditions=_pick(headers, _WRITE_CONDITIONS),
        source_conditions=_pick(headers, COPY_SOURCE_HEADERS),
    )


def _upload_part(req: Request) -> ep.Endpoint:
    q, headers = req.query, req.headers
    part_number = _part_number(q.get("partNumber"))
    upload_id = q["uploadId"]
    if "x-amz-copy-source" not in headers:
        return ep.UploadPart(bucket=req.bucket, key=req.key, upload_id=upload_id, part_number=part_number)
    source_range = headers.get("x-amz-copy-source-range")
    return ep.UploadPartCopy(
        bucket=req.bucket, key=req.key, upload_id=upload_id, part_number=part_number,
        source=_copy_source(headers),
        source_range=parse_copy_source_range(source_range) if source_range is not None else None,
        source_conditions=_pick(headers, COPY_SOURCE_HEADERS),
    )


def _get_object_attributes(req: Request) -> ep.Endpoint:
    headers = req.headers
    raw = headers.get("x-amz-object-attributes", "")
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    if not names:
        raise S3Error("InvalidRequest", "The x-amz-object-attributes header specifying the attributes to be "
                                        "retrieved is either missing or empty")
    for name in names:
        if name not in OBJECT_ATTRIBUTES:
            raise _invalid("x-amz-object-attributes", name, "Invalid attribute name specified.")
    return ep.GetObjectAttributes(
        bucket=req.bucket, key=req.key, version_id=_version_id(req.query), attributes=names,
        max_parts=_count(headers, "x-amz-max-parts"),
        part_number_marker=_marker_number(headers.get("x-amz-part-number-marker"),
                                          "x-amz-part-number-marker"),
    )


def _versioned(cls: Callable[..., ep.Endpoint]) -> Route:
    def build(req: Request) -> ep.Endpoint:
        return cls(bucket=req.bucket, key=req.key, version_id=_version_id(req.query))

    return build


def _put_object_acl(req: Request) -> ep.Endpoint:
    return ep.PutObjectAcl(bucket=req.bucket, key=req.key, version_id=_version_id(req.query),
                           acl=_acl(req.headers))


def _delete_object(req: Request) -> ep.Endpoint:
    return ep.DeleteObject(bucket=req.bucket, key=req.key, version_id=_version_id(req.query),
                           conditions=_pick(req.headers, _DELETE_CONDITIONS))


def _create_multipart_upload(req: Request) -> ep.Endpoint:
    return ep.CreateMultipartUpload(bucket=req.bucket, key=req.key)


def _complete_multipart_upload(req: Request) -> ep.Endpoint:
    return ep.CompleteMultipartUpload(bucket=req.bucket, key=req.key, upload_id=req.query["uploadId"],
                                      conditions=_pick(req.headers, _WRITE_CONDITIONS))


def _abort_multipart_upload(req: Request) -> ep.Endpoint:
    return ep.AbortMultipartUpload(bucket=req.bucket, key=req.key, upload_id=req.query["uploadId"])


def _list_parts(req: Request) -> ep.Endpoint:
    q = req.query
    return ep.ListParts(
        bucket=req.bucket, key=req.key, upload_id=q["uploadId"], max_parts=_count(q, "max-parts"),
        part_number_marker=_marker_number(q.get("part-number-marker"), "part-number-marker"),
    )


OBJECT_ROUTES: dict[tuple[str, str | None], Route] = {
    ("GET", None): _read_object,
    ("HEAD", None): _read_object,
    ("GET", "uploadId"): _list_parts,
    ("GET", "acl"): _versioned(ep.GetObjectAcl),
    ("GET", "tagging"): _versioned(ep.GetObjectTagging),
    ("GET", "attributes"): _get_object_attributes,
    ("PUT", None): _put_object,
    ("PUT", "uploadId"): _upload_part,
    ("PUT", "acl"): _put_object_acl,
    ("PUT", "tagging"): _versioned(ep.PutObjectTagging),
    ("DELETE", None): _delete_object,
    ("DELETE", "uploadId"): _abort_multipart_upload,
    ("DELETE", "tagging"): _versioned(ep.DeleteObjectTagging),
    ("POST", "uploads"): _create_multipart_upload,
    ("POST", "uploadId"): _complete_multipart_upload,
}

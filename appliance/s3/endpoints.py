"""The typed endpoints of the S3 API: what a request asks for, once the router has parsed it.

Contract: one frozen dataclass per S3 operation, named after the AWS operation, holding only
parameters the router has already decoded and validated (a handler never re-parses the path or
the query). Every endpoint has `bucket` ("" only for ListBuckets); object endpoints also have
`key`. `operation` ("s3:GetObject") names the operation for metrics and logs; `action` is the IAM
action a policy grants for it (HeadObject needs "s3:GetObject", ListObjectsV2 "s3:ListBucket").
Request headers that only a handler consumes (metadata, checksums, content type) stay in the
request; conditional headers an operation honours are copied here raw, and `conditions.py`
evaluates them once the current object is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    bucket: str
    operation: ClassVar[str] = "s3:"
    action: ClassVar[str] = "s3:"

    def __init_subclass__(cls, *, action: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.operation = "s3:" + cls.__name__
        cls.action = action or cls.operation


@dataclass(frozen=True, kw_only=True)
class ObjectEndpoint(Endpoint):
    key: str


@dataclass(frozen=True)
class CopySource:
    """The decoded `x-amz-copy-source`: bucket, key and optional version."""

    bucket: str
    key: str
    version_id: str | None = None


def _no_headers() -> Mapping[str, str]:
    return {}


# --- service ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ListBuckets(Endpoint, action="s3:ListAllMyBuckets"):
    bucket: str = ""
    prefix: str = ""
    continuation_token: str = ""
    max_buckets: int | None = None
    bucket_region: str = ""


# --- buckets ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CreateBucket(Endpoint):
    acl: str | None = None
    object_lock_enabled: bool = False
    object_ownership: str | None = None


@dataclass(frozen=True, kw_only=True)
class DeleteBucket(Endpoint):
    pass


@dataclass(frozen=True, kw_only=True)
class HeadBucket(Endpoint, action="s3:ListBucket"):
    pass


@dataclass(frozen=True, kw_only=True)
class GetBucketLocation(Endpoint):
    pass


@dataclass(frozen=True, kw_only=True)
class ListObjects(Endpoint, action="s3:ListBucket"):
    prefix: str = ""
    delimiter: str = ""
    marker: str = ""
    max_keys: int = 1000
    encoding_type: str = ""


@dataclass(frozen=True, kw_only=True)
class ListObjectsV2(Endpoint, action="s3:ListBucket"):
    prefix: str = ""
    delimiter: str = ""
    max_keys: int = 1000
    start_after: str = ""
    continuation_token: str = ""
    fetch_owner: bool = False
    encoding_type: str = ""


@dataclass(frozen=True, kw_only=True)
class ListObjectVersions(Endpoint, action="s3:ListBucketVersions"):
    prefix: str = ""
    delimiter: str = ""
    key_marker: str = ""
    version_id_marker: str = ""
    max_keys: int = 1000
    encoding_type: str = ""


@dataclass(frozen=True, kw_only=True)
class ListMultipartUploads(Endpoint, action="s3:ListBucketMultipartUploads"):
    prefix: str = ""
    delimiter: str = ""
    key_marker: str = ""
    upload_id_marker: str = ""
    max_uploads: int = 1000
    encoding_type: str = ""


@dataclass(frozen=True, kw_only=True)
class DeleteObjects(Endpoint, action="s3:DeleteObject"):
    pass


@dataclass(frozen=True, kw_only=True)
class GetBucketVersioning(Endpoint):
    pass


@dataclass(frozen=True, kw_only=True)
class PutBucketVersioning(Endpoint):
    pass


@dataclass(frozen=True, kw_only=True)
class GetBucketCors(Endpoint, action="s3:GetBucketCORS"):
    pass


@dataclass(frozen=True, kw_only=True)
class PutBucketCors(Endpoint, action="s3:PutBucketCORS"):
    pass


@dataclass(frozen=True, kw_only=True)
class DeleteBucketCors(Endpoint, action="s3:PutBucketCORS"):
    pass


@dataclass(frozen=True, kw_only=True)
class GetBucketTagging(Endpoint):
    pass


@dataclass(frozen=True, kw_only=True)
class PutBucketTagging(Endpoint):
    pass


@dataclass(frozen=True, kw_only=True)
class DeleteBucketTagging(Endpoint, action="s3:PutBucketTagging"):
    pass


@dataclass(frozen=True, kw_only=True)
class GetBucketPolicy(Endpoint):
    pass


@dataclass(frozen=True, kw_only=True)
class PutBucketPolicy(Endpoint):
    pass


@dataclass(frozen=True, kw_only=True)
class DeleteBucketPolicy(Endpoint):
    pass


@dataclass(frozen=True, kw_only=True)
class GetBucketAcl(Endpoint):
    pass


@dataclass(frozen=True, kw_only=True)
class PutBucketAcl(Endpoint):
    acl: str | None = None


@dataclass(frozen=True, kw_only=True)
class PostObject(Endpoint, action="s3:PutObject"):
    """A browser-form upload; the key and fields are in the multipart/form-data body."""

    content_type: str


# --- objects ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PutObject(ObjectEndpoint):
    conditions: Mapping[str, str] = field(default_factory=_no_headers)


@dataclass(frozen=True, kw_only=True)
class CopyObject(ObjectEndpoint, action="s3:PutObject"):
    source: CopySource
    metadata_directive: str = "COPY"
    tagging_directive: str = "COPY"
    conditions: Mapping[str, str] = field(default_factory=_no_headers)
    source_conditions: Mapping[str, str] = field(default_factory=_no_headers)


@dataclass(frozen=True, kw_only=True)
class GetObject(ObjectEndpoint):
    version_id: str | None = None
    range: str | None = None
    part_number: int | None = None
    response_overrides: Mapping[str, str] = field(default_factory=_no_headers)
    checksum_mode: bool = False
    conditions: Mapping[str, str] = field(default_factory=_no_headers)


@dataclass(frozen=True, kw_only=True)
class HeadObject(ObjectEndpoint, action="s3:GetObject"):
    version_id: str | None = None
    range: str | None = None
    part_number: int | None = None
    response_overrides: Mapping[str, str] = field(default_factory=_no_headers)
    checksum_mode: bool = False
    conditions: Mapping[str, str] = field(default_factory=_no_headers)


@dataclass(frozen=True, kw_only=True)
class DeleteObject(ObjectEndpoint):
    version_id: str | None = None
    conditions: Mapping[str, str] = field(default_factory=_no_headers)


@dataclass(frozen=True, kw_only=True)
class GetObjectAttributes(ObjectEndpoint):
    version_id: str | None = None
    attributes: tuple[str, ...] = ()
    max_parts: int = 1000
    part_number_marker: int = 0


@dataclass(frozen=True, kw_only=True)
class GetObjectTagging(ObjectEndpoint):
    version_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class PutObjectTagging(ObjectEndpoint):
    version_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class DeleteObjectTagging(ObjectEndpoint):
    version_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class GetObjectAcl(ObjectEndpoint):
    version_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class PutObjectAcl(ObjectEndpoint):
    version_id: str | None = None
    acl: str | None = None


@dataclass(frozen=True, kw_only=True)
class CreateMultipartUpload(ObjectEndpoint, action="s3:PutObject"):
    pass


@dataclass(frozen=True, kw_only=True)
class UploadPart(ObjectEndpoint, action="s3:PutObject"):
    upload_id: str
    part_number: int


@dataclass(frozen=True, kw_only=True)
class UploadPartCopy(ObjectEndpoint, action="s3:PutObject"):
    upload_id: str
    part_number: int
    source: CopySource
    source_range: tuple[int, int] | None = None
    source_conditions: Mapping[str, str] = field(default_factory=_no_headers)


@dataclass(frozen=True, kw_only=True)
class CompleteMultipartUpload(ObjectEndpoint, action="s3:PutObject"):
    upload_id: str
    conditions: Mapping[str, str] = field(default_factory=_no_headers)


@dataclass(frozen=True, kw_only=True)
class AbortMultipartUpload(ObjectEndpoint):
    upload_id: str


@dataclass(frozen=True, kw_only=True)
class ListParts(ObjectEndpoint, action="s3:ListMultipartUploadParts"):
    upload_id: str
    max_parts: int = 1000
    part_number_marker: int = 0


# --- CORS ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CorsPreflight(Endpoint):
    """A browser's OPTIONS request, for a bucket (key "") or an object; it is never signed."""

    key: str = ""
    origin: str
    method: str
    request_headers: tuple[str, ...] = ()

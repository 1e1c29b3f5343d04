"""The XML of the S3 API: response bodies out, request bodies in.

Contract: builders return the exact bytes of an S3 response body (UTF-8, S3 namespace, times as
`2009-10-12T17:50:30.000Z`, ETags quoted except in GetObjectAttributes, where S3 leaves them
bare). They join strings rather than build trees, because listings are on the hot path; every
text goes through `errors.escape`. With `encoding_type="url"` the key-like elements S3 names
(Key, Prefix, Delimiter, Marker, StartAfter, KeyMarker and their Next* forms) are URL-encoded.
Parsers accept a body with or without the S3 namespace, refuse DTDs and entities (defusedxml),
and raise `MalformedXML` for anything that is not well-formed or not the expected document,
`MissingRequestBodyError` for an empty body where one is required, and the specific S3 error for
a well-formed document that breaks a limit (tags, CORS rules, part order).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as safe_et
from defusedxml import DefusedXmlException

from appliance.s3.errors import S3Error, escape

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
_NS_PREFIX = "{" + NS + "}"

CHECKSUM_ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
MAX_DELETE_OBJECTS = 1000
MAX_PART_NUMBER = 10000
OBJECT_TAG_LIMIT = 10
BUCKET_TAG_LIMIT = 50
TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256
MAX_CORS_RULES = 100
CORS_METHODS = frozenset({"GET", "PUT", "HEAD", "POST", "DELETE"})
# Letters, digits, white space and + - = . _ : / @ (the characters AWS allows in tags).
_TAG_TEXT = re.compile(r"[\w\s+\-=.:/@]*")
Encoder = Callable[[str], str]


# --- building blocks ----------------------------------------------------------------------------


def _el(name: str, text: str) -> str:
    return f"<{name}>{escape(text)}</{name}>"


def _time(when: datetime) -> str:
    """S3's timestamp; a naive datetime is taken as UTC."""
    if when.utcoffset():
        when = when.astimezone(UTC)
    # isoformat is several times faster than strftime; its first 23 characters are the timestamp.
    return when.isoformat(timespec="milliseconds")[:23] + "Z"


def _etag(etag: str) -> str:
    """The ETag element, quoted as S3 writes it (the quotes already escaped)."""
    return "<ETag>&quot;" + escape(etag.strip('"')) + "&quot;</ETag>"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _owner(tag: str, owner: tuple[str, str]) -> str:
    return f"<{tag}>{_el('ID', owner[0])}{_el('DisplayName', owner[1])}</{tag}>"


def _document(root: str, parts: Iterable[str]) -> bytes:
    return f'{_DECLARATION}<{root} xmlns="{NS}">{"".join(parts)}</{root}>'.encode()


def _url_encode(text: str) -> str:
    return quote(text, safe="/")


def _identity(text: str) -> str:
    return text


def _encoder(encoding_type: str) -> Encoder:
    return _url_encode if encoding_type == "url" else _identity


def checksum_element(name: str) -> str:
    """`Checksum<ALG>` for an algorithm named "crc32", "CRC32", "ChecksumCRC32" or "x-amz-checksum-crc32"."""
    upper = name.upper().removeprefix("X-AMZ-CHECKSUM-").removeprefix("CHECKSUM")
    if upper not in CHECKSUM_ALGORITHMS:
        raise ValueError(f"unknown checksum algorithm {name!r}")
    return "Checksum" + upper


def _checksums(checksums: Mapping[str, str]) -> str:
    return "".join(_el(checksum_element(name), value) for name, value in checksums.items())


# --- parsing blocks -----------------------------------------------------------------------------


def _local(tag: str) -> str:
    """The element name without the S3 namespace; other namespaces stay and so never match."""
    return tag[len(_NS_PREFIX):] if tag.startswith(_NS_PREFIX) else tag


def _parse(body: bytes, root: str) -> Element:
    if not body.strip():
        raise S3Error("MissingRequestBodyError")
    try:
        doc = safe_et.fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError):
        raise S3Error("MalformedXML") from None
    if _local(doc.tag) != root:
        raise S3Error("MalformedXML")
    return doc


def _children(parent: Element, name: str) -> list[Element]:
    return [child for child in parent if _local(child.tag) == name]


def _text(parent: Element, name: str) -> str | None:
    """The text of the first `name` child ("" when empty), or None when there is none."""
    for child in parent:
        if _local(child.tag) == name:
            return child.text or ""
    return None


def _required(parent: Element, name: str) -> str:
    value = _text(parent, name)
    if value is None:
        raise S3Error("MalformedXML")
    return value


# --- service and buckets ------------------------------------------------------------------------


def list_buckets(
    owner: tuple[str, str],
    buckets: Iterable[tuple[str, datetime]],
    *,
    prefix: str | None = None,
    continuation_token: str | None = None,
    region: str | None = None,
) -> bytes:
    """ListAllMyBucketsResult; owner is (canonical id, display name). `region` adds BucketRegion."""
    parts = [_owner("Owner", owner), "<Buckets>"]
    for name, created in buckets:
        parts.append(f"<Bucket>{_el('Name', name)}{_el('CreationDate', _time(created))}")
        if region is not None:
            parts.append(_el("BucketRegion", region))
        parts.append("</Bucket>")
    parts.append("</Buckets>")
    if continuation_token is not None:
        parts.append(_el("ContinuationToken", continuation_token))
    if prefix is not None:
        parts.append(_el("Prefix", prefix))
    return _document("ListAllMyBucketsResult", parts)


def location(region: str) -> bytes:
    """GetBucketLocation: empty for us-east-1, as S3 answers for its original region."""
    if region in ("", "us-east-1"):
        return f'{_DECLARATION}<LocationConstraint xmlns="{NS}"/>'.encode()
    return _document("LocationConstraint", [escape(region)])


def parse_create_bucket(body: bytes) -> str | None:
    """The LocationConstraint of a CreateBucket body, or None (empty body or no constraint)."""
    if not body.strip():
        return None
    doc = _parse(body, "CreateBucketConfiguration")
    constraint = (_text(doc, "LocationConstraint") or "").strip()
    return constraint or None


# --- listings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectEntry:
    key: str
    last_modified: datetime
    etag: str
    size: int
    storage_class: str = "STANDARD"
    owner: tuple[str, str] | None = None
    checksum_algorithm: str | None = None


def _contents(entries: Sequence[ObjectEntry], enc: Encoder) -> str:
    parts = []
    for e in entries:
        parts.append(f"<Contents>{_el('Key', enc(e.key))}{_el('LastModified', _time(e.last_modified))}"
                     f"{_etag(e.etag)}")
        if e.checksum_algorithm:
            parts.append(_el("ChecksumAlgorithm", e.checksum_algorithm))
        parts.append(f"<Size>{e.size}</Size>")
        if e.owner is not None:
            parts.append(_owner("Owner", e.owner))
        parts.append(f"{_el('StorageClass', e.storage_class)}</Contents>")
    return "".join(parts)


def _common_prefixes(prefixes: Sequence[str], enc: Encoder) -> str:
    return "".join(f"<CommonPrefixes>{_el('Prefix', enc(p))}</CommonPrefixes>" for p in prefixes)


def _optional(name: str, value: str | None) -> str:
    return _el(name, value) if value else ""


def list_objects_v2(
    *,
    bucket: str,
    prefix: str,
    delimiter: str,
    max_keys: int,
    start_after: str,
    continuation_token: str,
    next_continuation_token: str | None,
    encoding_type: str,
    is_truncated: bool,
    contents: Sequence[ObjectEntry],
    common_prefixes: Sequence[str],
) -> bytes:
    """ListBucketResult of ListObjectsV2; KeyCount counts keys and common prefixes."""
    enc = _encoder(encoding_type)
    parts = [
        _el("Name", bucket), _el("Prefix", enc(prefix)), _optional("Delimiter", enc(delimiter)),
        f"<MaxKeys>{max_keys}</MaxKeys><KeyCount>{len(contents) + len(common_prefixes)}</KeyCount>",
        f"<IsTruncated>{_bool(is_truncated)}</IsTruncated>",
        _optional("ContinuationToken", continuation_token),
        _optional("NextContinuationToken", next_continuation_token),
        _optional("StartAfter", enc(start_after)), _optional("EncodingType", encoding_type),
        _contents(contents, enc), _common_prefixes(common_prefixes, enc),
    ]
    return _document("ListBucketResult", parts)


def list_objects_v1(
    *,
    bucket: str,
    prefix: str,
    delimiter: str,
    marker: str,
    next_marker: str | None,
    max_keys: int,
    encoding_type: str,
    is_truncated: bool,
    contents: Sequence[ObjectEntry],
    common_prefixes: Sequence[str],
) -> bytes:
    """ListBucketResult of ListObjects (V1)."""
    enc = _encoder(encoding_type)
    parts = [
        _el("Name", bucket), _el("Prefix", enc(prefix)), _el("Marker", enc(marker)),
        _el("NextMarker", enc(next_marker)) if next_marker is not None else "",
        f"<MaxKeys>{max_keys}</MaxKeys>", _optional("Delimiter", enc(delimiter)),
        f"<IsTruncated>{_bool(is_truncated)}</IsTruncated>", _optional("EncodingType", encoding_type),
        _contents(contents, enc), _common_prefixes(common_prefixes, enc),
    ]
    return _document("ListBucketResult", parts)


@dataclass(frozen=True)
class VersionEntry:
    """One row of ListObjectVersions: an object version, or a delete marker (no etag, size, class)."""

    key: str
    version_id: str
    is_latest: bool
    last_modified: datetime
    etag: str = ""
    size: int = 0
    storage_class: str = "STANDARD"
    owner: tuple[str, str] | None = None
    delete_marker: bool = False


def list_object_versions(
    *,
    bucket: str,
    prefix: str,
    delimiter: str,
    key_marker: str,
    version_id_marker: str,
    next_key_marker: str | None,
    next_version_id_marker: str | None,
    max_keys: int,
    encoding_type: str,
    is_truncated: bool,
    versions: Sequence[VersionEntry],
    common_prefixes: Sequence[str],
) -> bytes:
    """ListVersionsResult; versions and delete markers keep the order given (key, then newest first)."""
    enc = _encoder(encoding_type)
    parts = [
        _el("Name", bucket), _el("Prefix", enc(prefix)), _el("KeyMarker", enc(key_marker)),
        _el("VersionIdMarker", version_id_marker),
        _el("NextKeyMarker", enc(next_key_marker)) if next_key_marker is not None else "",
        _el("NextVersionIdMarker", next_version_id_marker) if next_version_id_marker is not None else "",
        f"<MaxKeys>{max_keys}</MaxKeys>", _optional("Delimiter", enc(delimiter)),
        f"<IsTruncated>{_bool(is_truncated)}</IsTruncated>", _optional("EncodingType", encoding_type),
    ]
    for v in versions:
        head = (f"{_el('Key', enc(v.key))}{_el('VersionId', v.version_id)}"
                f"<IsLatest>{_bool(v.is_latest)}</IsLatest>{_el('LastModified', _time(v.last_modified))}")
        owner = _owner("Owner", v.owner) if v.owner is not None else ""
        if v.delete_marker:
            parts.append(f"<DeleteMarker>{head}{owner}</DeleteMarker>")
        else:
            parts.append(f"<Version>{head}{_etag(v.etag)}<Size>{v.size}</Size>{owner}"
                         f"{_el('StorageClass', v.storage_class)}</Version>")
    parts.append(_common_prefixes(common_prefixes, enc))
    return _document("ListVersionsResult", parts)


# --- DeleteObjects ------------------------------------------------------------------------------


def parse_delete_objects(body: bytes) -> tuple[bool, list[tuple[str, str | None]]]:
    """(quiet, [(key, version id or None)]) of a DeleteObjects body; 1 to 1000 objects."""
    doc = _parse(body, "Delete")
    quiet_text = _text(doc, "Quiet")
    quiet = False
    if quiet_text is not None:
        value = quiet_text.strip().lower()
        if value not in ("true", "false"):
            raise S3Error("MalformedXML")
        quiet = value == "true"
    objects = _children(doc, "Object")
    if not 1 <= len(objects) <= MAX_DELETE_OBJECTS:
        raise S3Error("MalformedXML")
    targets: list[tuple[str, str | None]] = []
    for obj in objects:
        version_id = (_text(obj, "VersionId") or "").strip()
        targets.append((_required(obj, "Key"), version_id or None))
    return quiet, targets


def delete_result(
    deleted: Sequence[tuple[str, str | None, bool, str | None]],
    errors: Sequence[tuple[str, str | None, str, str]],
) -> bytes:
    """DeleteResult. deleted: (key, version id, delete marker, delete marker version id);
    errors: (key, version id, code, message)."""
    parts = []
    for key, version_id, marker, marker_version in deleted:
        parts.append("<Deleted>" + _el("Key", key))
        if version_id is not None:
            parts.append(_el("VersionId", version_id))
        if marker:
            parts.append("<DeleteMarker>true</DeleteMarker>")
        if marker_version is not None:
            parts.append(_el("DeleteMarkerVersionId", marker_version))
        parts.append("</Deleted>")
    for key, version_id, code, message in errors:
        parts.append("<Error>" + _el("Key", key))
        if version_id is not None:
            parts.append(_el("VersionId", version_id))
        parts.append(f"{_el('Code', code)}{_el('Message', message)}</Error>")
    return _document("DeleteResult", parts)


# --- copy and multipart -------------------------------------------------------------------------


def copy_object_result(
    etag: str, last_modified: datetime, checksums: Mapping[str, str] | None = None
) -> bytes:
    return _document("CopyObjectResult", [
        _etag(etag), _el("LastModified", _time(last_modified)), _checksums(checksums or {}),
    ])


def copy_part_result(etag: str, last_modified: datetime) -> bytes:
    return _document("CopyPartResult", [_el("LastModified", _time(last_modified)), _etag(etag)])


def initiate_multipart_upload(bucket: str, key: str, upload_id: str) -> bytes:
    return _document("InitiateMultipartUploadResult", [
        _el("Bucket", bucket), _el("Key", key), _el("UploadId", upload_id),
    ])


def parse_complete_multipart_upload(body: bytes) -> list[tuple[int, str, dict[str, str]]]:
    """[(part number, ETag without quotes, {algorithm: checksum})], part numbers strictly ascending."""
    doc = _parse(body, "CompleteMultipartUpload")
    parts = _children(doc, "Part")
    if not parts:
        raise S3Error("MalformedXML")
    result: list[tuple[int, str, dict[str, str]]] = []
    for part in parts:
        number_text = _required(part, "PartNumber").strip()
        if not (number_text.isascii() and number_text.isdigit()):
            raise S3Error("MalformedXML")
        number = int(number_text)
        if not 1 <= number <= MAX_PART_NUMBER:
            raise S3Error("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive",
                          ArgumentName="partNumber", ArgumentValue=number_text)
        if result and number <= result[-1][0]:
            raise S3Error("InvalidPartOrder")
        etag = _required(part, "ETag").strip().strip('"')
        checksums = {}
        for child in part:
            name = _local(child.tag)
            if name.startswith("Checksum") and name[len("Checksum"):] in CHECKSUM_ALGORITHMS:
                checksums[name[len("Checksum"):]] = (child.text or "").strip()
        result.append((number, etag, checksums))
    return result


def complete_multipart_upload(
    location: str, bucket: str, key: str, etag: str, checksums: Mapping[str, str] | None = None
) -> bytes:
    return _document("CompleteMultipartUploadResult", [
        _el("Location", location), _el("Bucket", bucket), _el("Key", key), _etag(etag),
        _checksums(checksums or {}),
    ])


@dataclass(frozen=True)
class PartEntry:
    part_number: int
    last_modified: datetime
    etag: str
    size: int
    checksums: Mapping[str, str] = field(default_factory=dict)


def list_parts(
    *,
    bucket: str,
    key: str,
    upload_id: str,
    initiator: tuple[str, str],
    owner: tuple[str, str],
    storage_class: str,
    part_number_marker: int,
    next_part_number_marker: int | None,
    max_parts: int,
    is_truncated: bool,
    parts: Sequence[PartEntry],
    checksum_algorithm: str | None = None,
) -> bytes:
    """ListPartsResult."""
    out = [
        _el("Bucket", bucket), _el("Key", key), _el("UploadId", upload_id), _owner("Initiator", initiator),
        _owner("Owner", owner), _el("StorageClass", storage_class),
        f"<PartNumberMarker>{part_number_marker}</PartNumberMarker>",
        f"<NextPartNumberMarker>{next_part_number_marker}</NextPartNumberMarker>"
        if next_part_number_marker is not None else "",
        f"<MaxParts>{max_parts}</MaxParts><IsTruncated>{_bool(is_truncated)}</IsTruncated>",
        _optional("ChecksumAlgorithm", checksum_algorithm),
    ]
    for p in parts:
        out.append(f"<Part><PartNumber>{p.part_number}</PartNumber>"
                   f"{_el('LastModified', _time(p.last_modified))}{_etag(p.etag)}"
                   f"<Size>{p.size}</Size>{_checksums(p.checksums)}</Part>")
    return _document("ListPartsResult", out)


@dataclass(frozen=True)
class UploadEntry:
    key: str
    upload_id: str
    initiated: datetime
    owner: tuple[str, str]
    initiator: tuple[str, str] | None = None  # the owner when None
    storage_class: str = "STANDARD"
    checksum_algorithm: str | None = None


def list_multipart_uploads(
    *,
    bucket: str,
    prefix: str,
    delimiter: str,
    key_marker: str,
    upload_id_marker: str,
    next_key_marker: str | None,
    next_upload_id_marker: str | None,
    max_uploads: int,
    encoding_type: str,
    is_truncated: bool,
    uploads: Sequence[UploadEntry],
    common_prefixes: Sequence[str],
) -> bytes:
    """ListMultipartUploadsResult."""
    enc = _encoder(encoding_type)
    parts = [
        _el("Bucket", bucket), _el("KeyMarker", enc(key_marker)), _el("UploadIdMarker", upload_id_marker),
        _el("NextKeyMarker", enc(next_key_marker or "")),
        _el("NextUploadIdMarker", next_upload_id_marker or ""),
        _el("Prefix", enc(prefix)), _optional("Delimiter", enc(delimiter)),
        f"<MaxUploads>{max_uploads}</MaxUploads>",
        f"<IsTruncated>{_bool(is_truncated)}</IsTruncated>", _optional("EncodingType", encoding_type),
    ]
    for u in uploads:
        parts.append(
            f"<Upload>{_el('Key', enc(u.key))}{_el('UploadId', u.upload_id)}"
            f"{_owner('Initiator', u.initiator or u.owner)}{_owner('Owner', u.owner)}"
            f"{_el('StorageClass', u.storage_class)}{_el('Initiated', _time(u.initiated))}"
            f"{_optional('ChecksumAlgorithm', u.checksum_algorithm)}</Upload>"
        )
    parts.append(_common_prefixes(common_prefixes, enc))
    return _document("ListMultipartUploadsResult", parts)


# --- versioning ---------------------------------------------------------------------------------


def parse_versioning(body: bytes) -> str:
    """"Enabled" or "Suspended" from a PutBucketVersioning body."""
    doc = _parse(body, "VersioningConfiguration")
    status = (_text(doc, "Status") or "").strip()
    if status not in ("Enabled", "Suspended"):
        raise S3Error("MalformedXML")
    mfa_delete = _text(doc, "MfaDelete")
    if mfa_delete is not None:
        mfa_delete = mfa_delete.strip()
        if mfa_delete not in ("Enabled", "Disabled"):
            raise S3Error("MalformedXML")
        if mfa_delete == "Enabled":
            raise S3Error("NotImplemented", "MFA delete is not implemented by this server.")
    return status


def versioning(status: str | None) -> bytes:
    """GetBucketVersioning: no Status at all for a bucket that was never versioned."""
    return _document("VersioningConfiguration", [_el("Status", status)] if status else [])


# --- tagging ------------------------------------------------------------------------------------


def _validate_tags(pairs: Iterable[tuple[str, str]], *, bucket: bool) -> dict[str, str]:
    tags: dict[str, str] = {}
    for key, value in pairs:
        if key in tags:
            raise S3Error("InvalidTag", "Cannot provide multiple Tags with the same key", TagKey=key)
        if not key or not _TAG_TEXT.fullmatch(key):
            raise S3Error("InvalidTag", "The TagKey you have provided is invalid", TagKey=key)
        if len(key) > TAG_KEY_MAX:
            raise S3Error("InvalidTag", f"The TagKey you have provided is too long, max {TAG_KEY_MAX}",
                          TagKey=key)
        if key.lower().startswith("aws:"):
            raise S3Error("InvalidTag", "Your TagKey cannot be prefixed with aws:", TagKey=key)
        if not _TAG_TEXT.fullmatch(value):
            raise S3Error("InvalidTag", "The TagValue you have provided is invalid", TagKey=key)
        if len(value) > TAG_VALUE_MAX:
            raise S3Error("InvalidTag", f"The TagValue you have provided is too long, max {TAG_VALUE_MAX}",
                          TagKey=key)
        tags[key] = value
    if bucket and len(tags) > BUCKET_TAG_LIMIT:
        raise S3Error("InvalidTag", f"Bucket tag count cannot be greater than {BUCKET_TAG_LIMIT}")
    if not bucket and len(tags) > OBJECT_TAG_LIMIT:
        raise S3Error("BadRequest", f"Object tags cannot be greater than {OBJECT_TAG_LIMIT}")
    return tags


def parse_tagging(body: bytes, *, bucket: bool = False) -> dict[str, str]:
    """The tags of a PutObjectTagging (or, with bucket=True, PutBucketTagging) body."""
    doc = _parse(body, "Tagging")
    tag_sets = _children(doc, "TagSet")
    if len(tag_sets) != 1:
        raise S3Error("MalformedXML")
    pairs = [(_required(tag, "Key"), _required(tag, "Value")) for tag in _children(tag_sets[0], "Tag")]
    return _validate_tags(pairs, bucket=bucket)


def parse_tagging_header(value: str) -> dict[str, str]:
    """The tags of an `x-amz-tagging` header (URL query syntax) on PutObject or CreateMultipartUpload."""
    try:
        pairs = parse_qsl(value, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise S3Error(
            "InvalidArgument",
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters "
            "without tag name duplicates.",
            ArgumentName="x-amz-tagging",
        ) from None
    return _validate_tags(pairs, bucket=False)


def tagging(tags: Mapping[str, str]) -> bytes:
    body = "".join(f"<Tag>{_el('Key', k)}{_el('Value', v)}</Tag>" for k, v in tags.items())
    return _document("Tagging", ["<TagSet>", body, "</TagSet>"])


# --- CORS ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorsRule:
    allowed_origins: tuple[str, ...]
    allowed_methods: tuple[str, ...]
    allowed_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_seconds: int | None = None
    id: str | None = None


def _texts(parent: Element, name: str) -> tuple[str, ...]:
    return tuple((child.text or "").strip() for child in _children(parent, name))


def _one_wildcard(element: str, values: Iterable[str]) -> None:
    for value in values:
        if value.count("*") > 1:
            raise S3Error("InvalidRequest", f'{element} "{value}" can not have more than one wildcard.')


def parse_cors(body: bytes) -> list[CorsRule]:
    """The rules of a PutBucketCors body."""
    doc = _parse(body, "CORSConfiguration")
    elements = _children(doc, "CORSRule")
    if not elements:
        raise S3Error("MalformedXML")
    if len(elements) > MAX_CORS_RULES:
        raise S3Error("InvalidRequest", f"The number of CORS rules should not exceed allowed limit of "
                                        f"{MAX_CORS_RULES} rules.")
    rules = []
    for rule in elements:
        origins, methods = _texts(rule, "AllowedOrigin"), _texts(rule, "AllowedMethod")
        if not origins or not methods:
            raise S3Error("MalformedXML")
        for method in methods:
            if method not in CORS_METHODS:
                raise S3Error("InvalidRequest",
                              f"Found unsupported HTTP method in CORS config. Unsupported method is {method}")
        headers = _texts(rule, "AllowedHeader")
        _one_wildcard("AllowedOrigin", origins)
        _one_wildcard("AllowedHeader", headers)
        max_age = None
        max_age_text = _text(rule, "MaxAgeSeconds")
        if max_age_text is not None:
            try:
                max_age = int(max_age_text.strip())
            except ValueError:
                raise S3Error("MalformedXML") from None
        rule_id = _text(rule, "ID")
        if rule_id is not None and len(rule_id) > 255:
            raise S3Error("MalformedXML")
        rules.append(CorsRule(origins, methods, headers, _texts(rule, "ExposeHeader"), max_age, rule_id))
    return rules


def cors(rules: Iterable[CorsRule]) -> bytes:
    parts = []
    for rule in rules:
        parts.append("<CORSRule>")
        if rule.id is not None:
            parts.append(_el("ID", rule.id))
        parts.extend(_el("AllowedHeader", h) for h in rule.allowed_headers)
        parts.extend(_el("AllowedMethod", m) for m in rule.allowed_methods)
        parts.extend(_el("AllowedOrigin", o) for o in rule.allowed_origins)
        parts.extend(_el("ExposeHeader", h) for h in rule.expose_headers)
        if rule.max_age_seconds is not None:
            parts.append(f"<MaxAgeSeconds>{rule.max_age_seconds}</MaxAgeSeconds>")
        parts.append("</CORSRule>")
    return _document("CORSConfiguration", parts)


# --- GetObjectAttributes and ACLs ---------------------------------------------------------------


@dataclass(frozen=True)
class AttributePart:
    part_number: int
    size: int
    checksums: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AttributeParts:
    """ObjectParts of GetObjectAttributes: one page of a multipart object's parts."""

    total_parts_count: int
    part_number_marker: int
    next_part_number_marker: int | None
    max_parts: int
    is_truncated: bool
    parts: Sequence[AttributePart] = ()


def get_object_attributes(
    attributes: Collection[str],
    *,
    etag: str,
    size: int,
    storage_class: str = "STANDARD",
    checksums: Mapping[str, str] | None = None,
    checksum_type: str | None = None,
    parts: AttributeParts | None = None,
) -> bytes:
    """GetObjectAttributesResponse with only the requested attributes; Checksum appears only when the
    object has one, ObjectParts only for a multipart object."""
    out = []
    if "ETag" in attributes:
        out.append(_el("ETag", etag.strip('"')))
    if "Checksum" in attributes and checksums:
        out.append(f"<Checksum>{_checksums(checksums)}{_optional('ChecksumType', checksum_type)}</Checksum>")
    if "ObjectParts" in attributes and parts is not None:
        out.append(f"<ObjectParts><PartsCount>{parts.total_parts_count}</PartsCount>"
                   f"<PartNumberMarker>{parts.part_number_marker}</PartNumberMarker>")
        if parts.next_part_number_marker is not None:
            out.append(f"<NextPartNumberMarker>{parts.next_part_number_marker}</NextPartNumberMarker>")
        out.append(f"<MaxParts>{parts.max_parts}</MaxParts>"
                   f"<IsTruncated>{_bool(parts.is_truncated)}</IsTruncated>")
        out.extend(f"<Part>{_checksums(p.checksums)}<PartNumber>{p.part_number}</PartNumber>"
                   f"<Size>{p.size}</Size></Part>" for p in parts.parts)
        out.append("</ObjectParts>")
    if "StorageClass" in attributes:
        out.append(_el("StorageClass", storage_class))
    if "ObjectSize" in attributes:
        out.append(f"<ObjectSize>{size}</ObjectSize>")
    return _document("GetObjectAttributesResponse", out)


def acl(owner: tuple[str, str]) -> bytes:
    """The canned private ACL: the owner has FULL_CONTROL, nobody else has anything."""
    return _document("AccessControlPolicy", [
        _owner("Owner", owner),
        f'<AccessControlList><Grant><Grantee xmlns:xsi="{_XSI}" xsi:type="CanonicalUser">',
        _el("ID", owner[0]), _el("DisplayName", owner[1]),
        "</Grantee><Permission>FULL_CONTROL</Permission></Grant></AccessControlList>",
    ])

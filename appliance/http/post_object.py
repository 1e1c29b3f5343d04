"""POST Object: a browser-form upload (`POST /<bucket>`, multipart/form-data) signed by a POST policy.

Contract: `post_object` reads the form as a stream and never holds more than the form fields plus
one network chunk. The fields before the `file` part are kept (at most `MAX_FORM_FIELDS` bytes in
all); the policy is verified against them (`s3.postpolicy`) before a byte of the file is accepted;
the file part then streams into the object layer's put path, checked against the policy's
`content-length-range` as it arrives, and the rest of the form is read and ignored, as AWS ignores
fields after the file. `${filename}` in the key becomes the base name of the uploaded file. A form
without a policy is anonymous and refused. The answer is a 303 to `success_action_redirect` when
it is an http(s) URL, else per `success_action_status`: 200 (empty), 201 (a PostResponse
document) or 204 (the default). The `acl` field is accepted (it must still be covered by the
policy) and ignored; `tagging` takes a Tagging XML document.
"""

from __future__ import annotations

import email.message
import email.utils
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from appliance.cluster.bucket_meta import VERSIONING_ENABLED
from appliance.engine.objects import PutOptions
from appliance.http import bucket_config, objects_extra
from appliance.http.context import RequestContext, Response
from appliance.s3 import endpoints, names, postpolicy, xml
from appliance.s3.errors import S3Error, escape

MAX_FORM_FIELDS = 1024 * 1024
MAX_PART_HEADERS = 16 * 1024
MAX_PREAMBLE = 16 * 1024
MAX_PUT_SIZE = 5 * 1024**3
MAX_USER_META = 2048
USER_META_PREFIX = "x-amz-meta-"
STORED_FIELDS = ("cache-control", "content-disposition", "content-encoding", "content-language", "expires")
FILENAME_VARIABLE = "${filename}"


def _malformed(detail: str) -> S3Error:
    return S3Error("MalformedPOSTRequest", f"The body of your POST request is not well-formed multipart/form-data. "
                   f"{detail}")


@dataclass(frozen=True)
class Part:
    """The headers of one form part that matter here."""

    name: str
    filename: str | None


def _header_params(name: str, value: str) -> email.message.Message:
    message = email.message.Message()
    message[name] = value
    return message


def _param(message: email.message.Message, header: str, param: str) -> str | None:
    value = message.get_param(param, header=header)
    if value is None or isinstance(value, str):
        return value
    return email.utils.collapse_rfc2231_value(value)


def boundary_of(content_type: str) -> bytes:
    """The multipart boundary named by a Content-Type header."""
    boundary = _param(_header_params("content-type", content_type), "content-type", "boundary")
    if not boundary or len(boundary) > 70:
        raise _malformed("The Content-Type names no valid boundary.")
    return boundary.encode("latin-1")


class FormReader:
    """A multipart/form-data body read part by part, holding at most one chunk plus a delimiter."""

    def __init__(self, chunks: AsyncIterator[bytes], boundary: bytes) -> None:
        self._chunks = chunks
        self._delimiter = b"\r\n--" + boundary
        # The first delimiter has no line break before it; a virtual one makes every delimiter alike.
        self._buffer = bytearray(b"\r\n")
        self._started = False
        self._finished = False

    async def _fill(self) -> None:
        try:
            self._buffer += await self._chunks.__anext__()
        except StopAsyncIteration:
            raise _malformed("The body ended before its closing boundary.") from None

    async def _take_until(self, marker: bytes, limit: int) -> bytes:
        """The bytes before `marker`, consuming both; refused when `limit` bytes pass without it."""
        start = 0
        while True:
            at = self._buffer.find(marker, start)
            if at > limit:
                raise _malformed("A part header or the preamble is too long.")
            if at >= 0:
                taken = bytes(self._buffer[:at])
                del self._buffer[: at + len(marker)]
                return taken
            if len(self._buffer) > limit + len(marker):
                raise _malformed("A part header or the preamble is too long.")
            start = max(0, len(self._buffer) - len(marker) + 1)
            await self._fill()

    async def _after_delimiter(self) -> None:
        """Past a delimiter: `--` closes the form; anything else starts the next part's headers."""
        while len(self._buffer) < 2:
            await self._fill()
        self._finished = self._buffer[:2] == b"--"

    async def next_part(self) -> Part | None:
        """The headers of the next part, or None once the closing delimiter was read."""
        if not self._started:
            self._started = True
            await self._take_until(self._delimiter, MAX_PREAMBLE)
            await self._after_delimiter()
        if self._finished:
            return None
        raw = await self._take_until(b"\r\n\r\n", MAX_PART_HEADERS)
        try:
            lines = raw.decode("utf-8").lstrip(" \t").split("\r\n")
        except UnicodeDecodeError:
            raise _malformed("A part header is not UTF-8.") from None
        disposition = ""
        for line in lines:
            name, colon, value = line.partition(":")
            if line and not colon:
                raise _malformed("A part header has no colon.")
            if name.strip().lower() == "content-disposition":
                disposition = value.strip()
        params = _header_params("content-disposition", disposition)
        field_name = _param(params, "content-disposition", "name")
        if params.get_content_disposition() != "form-data" or field_name is None:
            raise _malformed("A part is not a named form-data field.")
        return Part(field_name, _param(params, "content-disposition", "filename"))

    async def data(self) -> AsyncIterator[bytes]:
        """The current part's bytes, up to the next delimiter."""
        keep = len(self._delimiter) - 1
        while True:
            at = self._buffer.find(self._delimiter)
            if at >= 0:
                if at:
                    yield bytes(self._buffer[:at])
                del self._buffer[: at + len(self._delimiter)]
                await self._after_delimiter()
                return
            if len(self._buffer) > keep:
                # Everything but a possible start of the delimiter is part data.
                cut = len(self._buffer) - keep
                yield bytes(self._buffer[:cut])
                del self._buffer[:cut]
            await self._fill()

    async def value(self, limit: int) -> str:
        """The current part as text; MaxPostPreDataLengthExceeded past `limit` bytes."""
        collected = bytearray()
        async for chunk in self.data():
            collected += chunk
            if len(collected) > limit:
                raise S3Error("MaxPostPreDataLengthExceededError")
        try:
            return collected.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed("A form field is not UTF-8.") from None

    async def skip_rest(self) -> None:
        """Read the remaining parts and the epilogue, and drop them."""
        while await self.next_part() is not None:
            async for _ in self.data():
                pass
        self._buffer.clear()
        async for _ in self._chunks:
            pass


async def _read_fields(form: FormReader) -> tuple[dict[str, str], Part]:
    """The fields before the file, and the file part's headers."""
    fields: dict[str, str] = {}
    budget = MAX_FORM_FIELDS
    while True:
        part = await form.next_part()
        if part is None:
            raise S3Error("IncorrectNumberOfFilesInPostRequest")
        if part.name.lower() == "file":
            return fields, part
        value = await form.value(budget)
        budget -= len(part.name) + len(value.encode())
        fields[part.name] = value


def _with_filename(fields: dict[str, str], filename: str) -> dict[str, str]:
    """The fields with `${filename}` in the key replaced by the upload's base name."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return {name: value.replace(FILENAME_VARIABLE, base) if name.lower() == "key" else value
            for name, value in fields.items()}


def _put_options(form: dict[str, str]) -> PutOptions:
    user_meta = {name[len(USER_META_PREFIX):]: value for name, value in form.items()
                 if name.startswith(USER_META_PREFIX)}
    if sum(len(k) + len(v) for k, v in user_meta.items()) > MAX_USER_META:
        raise S3Error("MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size.")
    system_meta = {name: form[name] for name in STORED_FIELDS if form.get(name)}
    if form.get("tagging"):
        tags = xml.parse_tagging(form["tagging"].encode())
        if tags:
            system_meta[objects_extra.TAGGING_KEY] = objects_extra.encode_tags(tags)
    return PutOptions(content_type=form.get("content-type") or "binary/octet-stream", user_meta=user_meta,
                      system_meta=system_meta)


async def _file_body(form: FormReader, limits: postpolicy.PolicyConditions) -> AsyncIterator[bytes]:
    size = 0
    async for chunk in form.data():
        size += len(chunk)
        limits.check_size(size, complete=False)
        if size > MAX_PUT_SIZE:
            raise S3Error("EntityTooLarge")
        yield chunk
    limits.check_size(size)
    # Read to the closing delimiter before the engine commits, so a truncated form stores nothing.
    await form.skip_rest()


def _object_url(ctx: RequestContext, bucket: str, key: str) -> str:
    host = ctx.headers.get("host", "")
    path = quote(key, safe="/~")
    if ctx.raw_path.startswith("/" + bucket):
        return f"http://{host}/{bucket}/{path}"
    return f"http://{host}/{path}"


def _redirect_target(url: str, bucket: str, key: str, etag: str) -> str | None:
    """`success_action_redirect` with bucket, key and etag added; None when it is no http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    separator = "&" if parts.query else "?"
    return url + separator + urlencode({"bucket": bucket, "key": key, "etag": f'"{etag}"'})


def post_response(location: str, bucket: str, key: str, etag: str) -> bytes:
    """The body of a 201 answer."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<PostResponse>'
        f"<Location>{escape(location)}</Location><Bucket>{escape(bucket)}</Bucket>"
        f"<Key>{escape(key)}</Key><ETag>{escape(chr(34) + etag + chr(34))}</ETag></PostResponse>"
    ).encode()


async def post_object(ctx: RequestContext, ep: endpoints.PostObject) -> Response:
    boundary = boundary_of(ep.content_type)
    cfg = await bucket_config.config(ctx, ep.bucket)  # NoSuchBucket before any of the body is read
    form = FormReader(ctx.body(), boundary)
    submitted, file_part = await _read_fields(form)
    fields = _with_filename(submitted, file_part.filename or "")
    auth, limits = postpolicy.verify_post_policy(
        fields, ctx.app.lookup_secret, now=datetime.now(UTC), region=ctx.app.config.region, bucket=ep.bucket,
    )
    if auth is None:
        raise S3Error("AccessDenied")
    ctx.auth = auth
    lowered = {name.lower(): value for name, value in fields.items()}
    key = lowered["key"]
    names.validate_key(key)
    opts = _put_options(lowered)
    layer: Any = ctx.layer
    info = await layer.put_object(ep.bucket, key, _file_body(form, limits), opts,
                                  versioned=cfg.versioning == VERSIONING_ENABLED)
    location = _object_url(ctx, ep.bucket, key)
    headers = [("etag", f'"{info.etag}"'), *objects_extra.version_headers(info)]
    redirect = lowered.get("success_action_redirect") or lowered.get("redirect")
    target = _redirect_target(redirect, ep.bucket, key, info.etag) if redirect else None
    if target is not None:
        return Response(303, [*headers, ("location", target)])
    headers.append(("location", location))
    status = lowered.get("success_action_status")
    if status == "200":
        return Response(200, headers)
    if status == "201":
        return Response(201, [*headers, ("content-type", "application/xml")],
                        post_response(location, ep.bucket, key, info.etag))
    return Response(204, headers)


HANDLERS: dict[type, Any] = {endpoints.PostObject: post_object}

"""The POST Object form parser (`http.post_object.FormReader`): every split point, and every malformed form.

The body reaches the parser as it does in the server: ASGI `http.request` messages from a fake
`receive`, through `RequestContext.body()`. A well-formed form must parse to the same fields and
file bytes whichever byte boundaries the network cut it at; a malformed one must fail with the
same S3 error wherever it was cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import pytest

from appliance.http.context import RequestContext
from appliance.http.post_object import MAX_PART_HEADERS, MAX_PREAMBLE, FormReader, boundary_of
from appliance.s3.errors import S3Error

BOUNDARY = "----CairnFormBoundary7MA4YWxk"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
# File bytes that look like the start of a delimiter, a header end and a closing dash pair.
FILE_BYTES = (b"\x00\xffbinary\r\n--" + BOUNDARY[:-1].encode() + b"\r\n\r\n--\r\n-" + bytes(range(256))
              + b"\r\n--" + BOUNDARY.encode()[:5])
Parsed = list[tuple[str, str | None, bytes]]


def form_part(name: str, value: bytes, *, filename: str | None = None, extra: str = "") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    return (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{extra}\r\n").encode() + value + b"\r\n"


def closing() -> bytes:
    return f"--{BOUNDARY}--\r\n".encode()


GOOD_FORM = (
    b"a preamble that is ignored\r\n"
    + form_part("key", b"uploads/${filename}")
    + form_part("x-amz-meta-note", "caf\u00e9 \u2603".encode())
    + form_part("empty", b"")
    + form_part("file", FILE_BYTES, filename="photo.jpg", extra="Content-Type: image/jpeg\r\n")
    + form_part("after-file", b"ignored by S3, still parsed")
    + closing()
    + b"an epilogue"
)
EXPECTED: Parsed = [
    ("key", None, b"uploads/${filename}"),
    ("x-amz-meta-note", None, "caf\u00e9 \u2603".encode()),
    ("empty", None, b""),
    ("file", "photo.jpg", FILE_BYTES),
    ("after-file", None, b"ignored by S3, still parsed"),
]


def fake_receive(chunks: Sequence[bytes], *, disconnect: bool = False) -> Callable[[], Awaitable[MutableMapping[str, Any]]]:
    """An ASGI `receive` that hands out `chunks`, then (optionally) reports a client disconnect."""
    messages: list[MutableMapping[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": disconnect or i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    if disconnect:
        messages.append({"type": "http.disconnect"})

    async def receive() -> MutableMapping[str, Any]:
        return messages.pop(0)

    return receive


def reader(chunks: Sequence[bytes], *, disconnect: bool = False) -> FormReader:
    total = sum(map(len, chunks))
    headers = {"content-type": CONTENT_TYPE, "content-length": str(total)}
    ctx = RequestContext(app=None, method="POST", raw_path="/bucket", query="", headers=headers,
                         receive=fake_receive(chunks, disconnect=disconnect), request_id="TEST")
    return FormReader(ctx.body(), boundary_of(CONTENT_TYPE))


async def parse_all(form: FormReader) -> Parsed:
    """Every part of the form, in order: (name, filename, bytes)."""
    parts: Parsed = []
    while (part := await form.next_part()) is not None:
        data = b"".join([chunk async for chunk in form.data()])
        parts.append((part.name, part.filename, data))
    return parts


def parse(chunks: Sequence[bytes], *, disconnect: bool = False) -> Parsed:
    return asyncio.run(parse_all(reader(chunks, disconnect=disconnect)))


def error_of(chunks: Sequence[bytes], *, disconnect: bool = False) -> str:
    with pytest.raises(S3Error) as caught:
        parse(chunks, disconnect=disconnect)
    return caught.value.code


def two_way_splits(body: bytes) -> list[list[bytes]]:
    return [[body[:cut], body[cut:]] for cut in range(len(body) + 1)]


def test_well_formed_form_whole() -> None:
    assert parse([GOOD_FORM]) == EXPECTED


def test_well_formed_form_split_at_every_byte_boundary() -> None:
    for chunks in two_way_splits(GOOD_FORM):
        assert parse(chunks) == EXPECTED, f"split at {len(chunks[0])}"


def test_well_formed_form_one_byte_at_a_time() -> None:
    assert parse([GOOD_FORM[i : i + 1] for i in range(len(GOOD_FORM))]) == EXPECTED


def test_field_value_and_skip_rest_after_the_file() -> None:
    """The server's reading order: field values as text, the file streamed, the rest skipped."""

    async def server_order(form: FormReader) -> tuple[dict[str, str], bytes]:
        fields: dict[str, str] = {}
        while (part := await form.next_part()) is not None and part.name != "file":
            fields[part.name] = await form.value(1024)
        data = b"".join([chunk async for chunk in form.data()])
        await form.skip_rest()
        return fields, data

    for chunks in two_way_splits(GOOD_FORM):
        fields, data = asyncio.run(server_order(reader(chunks)))
        assert fields == {"key": "uploads/${filename}", "x-amz-meta-note": "caf\u00e9 \u2603", "empty": ""}
        assert data == FILE_BYTES


MALFORMED = [
    pytest.param(form_part("key", b"k") + form_part("file", b"data", filename="f"), id="no-closing-boundary"),
    pytest.param(form_part("key", b"k")[:30], id="ends-inside-part-headers"),
    pytest.param(b"no delimiter at all", id="no-delimiter"),
    pytest.param(f"--{BOUNDARY}\r\nContent-Disposition form-data; name=\"k\"\r\n\r\nv\r\n".encode() + closing(),
                 id="header-without-colon"),
    pytest.param(f"--{BOUNDARY}\r\nContent-Disposition: attachment; name=\"k\"\r\n\r\nv\r\n".encode() + closing(),
                 id="not-form-data"),
    pytest.param(f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nv\r\n".encode() + closing(),
                 id="field-without-name"),
    pytest.param(f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nv\r\n".encode() + closing(),
                 id="no-content-disposition"),
    pytest.param(f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"k\xff\"\r\n\r\n".encode("latin-1"),
                 id="header-not-utf8"),
]


@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_form_at_every_split(body: bytes) -> None:
    codes = {error_of(chunks) for chunks in two_way_splits(body)}
    assert codes == {"MalformedPOSTRequest"}


@pytest.mark.parametrize(("body", "chunk_size"), [
    pytest.param(b"x" * (MAX_PREAMBLE + 200) + form_part("key", b"k") + closing(), 1000, id="preamble-too-long"),
    pytest.param(f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"k\"\r\nX-Pad: ".encode()
                 + b"p" * (MAX_PART_HEADERS + 200) + b"\r\n\r\nv\r\n" + closing(), 777, id="part-headers-too-long"),
])
def test_oversized_preamble_or_headers(body: bytes, chunk_size: int) -> None:
    chunks = [body[i : i + chunk_size] for i in range(0, len(body), chunk_size)]
    assert error_of(chunks) == "MalformedPOSTRequest"


def test_field_over_the_limit_and_field_not_utf8() -> None:
    async def first_value(form: FormReader, limit: int) -> str:
        await form.next_part()
        return await form.value(limit)

    too_long = form_part("policy", b"p" * 100) + closing()
    with pytest.raises(S3Error) as caught:
        asyncio.run(first_value(reader([too_long]), 99))
    assert caught.value.code == "MaxPostPreDataLengthExceededError"
    not_text = form_part("key", b"\xff\xfe") + closing()
    with pytest.raises(S3Error) as caught:
        asyncio.run(first_value(reader([not_text]), 1024))
    assert caught.value.code == "MalformedPOSTRequest"


def test_client_disconnect_mid_form() -> None:
    assert error_of([GOOD_FORM[:100]], disconnect=True) == "IncompleteBody"


@pytest.mark.parametrize("content_type", [
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=" + "b" * 71,
])
def test_content_type_without_a_valid_boundary(content_type: str) -> None:
    with pytest.raises(S3Error) as caught:
        boundary_of(content_type)
    assert caught.value.code == "MalformedPOSTRequest"


def test_quoted_boundary() -> None:
    assert boundary_of(f'multipart/form-data; boundary="{BOUNDARY}"') == BOUNDARY.encode()

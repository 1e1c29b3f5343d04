"""ListObjectsV2 (and V1) against a model: the sorted list of every key the test wrote.

The model groups keys under common prefixes, skips up to start-after, and cuts the merged stream
of keys and prefixes into pages of max-keys; the server's pages must match it exactly, page by page,
when followed through continuation tokens (or markers for V1).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import pytest

from tests.functional.payloads import error_of, etag_of, status_of
from tests.functional.rawhttp import encode_path, find_all, find_text, signed_request
from tests.harness import CairnServer, S3Client, fresh_bucket_name

SPECIAL_KEYS = [
    "a", "a-c", "a/b", "a/b/c", "a/b/d", "a/bc", "a0", "b", "z", "é/1", "ｚ", "😀",
    "with space/x", "plus+sign", "percent%41", "trailing/", "x//y",
]
BULK_KEYS = [f"bulk/{i:04d}" for i in range(600)] + [f"dir{i % 10}/sub{i % 3}/f{i:04d}" for i in range(500)]
ALL_KEYS = SPECIAL_KEYS + BULK_KEYS


def utf8(key: str) -> bytes:
    return key.encode("utf-8")


def content_for(key: str) -> bytes:
    return key.encode("utf-8")[: len(key) % 7]


@dataclass(frozen=True)
class Entry:
    name: str
    is_prefix: bool


def model_entries(keys: list[str], prefix: str, delimiter: str, start_after: str) -> list[Entry]:
    """What S3 lists: keys under `prefix` after `start_after`, rolled up at `delimiter`, in byte order."""
    entries: list[Entry] = []
    seen: set[str] = set()
    for key in sorted(keys, key=utf8):
        if not key.startswith(prefix) or (start_after and utf8(key) <= utf8(start_after)):
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        if cut >= 0:
            common = key[: cut + len(delimiter)]
            if common not in seen:
                seen.add(common)
                entries.append(Entry(common, True))
            continue
        entries.append(Entry(key, False))
    return entries


def page_entries(page: dict[str, Any]) -> list[Entry]:
    keys = [Entry(item["Key"], False) for item in page.get("Contents", [])]
    prefixes = [Entry(item["Prefix"], True) for item in page.get("CommonPrefixes", [])]
    return sorted(keys + prefixes, key=lambda e: utf8(e.name))


@pytest.fixture(scope="module")
def listing_bucket(s3: S3Client) -> str:
    name = fresh_bucket_name("list")
    s3.create_bucket(Bucket=name)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=name, Key=key, Body=content_for(key)), ALL_KEYS))
    return name


# (prefix, delimiter, start-after, max-keys; None for the server's default of 1000)
LISTINGS: list[tuple[str, str, str, int | None]] = [
    ("", "", "", None),
    ("", "", "", 250),
    ("", "", "", 1),
    ("", "/", "", None),
    ("", "/", "", 5),
    ("bulk/", "", "", 100),
    ("bulk/", "", "bulk/0550", 7),
    ("dir3/", "/", "", 1),
    ("dir", "/", "", 3),
    ("dir1/", "sub", "", 10),
    ("a", "/", "", 2),
    ("a/", "/", "", None),
    ("a/b", "", "", None),
    ("a/b", "/", "", None),
    ("", "", "m", 300),
    ("", "/", "b", None),
    ("", "/", "a0", 3),
    ("nothing-here/", "/", "", 10),
    ("x/", "/", "", None),
]


@pytest.mark.parametrize(("prefix", "delimiter", "start_after", "max_keys"), LISTINGS)
def test_list_objects_v2_pages_match_model(s3: S3Client, listing_bucket: str, prefix: str, delimiter: str,
                                           start_after: str, max_keys: int | None) -> None:
    expected = model_entries(ALL_KEYS, prefix, delimiter, start_after)
    page_size = max_keys or 1000
    args: dict[str, Any] = {"Bucket": listing_bucket, "Prefix": prefix}
    if delimiter:
        args["Delimiter"] = delimiter
    if start_after:
        args["StartAfter"] = start_after
    if max_keys is not None:
        args["MaxKeys"] = max_keys

    pages: list[list[Entry]] = []
    token = None
    while True:
        page = s3.list_objects_v2(**args, **({"ContinuationToken": token} if token else {}))
        entries = page_entries(page)
        assert page["KeyCount"] == len(entries)
        assert page["Prefix"] == prefix
        assert page["MaxKeys"] == page_size
        assert page.get("Delimiter", "") == delimiter
        if start_after:
            assert page["StartAfter"] == start_after
        for item in page.get("Contents", []):
            data = content_for(item["Key"])
            assert (item["Size"], item["ETag"]) == (len(data), etag_of(data)), item
            assert item["StorageClass"] == "STANDARD"
            assert item["LastModified"]
        pages.append(entries)
        assert len(pages) <= len(expected) // page_size + 1, "more pages than the model has"
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            break
        assert len(entries) == page_size, "a truncated page must be full"
        token = page["NextContinuationToken"]
        assert token

    expected_pages = [expected[i:i + page_size] for i in range(0, len(expected), page_size)] or [[]]
    assert pages == expected_pages


def test_keys_are_in_utf8_binary_order(s3: S3Client, bucket: str) -> None:
    keys = ["a0", "a/b", "a-c", "ｚ", "😀", "z", "é", "A", "_", "a"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    listed = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == ["A", "_", "a", "a-c", "a/b", "a0", "z", "é", "ｚ", "😀"]


def test_empty_bucket(s3: S3Client, bucket: str) -> None:
    page = s3.list_objects_v2(Bucket=bucket)
    assert status_of(page) == 200
    assert (page["KeyCount"], page["IsTruncated"]) == (0, False)
    assert "Contents" not in page and "CommonPrefixes" not in page


def test_prefix_equal_to_a_key_lists_it_and_its_children(s3: S3Client, bucket: str) -> None:
    for key in ["photo", "photo.jpg", "photo/1", "photos", "phot"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    page = s3.list_objects_v2(Bucket=bucket, Prefix="photo", Delimiter="/")
    assert [item["Key"] for item in page["Contents"]] == ["photo", "photo.jpg", "photos"]
    assert [item["Prefix"] for item in page["CommonPrefixes"]] == ["photo/"]


def test_bad_continuation_token(s3: S3Client, bucket: str) -> None:
    code = error_of(lambda: s3.list_objects_v2(Bucket=bucket, ContinuationToken="not-a-token!"))
    assert code == (400, "InvalidArgument")


ENCODED_KEYS = ["with space", "plus+sign", "ünïcödé/ключ", "amp&lt<gt>", "percent%20", "tab\there"]


@pytest.fixture(scope="module")
def encoding_bucket(s3: S3Client) -> str:
    name = fresh_bucket_name("enc")
    s3.create_bucket(Bucket=name)
    for key in ENCODED_KEYS:
        s3.put_object(Bucket=name, Key=key, Body=b"x")
    return name


@pytest.mark.parametrize("version", ["2", "1"])
def test_encoding_type_url_on_the_wire(server: CairnServer, encoding_bucket: str, version: str) -> None:
    query = [("encoding-type", "url")] + ([("list-type", "2")] if version == "2" else [])
    response = signed_request(server, "GET", encode_path(encoding_bucket), query=query)
    assert response.status == 200, response.body
    root = response.xml()
    assert find_text(root, "EncodingType") == "url"
    raw_keys = [find_text(item, "Key") or "" for item in find_all(root, "Contents")]
    for raw in raw_keys:
        assert raw.isascii() and " " not in raw and "\t" not in raw, f"key not URL-encoded: {raw!r}"
    assert [unquote_plus(raw) for raw in raw_keys] == sorted(ENCODED_KEYS, key=utf8)


def test_without_encoding_keys_are_plain_xml(server: CairnServer, encoding_bucket: str) -> None:
    response = signed_request(server, "GET", encode_path(encoding_bucket), query=[("list-type", "2")])
    assert response.status == 200, response.body
    keys = [find_text(item, "Key") for item in find_all(response.xml(), "Contents")]
    assert keys == sorted(ENCODED_KEYS, key=utf8)


@pytest.mark.parametrize(("prefix", "delimiter", "max_keys"), [("", "", 400), ("", "/", 4), ("dir2/", "/", 2)])
def test_list_objects_v1_pages_match_model(s3: S3Client, listing_bucket: str, prefix: str, delimiter: str,
                                           max_keys: int) -> None:
    expected = model_entries(ALL_KEYS, prefix, delimiter, "")
    args: dict[str, Any] = {"Bucket": listing_bucket, "Prefix": prefix, "MaxKeys": max_keys}
    if delimiter:
        args["Delimiter"] = delimiter
    pages: list[list[Entry]] = []
    marker = ""
    while True:
        page = s3.list_objects(**args, **({"Marker": marker} if marker else {}))
        entries = page_entries(page)
        assert page["Marker"] == marker
        pages.append(entries)
        assert len(pages) <= len(expected) // max_keys + 1, "more pages than the model has"
        if not page["IsTruncated"]:
            break
        assert len(entries) == max_keys, "a truncated page must be full"
        if delimiter:
            # NextMarker is only returned when a delimiter was given.
            marker = page["NextMarker"]
            assert marker == entries[-1].name
        else:
            assert "NextMarker" not in page
            marker = entries[-1].name
    assert pages == [expected[i:i + max_keys] for i in range(0, len(expected), max_keys)]

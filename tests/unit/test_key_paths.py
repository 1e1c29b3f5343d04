"""Object keys <-> drive paths: every key maps to one path and back, never onto engine entries."""

import pytest

from appliance.engine.errors import InvalidObjectName, KeyTooLong
from appliance.engine.names import (
    META_NAME,
    decode_segment,
    is_data_dir,
    is_long_segment,
    key_to_path,
    long_segments,
)

KEYS = [
    ("a", "a"),
    ("a/b/c", "a/b/c"),
    ("a/", "a/%"),
    ("a//b", "a/%/b"),
    ("/lead", "%/lead"),
    ("./x", "%2e/x"),
    ("../x", "%2e2e/x"),
    ("100%", "%313030 25".replace(" ", "")),
    ("ünï/cödé", "ünï/cödé"),
    ("%meta", "%256d657461"),
    ("sp ace+plus", "sp ace+plus"),
    ("nul\x00byte", "%6e756c00627974 65".replace(" ", "")),
]


@pytest.mark.parametrize(("key", "path"), KEYS)
def test_key_round_trip(key: str, path: str) -> None:
    assert key_to_path(key) == path
    assert "/".join(decode_segment(s) or "" for s in path.split("/")) == key


@pytest.mark.parametrize("name", [META_NAME, "%d.0123abcd", "%d.x"])
def test_engine_entries_are_not_segments(name: str) -> None:
    assert decode_segment(name) is None


def test_data_dir_names() -> None:
    assert is_data_dir("%d.abc") and not is_data_dir("d.abc")


@pytest.mark.parametrize(
    ("key", "error"),
    [("", InvalidObjectName), ("k" * 1025, KeyTooLong), ("x" * 255, None)],
)
def test_unstorable_keys(key: str, error: type | None) -> None:
    if error is None:
        assert decode_segment(key_to_path(key)) == key
    else:
        with pytest.raises(error):
            key_to_path(key)


@pytest.mark.parametrize("segment", ["x" * 256, "%" * 200, "é" * 512, "k" * 1024])
def test_long_segments_get_a_hashed_name(segment: str) -> None:
    name = key_to_path(segment)
    assert is_long_segment(name) and len(name) <= 255
    assert decode_segment(name) is None  # the drive reads the segment from the %name file
    assert long_segments("a/" + segment + "/b") == [("a/" + name, segment)]

"""Placement: ellipsis expansion, set sizes, stable and balanced object -> set hashing."""

from collections import Counter

import pytest

from appliance.cluster.placement import (
    PlacementError,
    choose_set_size,
    expand_drives,
    expand_ellipsis,
    set_index,
)
from appliance.engine.erasure_set import shard_distribution

EXPANSIONS = [
    ("/d/drive{1...3}", ["/d/drive1", "/d/drive2", "/d/drive3"]),
    ("/d/drive{01...03}", ["/d/drive01", "/d/drive02", "/d/drive03"]),
    ("/plain", ["/plain"]),
    (
        "http://host{1...2}/disk{1...2}",
        ["http://host1/disk1", "http://host2/disk1", "http://host1/disk2", "http://host2/disk2"],
    ),
]


@pytest.mark.parametrize(("pattern", "expected"), EXPANSIONS)
def test_expand_ellipsis(pattern: str, expected: list[str]) -> None:
    assert expand_ellipsis(pattern) == expected


def test_duplicate_drives_refused() -> None:
    with pytest.raises(PlacementError):
        expand_drives(["/d/x{1...2}", "/d/x2"])


SET_SIZES = [(1, 1), (2, 2), (3, 3), (4, 4), (8, 8), (16, 16), (32, 16), (12, 12), (24, 12), (48, 16), (18, 9)]


@pytest.mark.parametrize(("drives", "size"), SET_SIZES)
def test_choose_set_size(drives: int, size: int) -> None:
    assert choose_set_size(drives) == size


@pytest.mark.parametrize("drives", [0, 17, 19])
def test_impossible_layouts(drives: int) -> None:
    with pytest.raises(PlacementError):
        choose_set_size(drives)


def test_set_index_is_stable() -> None:
    # Golden values: a change here would move every existing object to another set.
    assert [set_index(f"k{i}", "dep", 4) for i in range(8)] == [2, 0, 3, 3, 2, 3, 2, 1]
    assert set_index("photos/cat.jpg", "00000000-0000-0000-0000-000000000000", 8) == 3
    assert len({set_index("same", f"dep{i}", 16) for i in range(64)}) > 1  # keyed by deployment


def test_set_index_is_balanced() -> None:
    counts = Counter(set_index(f"object-{i}", "deployment", 8) for i in range(80_000))
    assert set(counts) == set(range(8))
    assert max(counts.values()) / min(counts.values()) < 1.1


@pytest.mark.parametrize("n", [1, 2, 4, 7, 16])
def test_shard_distribution_is_a_rotation(n: int) -> None:
    for key in ("a", "b/c", "ünïcode", "x" * 300):
        dist = shard_distribution(key, n)
        assert sorted(dist) == list(range(n))
        assert all((dist[(i + 1) % n] - dist[i]) % n == 1 % n for i in range(n))


def test_shard_distribution_spreads_parity() -> None:
    first_parity_drive = Counter(shard_distribution(f"k{i}", 4).index(2) for i in range(4000))
    assert set(first_parity_drive) == {0, 1, 2, 3}

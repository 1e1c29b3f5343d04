"""Endpoints and topology: pools, set layout, local detection, refusals and the topology digest."""

from collections.abc import Callable

import pytest

from appliance.cluster.endpoints import Topology, parse_topology, resolves_to_this_machine
from appliance.cluster.placement import PlacementError

GRID = "http://10.0.0.{1...4}:9000/d{1...4}"


def on(*hosts: str) -> Callable[[str], bool]:
    """A resolver for a node whose addresses are `hosts`."""
    return lambda host: host in hosts


def layout(topology: Topology) -> list[list[list[str]]]:
    return [[[f"{e.address}{e.path}" for e in eset] for eset in pool] for pool in topology.pools]


def grid_sets(set_size: int) -> list[list[str]]:
    drives = [f"10.0.0.{h}:9000/d{d}" for d in range(1, 5) for h in range(1, 5)]
    return [drives[i : i + set_size] for i in range(0, 16, set_size)]


LAYOUTS = [
    (["/srv/d1"], None, [[["/srv/d1"]]]),
    (["/srv/d{1...4}"], None, [[["/srv/d1", "/srv/d2", "/srv/d3", "/srv/d4"]]]),
    (["/a", "/b", "/c"], None, [[["/a", "/b", "/c"]]]),
    (["/srv/d{1...8}"], 4, [[[f"/srv/d{i}" for i in range(1, 5)], [f"/srv/d{i}" for i in range(5, 9)]]]),
    # 4 hosts x 4 drives: one set of 16, the host varying fastest
    ([GRID], None, [grid_sets(16)]),
    # the same with sets of 4: every set has one drive on each host
    ([GRID], 4, [grid_sets(4)]),
    (["http://10.0.0.1:9000/d1", "http://10.0.0.2:9000/d1"], None, [[["10.0.0.1:9000/d1", "10.0.0.2:9000/d1"]]]),
    # two pools, each sized on its own
    (
        ["http://10.0.0.{1...2}:9000/d{1...2}", "http://10.0.0.{3...4}:9000/e{1...2}"],
        None,
        [
            [["10.0.0.1:9000/d1", "10.0.0.2:9000/d1", "10.0.0.1:9000/d2", "10.0.0.2:9000/d2"]],
            [["10.0.0.3:9000/e1", "10.0.0.4:9000/e1", "10.0.0.3:9000/e2", "10.0.0.4:9000/e2"]],
        ],
    ),
]


@pytest.mark.parametrize(("args", "set_size", "expected"), LAYOUTS)
def test_layout(args: list[str], set_size: int | None, expected: list[list[list[str]]]) -> None:
    topology = parse_topology(args, 9000, set_size=set_size, is_local_host=on("10.0.0.1"))
    assert layout(topology) == expected
    for p, pool in enumerate(topology.pools):
        for s, eset in enumerate(pool):
            assert [(e.pool, e.set, e.slot) for e in eset] == [(p, s, j) for j in range(len(eset))]


SET_SIZES = [
    ("http://h{1...4}:9000/d{1...4}", 16),
    ("http://h{1...12}:9000/d{1...4}", 12),  # 16 would put 2 drives of a set on hosts 1-4, 1 on the others
    ("http://h{1...9}:9000/d{1...4}", 9),  # 12 would not be symmetric either
    ("http://h{1...3}:9000/d{1...2}", 6),
    ("http://h{1...8}:9000/d{1...1}", 8),
    ("http://h{1...32}:9000/d{1...1}", 16),
    ("/d{1...32}", 16),
    ("/d{1...24}", 12),
]


@pytest.mark.parametrize(("arg", "size"), SET_SIZES)
def test_set_size_is_symmetric_over_hosts(arg: str, size: int) -> None:
    topology = parse_topology([arg], 9000, is_local_host=on("h1"))
    assert {len(eset) for eset in topology.pools[0]} == {size}
    hosts = {e.host for eset in topology.pools[0] for e in eset}
    for eset in topology.pools[0]:
        per_host = {e.host: 0 for e in eset}
        for e in eset:
            per_host[e.host] += 1
        assert len(set(per_host.values())) == 1
        assert len(per_host) == min(size, len(hosts))


NODE_VIEWS = [
    # (args, this node's hosts, listen port, distributed, peers, local paths)
    (["/srv/d{1...4}"], (), 9000, False, [], ["/srv/d1", "/srv/d2", "/srv/d3", "/srv/d4"]),
    ([GRID], ("10.0.0.1",), 9000, True, ["10.0.0.2:9000", "10.0.0.3:9000", "10.0.0.4:9000"],
     ["/d1", "/d2", "/d3", "/d4"]),
    ([GRID], ("10.0.0.3",), 9000, True, ["10.0.0.1:9000", "10.0.0.2:9000", "10.0.0.4:9000"],
     ["/d1", "/d2", "/d3", "/d4"]),
    # one machine, two nodes on two ports: only the port tells them apart
    (["http://127.0.0.1:{9000...9001}/d{1...2}"], ("127.0.0.1",), 9001, True, ["127.0.0.1:9000"], ["/d1", "/d2"]),
    # a URL without a port means the port of --address
    (["http://n{1...2}/d{1...2}"], ("n2",), 9000, True, ["n1:9000"], ["/d1", "/d2"]),
    (["http://[fd00::1]:9000/d1", "http://[fd00::2]:9000/d1"], ("fd00::2",), 9000, True, ["[fd00::1]:9000"], ["/d1"]),
]


@pytest.mark.parametrize(("args", "mine", "port", "distributed", "peers", "local_paths"), NODE_VIEWS)
def test_node_view(
    args: list[str], mine: tuple[str, ...], port: int, distributed: bool, peers: list[str], local_paths: list[str]
) -> None:
    topology = parse_topology(args, port, is_local_host=on(*mine))
    assert topology.distributed is distributed
    assert topology.peers == peers
    assert topology.local_paths == local_paths


def test_path_endpoints_are_local_without_host() -> None:
    topology = parse_topology(["/srv/d1", "/srv/d2"], 9000, is_local_host=on())
    assert {(e.host, e.is_local, e.url) for e in topology.endpoints()} == {("", True, "/srv/d1"), ("", True, "/srv/d2")}


REFUSALS = [
    (["http://10.0.0.1:9000/d1", "/d2"], None, "mix URLs and paths"),
    (["/d{1...2}", "/d3"], None, "mix {a...b} ranges"),
    (["http://10.0.0.1:9000/d1", "https://10.0.0.2:9000/d1"], None, "mix http:// and https://"),
    (["ftp://10.0.0.1:9000/d1"], None, "only http:// and https://"),
    (["http://10.0.0.1:9000"], None, "needs the drive's path"),
    (["http://10.0.0.1:9000/"], None, "needs the drive's path"),
    (["http://10.0.0.1:99999/d1"], None, "invalid port"),
    ([], None, "no drives given"),
    (["/d1", "/d1"], None, "'/d1' is given twice"),
    (["/d1", "/d2/../d1"], None, "is given twice"),
    (["http://10.0.0.1:9000/d1", "http://10.0.0.1:9000/d1/"], None, "is given twice"),
    (["http://10.0.0.1/d1", "http://10.0.0.1:9000/d1"], None, "is given twice"),
    (["http://10.0.0.{1...2}:9000/d{1...2}", "http://10.0.0.{1...2}:9000/d{2...3}"], None, "is given twice"),
    (["http://10.0.0.1:9000/d1", "http://node1:9000/d1"], None, "same drive on this node"),
    (["http://10.0.0.{2...3}:9000/d{1...2}"], None, "this node is not in the endpoint list"),
    (["http://10.0.0.1:9001/d{1...2}"], None, "this node is not in the endpoint list"),
    (["/d{1...17}"], None, "cannot be split"),
    ([GRID], 3, "cannot be cut into sets of 3"),
    ([GRID], 32, "set size 32 is not possible"),
    ([GRID], 1, "set size 1 is not possible"),
    (["/d1", "/d2"], 4, "cannot be cut into sets of 4"),
]


@pytest.mark.parametrize(("args", "set_size", "message"), REFUSALS)
def test_refusals(args: list[str], set_size: int | None, message: str) -> None:
    with pytest.raises(PlacementError, match=message.replace("{", r"\{").replace(".", r"\.")):
        parse_topology(args, 9000, set_size=set_size, is_local_host=on("10.0.0.1", "node1"))


def test_digest_is_the_same_on_every_node() -> None:
    views = [parse_topology([GRID], 9000, is_local_host=on(f"10.0.0.{n}")) for n in range(1, 5)]
    assert len({v.digest() for v in views}) == 1
    assert len({tuple(v.local_paths) + tuple(v.peers) for v in views}) == 4


SAME_LAYOUT = [
    (["http://n{1...2}/d{1...2}"], ["http://n{1...2}:9000/d{1...2}"]),
    (["/d{1...4}"], ["/d1", "/d2", "/d3", "/d4"]),
]


@pytest.mark.parametrize(("a", "b"), SAME_LAYOUT)
def test_digest_of_equivalent_arguments(a: list[str], b: list[str]) -> None:
    assert parse_topology(a, 9000, is_local_host=on("n1")).digest() == parse_topology(
        b, 9000, is_local_host=on("n1")
    ).digest()


OTHER_LAYOUTS = [
    ([GRID], None, ["http://10.0.0.{1...4}:9000/e{1...4}"], None),
    ([GRID], None, [GRID], 4),
    ([GRID], None, ["https://10.0.0.{1...4}:9000/d{1...4}"], None),
    ([GRID], None, ["http://10.0.0.{1...4}:9000/d{1...2}", "http://10.0.0.{1...4}:9000/d{3...4}"], None),
    (["http://10.0.0.{1...4}:9000/d{1...2}", "http://10.0.0.{1...4}:9000/d{3...4}"], None,
     ["http://10.0.0.{1...4}:9000/d{3...4}", "http://10.0.0.{1...4}:9000/d{1...2}"], None),
    (["http://10.0.0.1:9000/d1", "http://10.0.0.2:9000/d1"], None,
     ["http://10.0.0.2:9000/d1", "http://10.0.0.1:9000/d1"], None),
]


@pytest.mark.parametrize(("a", "size_a", "b", "size_b"), OTHER_LAYOUTS)
def test_digest_differs_for_other_arguments(
    a: list[str], size_a: int | None, b: list[str], size_b: int | None
) -> None:
    local = on("10.0.0.1")
    assert parse_topology(a, 9000, set_size=size_a, is_local_host=local).digest() != parse_topology(
        b, 9000, set_size=size_b, is_local_host=local
    ).digest()


@pytest.mark.parametrize(("host", "local"), [("127.0.0.1", True), ("localhost", True), ("192.0.2.1", False)])
def test_default_resolver(host: str, local: bool) -> None:
    assert resolves_to_this_machine(host) is local

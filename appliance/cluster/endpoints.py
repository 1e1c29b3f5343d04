"""Endpoints and topology: the `cairn server` drive arguments -> pools -> erasure sets of endpoints.

Contract: given the same arguments and listen port, every node computes the same layout and the same
`Topology.digest()`; only `Endpoint.is_local` differs from node to node. The one I/O is the local
check (name resolution and a test bind), and it is injectable.

Rules (those of MinIO):
- An argument containing `{a...b}` is one pool; arguments without ellipses together form one pool.
  Mixing both kinds is refused.
- Endpoints are all URLs (`http://` or `https://`, one scheme everywhere: distributed mode) or all
  paths (single node). A URL without a port means the port of `--address`.
- An endpoint is local when its host resolves to an address this machine can bind and its port is
  the port this node listens on.
- Set size: `set_size` when given (2 to 16, dividing every pool's drive count); otherwise, per pool,
  the largest size from 2 to 16 that divides the drive count and that is a multiple or a divisor of
  the pool's host count, so every set has the same number of drives on each host. When no size is
  symmetric this way, the largest divisor is taken (`placement.choose_set_size`).
- Drives are cut into sets in expansion order, where the host varies fastest, so consecutive drives
  of a set sit on different hosts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from appliance.cluster.placement import PlacementError, choose_set_size, expand_ellipsis, split_sets

_ELLIPSIS = re.compile(r"\{\d+\.\.\.\d+\}")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SCHEMES = ("http", "https")
MIN_SET_SIZE, MAX_SET_SIZE = 2, 16


@dataclass(frozen=True)
class Endpoint:
    """One drive: `url` is the expanded argument text; path-only endpoints have host "" and port 0."""

    url: str
    host: str
    port: int
    path: str
    is_local: bool
    pool: int
    set: int
    slot: int

    @property
    def address(self) -> str:
        """`host:port` of the node serving this drive (IPv6 hosts in brackets); "" for a path."""
        if not self.host:
            return ""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Topology:
    """pools[p][s][j] is slot j of erasure set s of pool p."""

    pools: list[list[list[Endpoint]]]
    distributed: bool
    scheme: str  # "http" or "https" in distributed mode, "" for paths

    def endpoints(self) -> list[Endpoint]:
        return [e for pool in self.pools for eset in pool for e in eset]

    @property
    def peers(self) -> list[str]:
        """Distinct `host:port` of the other nodes, in endpoint order."""
        seen: dict[str, None] = {}
        for endpoint in self.endpoints():
            if not endpoint.is_local:
                seen.setdefault(endpoint.address)
        return list(seen)

    @property
    def local_paths(self) -> list[str]:
        return [e.path for e in self.endpoints() if e.is_local]

    def digest(self) -> str:
        """SHA-256 hex of the layout (canonical endpoints, grouped by pool and set); never of is_local."""
        layout = [[[_canonical(e, self.scheme) for e in eset] for eset in pool] for pool in self.pools]
        text = json.dumps({"topology": 1, "pools": layout}, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def resolves_to_this_machine(host: str) -> bool:
    """True when some address of `host` can be bound here, i.e. belongs to one of our interfaces."""
    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return False
    for family, kind, proto, _, sockaddr in infos:
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.bind(sockaddr)
            return True
        except OSError:
            continue
    return False


@dataclass(frozen=True)
class _Drive:
    url: str
    host: str
    port: int
    path: str


def parse_topology(
    args: list[str],
    listen_port: int,
    *,
    set_size: int | None = None,
    is_local_host: Callable[[str], bool] = resolves_to_this_machine,
) -> Topology:
    """Parse the drive arguments of `cairn server` into pools of erasure sets (rules: module docstring)."""
    if not args:
        raise PlacementError("no drives given: pass drive paths or http://host:port/path URLs")
    pool_args = _pool_arguments(args)
    urls = [bool(_URL.match(a)) for a in args]
    if any(urls) and not all(urls):
        raise PlacementError(
            "drive arguments mix URLs and paths: give all URLs (several nodes) or all paths (one node)"
        )
    distributed = all(urls)
    pools_drives = [
        [_parse_drive(text, listen_port) if distributed else _Drive(text, "", 0, text) for text in drives]
        for _, drives in pool_args
    ]
    scheme = _common_scheme(pools_drives) if distributed else ""
    _refuse_duplicates(pools_drives)

    local_cache: dict[str, bool] = {}

    def local(drive: _Drive) -> bool:
        if not distributed:
            return True
        if drive.port != listen_port:
            return False
        if drive.host not in local_cache:
            local_cache[drive.host] = is_local_host(drive.host)
        return local_cache[drive.host]

    pools: list[list[list[Endpoint]]] = []
    for p, ((name, _), drives) in enumerate(zip(pool_args, pools_drives, strict=True)):
        size = _set_size_for(drives, set_size, name)
        by_url = {d.url: d for d in drives}
        groups = split_sets([d.url for d in drives], size)
        pools.append([
            [Endpoint(d.url, d.host, d.port, d.path, local(d), p, s, j)
             for j, d in enumerate(by_url[url] for url in group)]
            for s, group in enumerate(groups)
        ])
    topology = Topology(pools, distributed, scheme)
    _check_local(topology, listen_port)
    return topology


def _pool_arguments(args: list[str]) -> list[tuple[str, list[str]]]:
    """(name for messages, expanded drives) of each pool."""
    with_ellipsis = [bool(_ELLIPSIS.search(a)) for a in args]
    if all(with_ellipsis):
        return [(f"pool {a!r}", expand_ellipsis(a)) for a in args]
    if any(with_ellipsis):
        raise PlacementError(
            "drive arguments mix {a...b} ranges with single drives: either give every pool as one "
            "argument with ranges, or list every drive without ranges (one pool)"
        )
    return [("the drive list", list(args))]


def _parse_drive(text: str, listen_port: int) -> _Drive:
    parts = urlsplit(text)
    if parts.scheme not in _SCHEMES:
        raise PlacementError(f"{text!r}: only http:// and https:// endpoints are supported")
    try:
        port = parts.port
    except ValueError as exc:
        raise PlacementError(f"{text!r}: invalid port ({exc})") from None
    host = parts.hostname or ""
    if not host:
        raise PlacementError(f"{text!r}: the URL has no host name")
    if parts.path in ("", "/"):
        raise PlacementError(f"{text!r}: the URL needs the drive's path, e.g. http://host:9000/srv/drive1")
    if parts.query or parts.fragment:
        raise PlacementError(f"{text!r}: a drive URL cannot have a query or a fragment")
    return _Drive(text, host, port if port is not None else listen_port, parts.path)


def _common_scheme(pools_drives: list[list[_Drive]]) -> str:
    schemes = sorted({urlsplit(d.url).scheme for drives in pools_drives for d in drives})
    if len(schemes) > 1:
        raise PlacementError("drive URLs mix http:// and https://: every node must use the same scheme")
    return schemes[0]


def _identity(drive: _Drive) -> tuple[str, int, str]:
    path = os.path.normpath(drive.path if drive.host else os.path.abspath(drive.path))
    return (drive.host, drive.port, path)


def _refuse_duplicates(pools_drives: list[list[_Drive]]) -> None:
    seen: dict[tuple[str, int, str], str] = {}
    for drives in pools_drives:
        for drive in drives:
            key = _identity(drive)
            if key in seen:
                same = "" if seen[key] == drive.url else f" (as {seen[key]!r})"
                raise PlacementError(f"drive {drive.url!r} is given twice{same}: every drive must appear once")
            seen[key] = drive.url


def _set_size_for(drives: list[_Drive], wanted: int | None, pool_name: str) -> int:
    count = len(drives)
    if wanted is not None:
        if not MIN_SET_SIZE <= wanted <= MAX_SET_SIZE:
            raise PlacementError(f"set size {wanted} is not possible: choose from {MIN_SET_SIZE} to {MAX_SET_SIZE}")
        if count % wanted:
            raise PlacementError(
                f"{pool_name}: {count} drives cannot be cut into sets of {wanted}; "
                f"choose a set size that divides {count}"
            )
        return wanted
    hosts = len({(d.host, d.port) for d in drives})
    for size in range(MAX_SET_SIZE, MIN_SET_SIZE - 1, -1):
        if count % size == 0 and (size % hosts == 0 or hosts % size == 0):
            return size
    try:
        return choose_set_size(count)
    except PlacementError as exc:
        raise PlacementError(f"{pool_name}: {exc}; add or remove drives") from None


def _check_local(topology: Topology, listen_port: int) -> None:
    local = [e for e in topology.endpoints() if e.is_local]
    if not local:
        hosts = ", ".join(dict.fromkeys(e.address for e in topology.endpoints()))
        raise PlacementError(
            f"this node is not in the endpoint list: check --address and the host names "
            f"(listening on port {listen_port}; endpoints are on {hosts}; none resolves to an "
            f"address of this machine with that port)"
        )
    paths: dict[str, str] = {}
    for endpoint in local:
        path = os.path.normpath(endpoint.path)
        if path in paths:
            raise PlacementError(
                f"{endpoint.url!r} and {paths[path]!r} are the same drive on this node: "
                "two host names of this machine point at one path"
            )
        paths[path] = endpoint.url


def _canonical(endpoint: Endpoint, scheme: str) -> str:
    return f"{scheme}://{endpoint.address}{endpoint.path}" if endpoint.host else endpoint.path

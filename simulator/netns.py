"""A network-namespace lab: each Cairn node on its own IP address, with faults a real network has.

Contract: `NetLab` claims a free lab number N, creates bridge `cairnbr<N>` with 10.99.<N>.1/24 in
the root namespace (checked with `ip route get`, so clients in this process, the simulator's or a
test's, reach every host directly) and, per `add_host(i)`, a namespace `cairn-<N>-<i>` whose veth pair joins the bridge, with
address 10.99.<N>.(10+i)/24. Faults: `cut(i)` / `heal_link(i)` take the host-side veth down / up (a
silent blackhole); `drop(i, from_ip)` / `undrop(i, from_ip)` add / remove an iptables rule inside
host i's namespace that drops (or, with `reset=True`, answers with a TCP reset) traffic from an
address. `close()` removes exactly what this lab created, also after a failure half-way, and runs at
interpreter exit for a lab its user forgot to close. Missing `ip` or `iptables` is an error naming
the package (`support.missing_network`), never a skip.

`ClusterLab` runs the real `cairn server` on such hosts. Every node gets the same arguments: its
private folder `<root>/node<i>` is bind-mounted (recursively: drive filesystems mounted inside it go
along) on `<root>/node` inside a mount namespace of its own (`unshare --mount`), so the drive paths in the shared URL list name a different folder on each node,
as they would on separate machines; TMPDIR and --lock-dir live there too, so no node shares a lock
file with another. Each node runs in its own process group (kill / pause / resume reach its workers)
and writes its output to `<root>/logs/node<i>.log`.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator import support
from simulator.cluster import ROOT_PASSWORD, ROOT_USER
from simulator.process import clean_env, group_members, http_status, s3_client, tool
from simulator.waiting import wait_until

SUBNET_PREFIX = "10.99"
LAB_NUMBERS = range(1, 255)
COMMAND_TIMEOUT = 30.0
NODE_READY_TIMEOUT = 30.0
CLUSTER_READY_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0
S3_PORT = 9000
CONSOLE_PORT = 9001

_open_labs: set[NetLab] = set()


class LabError(AssertionError):
    """The lab could not be built, changed or torn down as asked."""


def require_network() -> None:
    """Fail (never skip) when this machine lacks what the lab needs: root, `ip`, `iptables`, namespaces."""
    problems = support.missing_distributed()
    if problems:
        raise LabError("the network-namespace lab cannot run here: " + "; ".join(problems))


def run_checked(args: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run a command; raise `LabError` with its output when it fails."""
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise LabError(f"{' '.join(args)} exited {result.returncode}: {result.stderr.strip() or result.stdout.strip()}")
    return result


def kill_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send `sig` to the process group `process` leads, while any member of it is alive."""
    if process.poll() is None or group_members(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)


def reap_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process group and wait until none of its members is left."""
    kill_group(process, signal.SIGKILL)
    process.wait(timeout=COMMAND_TIMEOUT)
    wait_until(lambda: not group_members(process.pid), 10, message=f"process group {process.pid} to vanish")


@dataclass
class Host:
    """One network namespace on the lab's bridge; commands run in it through `ip netns exec`."""

    index: int
    namespace: str
    address: str
    host_veth: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.namespace]

    def run(self, cmd: Sequence[str], check: bool = True, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run `cmd` in this host's namespace to completion; with `check`, a failure raises `LabError`."""
        if check:
            return run_checked(self.prefix() + list(cmd), timeout)
        return subprocess.run(self.prefix() + list(cmd), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def popen(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start `cmd` in this host's namespace, in a process group of its own; the lab kills it on close."""
        kwargs.setdefault("start_new_session", True)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        process: subprocess.Popen[bytes] = subprocess.Popen(self.prefix() + list(cmd), **kwargs)
        self.processes.append(process)
        return process


class NetLab:
    """A bridge in the root namespace and hosts in namespaces on it; see the module docstring."""

    def __init__(self) -> None:
        self.number = -1
        self.bridge = ""
        self.hosts: dict[int, Host] = {}
        self._undo: list[tuple[str, Callable[[], object]]] = []
        self._rules: set[tuple[int, str, bool]] = set()

    def __enter__(self) -> NetLab:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def gateway(self) -> str:
        """The bridge's address: where clients in the test process come from."""
        return self.ip(0)

    def ip(self, i: int) -> str:
        """Address of host i (i=0: the bridge in the root namespace)."""
        return f"{SUBNET_PREFIX}.{self.number}.{1 if i == 0 else 10 + i}"

    def open(self) -> None:
        require_network()
        _open_labs.add(self)
        try:
            self._claim_bridge()
            bridge = self.bridge
            run_checked(["ip", "addr", "add", f"{self.gateway}/24", "dev", bridge])
            run_checked(["ip", "link", "set", bridge, "up"])
            probe = self.ip(1)
            route = run_checked(["ip", "route", "get", probe]).stdout
            if f" dev {bridge} " not in f" {route} ":
                raise LabError(f"{probe} is not routed via {bridge} from the root namespace: {route.strip()}")
        except BaseException:
            self.close()
            raise

    def _claim_bridge(self) -> None:
        """Take the first lab number whose bridge, subnet and namespaces nobody uses; `ip link add` is the claim."""
        in_use = run_checked(["ip", "-4", "-o", "addr"]).stdout + run_checked(["ip", "-4", "route"]).stdout
        namespaces = run_checked(["ip", "netns", "list"]).stdout
        for number in LAB_NUMBERS:
            subnet = f"{SUBNET_PREFIX}.{number}."
            if subnet in in_use or f"cairn-{number}-" in namespaces:
                continue
            bridge = f"cairnbr{number}"
            claim = subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], capture_output=True, text=True,
                                   timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
            if claim.returncode == 0:
                self.number, self.bridge = number, bridge
                self._undo.append((f"delete bridge {bridge}", functools.partial(run_checked, ["ip", "link", "del", bridge])))
                return
        raise LabError(f"no free lab number in {LAB_NUMBERS}: leftover cairnbr* bridges? (`ip link`)")

    def add_host(self, i: int) -> Host:
        """Create namespace cairn-<N>-<i> at 10.99.<N>.(10+i), wired to the bridge, loopback up."""
        if not 1 <= i <= 244 or i in self.hosts:
            raise LabError(f"host {i} exists already or is out of range 1..244")
        namespace, host_veth = f"cairn-{self.number}-{i}", f"cairn{self.number}-{i}h"
        run_checked(["ip", "netns", "add", namespace])
        self._undo.append((f"delete namespace {namespace}", lambda: run_checked(["ip", "netns", "del", namespace])))
        run_checked(["ip", "link", "add", host_veth, "type", "veth", "peer", "name", "eth0", "netns", namespace])
        self._undo.append((f"delete veth {host_veth}", lambda: _delete_link(host_veth)))
        run_checked(["ip", "link", "set", host_veth, "master", self.bridge, "up"])
        host = Host(i, namespace, self.ip(i), host_veth)
        host.run(["ip", "addr", "add", f"{host.address}/24", "dev", "eth0"])
        host.run(["ip", "link", "set", "eth0", "up"])
        host.run(["ip", "link", "set", "lo", "up"])
        self.hosts[i] = host
        self._undo.append((f"stop processes of host {i}", lambda: _reap_all(host.processes)))
        return host

    def host(self, i: int) -> Host:
        return self.hosts[i]

    def cut(self, i: int) -> None:
        """Take host i's link down: its packets vanish, idle connections hang until timeouts."""
        run_checked(["ip", "link", "set", self.hosts[i].host_veth, "down"])

    def heal_link(self, i: int) -> None:
        run_checked(["ip", "link", "set", self.hosts[i].host_veth, "up"])

    def _rule(self, from_ip: str, reset: bool) -> list[str]:
        if reset:
            # Resets themselves pass: with rules both ways (a partition) each side must hear the other's.
            return ["INPUT", "-s", from_ip, "-p", "tcp", "!", "--tcp-flags", "RST", "RST",
                    "-j", "REJECT", "--reject-with", "tcp-reset"]
        return ["INPUT", "-s", from_ip, "-j", "DROP"]

    def drop(self, i: int, from_ip: str, reset: bool = False) -> None:
        """Inside host i, drop traffic from `from_ip` (with `reset`: refuse its TCP with a reset instead)."""
        if (i, from_ip, reset) in self._rules:
            return
        self.hosts[i].run(["iptables", "-A", *self._rule(from_ip, reset)])
        self._rules.add((i, from_ip, reset))

    def undrop(self, i: int, from_ip: str | None = None) -> None:
        """Remove host i's rules against `from_ip` (None: all of host i's rules)."""
        for rule in sorted(self._rules):
            host, source, reset = rule
            if host == i and from_ip in (None, source):
                self.hosts[i].run(["iptables", "-D", *self._rule(source, reset)])
                self._rules.discard(rule)

    def partition(self, side_a: Iterable[int], side_b: Iterable[int], reset: bool = False) -> None:
        """Drop all traffic between the hosts of `side_a` and those of `side_b`, both ways."""
        side_a, side_b = list(side_a), list(side_b)
        for a in side_a:
            for b in side_b:
                self.drop(a, self.ip(b), reset)
                self.drop(b, self.ip(a), reset)

    def heal_all(self) -> None:
        """Links up and every drop rule gone."""
        for i in self.hosts:
            self.heal_link(i)
            self.undrop(i)

    def close(self) -> None:
        """Undo everything this lab created, newest first; report every step that failed, after trying all."""
        failures = []
        while self._undo:
            what, undo = self._undo.pop()
            try:
                undo()
            except Exception as exc:
                failures.append(f"{what}: {exc}")
        self.hosts.clear()
        self._rules.clear()
        _open_labs.discard(self)
        if failures:
            raise LabError("lab cleanup failed:\n" + "\n".join(failures))


def _delete_link(name: str) -> None:
    """Delete a link unless it is already gone (deleting a namespace takes its veth pair with it)."""
    if subprocess.run(["ip", "link", "show", name], capture_output=True, stdin=subprocess.DEVNULL).returncode == 0:
        run_checked(["ip", "link", "del", name])


def _reap_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        kill_group(process, signal.SIGCONT)
        reap_group(process)


@atexit.register
def _close_leftover_labs() -> None:
    for lab in list(_open_labs):
        with contextlib.suppress(LabError):
            lab.close()


@dataclass
class Node:
    """One `cairn server` of a `ClusterLab`."""

    index: int
    host: Host
    private_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    paused: bool = False
    starts: int = 0

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host.address}:{S3_PORT}"


class ClusterLab:
    """`nodes` Cairn servers, one per namespace host, each with `drives_per_node` private drive folders.

    `distributed=True` gives every node the URL list `http://10.99.N.1{1...n}:9000<root>/node/d{1...k}`;
    `distributed=False` runs ordinary single-node servers on `<root>/node/d{1...k}` (the lab's own check).
    `server_args` go before the drives (e.g. `--parity 4`, `--set-size 8`).
    """

    def __init__(self, root: Path, nodes: int = 4, drives_per_node: int = 4, server_args: Sequence[str] = (),
                 distributed: bool = True, workers: int = 1, env: Mapping[str, str] | None = None) -> None:
        if not 1 <= nodes <= 9:
            raise LabError("the URL pattern 10.99.N.1{1...n} allows 1 to 9 nodes")
        self.root = root
        self.node_count = nodes
        self.drives_per_node = drives_per_node
        self.server_args = tuple(server_args)
        self.distributed = distributed
        self.workers = workers
        self.shared_dir = root / "node"
        self.access_key, self.secret_key = ROOT_USER, ROOT_PASSWORD
        self.env = clean_env()
        self.env.update({"CAIRN_ROOT_USER": self.access_key, "CAIRN_ROOT_PASSWORD": self.secret_key,
                         "PYTHONUNBUFFERED": "1", "TMPDIR": str(self.shared_dir / "tmp")})
        self.env.update(env or {})
        self.net = NetLab()
        self.nodes: dict[int, Node] = {}

    def __enter__(self) -> ClusterLab:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Build the network and the folders; start no server yet."""
        self.net.open()
        try:
            (self.root / "logs").mkdir(parents=True, exist_ok=True)
            self.shared_dir.mkdir(exist_ok=True)
            for i in range(1, self.node_count + 1):
                private = self.root / f"node{i}"
                for sub in [f"d{d}" for d in range(1, self.drives_per_node + 1)] + ["locks", "tmp"]:
                    (private / sub).mkdir(parents=True, exist_ok=True)
                self.nodes[i] = Node(i, self.net.add_host(i), private, self.root / "logs" / f"node{i}.log")
        except BaseException:
            self.close()
            raise

    def drive_args(self) -> list[str]:
        """The drive arguments every node gets, identical on all of them."""
        local = f"{self.shared_dir}/d{{1...{self.drives_per_node}}}"
        if not self.distributed:
            return [local]
        return [f"http://{SUBNET_PREFIX}.{self.net.number}.1{{1...{self.node_count}}}:{S3_PORT}{local}"]

    def server_command(self, i: int) -> list[str]:
        """`cairn server ...` for node i: only --address / --console-address differ between nodes."""
        address = self.nodes[i].host.address
        return [tool("cairn"), "server",
                "--address", f"{address}:{S3_PORT}",
                "--console-address", f"{address}:{CONSOLE_PORT}",
                "--workers", str(self.workers),
                "--lock-dir", str(self.shared_dir / "locks"),
                *self.server_args, *self.drive_args()]

    def command(self, i: int) -> list[str]:
        """The full command line run in the root namespace for node i (what the log's header shows)."""
        node = self.nodes[i]
        mount_then_exec = 'mount --rbind "$1" "$2" && shift 2 && exec "$@"'
        return [*node.host.prefix(), "unshare", "--mount", "--propagation", "private", "--",
                "sh", "-c", mount_then_exec, f"cairn-node{i}", str(node.private_dir), str(self.shared_dir),
                *self.server_command(i)]

    def start(self, i: int) -> None:
        """Start node i's process (do not wait for it; see `wait_ready`)."""
        node = self.nodes[i]
        if node.running():
            raise LabError(f"node {i} is already running")
        node.starts += 1
        node.paused = False
        with open(node.log_path, "ab") as log:
            log.write(f"\n===== start #{node.starts}: {' '.join(self.command(i))}\n".encode())
            log.flush()
            node.process = subprocess.Popen(self.command(i), cwd=self.root, env=self.env, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        node.host.processes.append(node.process)

    def start_all(self, timeout: float = CLUSTER_READY_TIMEOUT) -> None:
        for i in self.nodes:
            self.start(i)
        self.wait_cluster_ready(timeout)

    def ready(self, i: int) -> bool:
        return http_status(self.nodes[i].host.address, S3_PORT, "/minio/health/ready", timeout=1.0) == 200

    def wait_ready(self, i: int, timeout: float = NODE_READY_TIMEOUT) -> None:
        """Wait until node i answers /minio/health/ready with 200; fail with its log if it exits or times out."""
        node = self.nodes[i]
        deadline = time.monotonic() + timeout
        while not self.ready(i):
            if node.process is None or node.process.poll() is not None:
                code = None if node.process is None else node.process.returncode
                raise LabError(f"node {i} exited with {code} before it was ready\n{self.log_tail(i)}")
            if time.monotonic() >= deadline:
                raise LabError(f"node {i} not ready within {timeout:g} s\n{self.log_tail(i)}")
            time.sleep(0.1)

    def wait_cluster_ready(self, timeout: float = CLUSTER_READY_TIMEOUT, dead_drives: int = 0) -> None:
        """Every node ready, and every node sees every drive online again (a node that came back is
        noticed by its peers' drive monitors within seconds, not at once), but for `dead_drives`
        drives known to be broken."""
        deadline = time.monotonic() + timeout
        for i in self.nodes:
            self.wait_ready(i, max(1.0, deadline - time.monotonic()))
        for i in self.nodes:
            wait_until(functools.partial(self.drives_online, i, dead_drives), max(1.0, deadline - time.monotonic()),
                       message=f"node {i} sees every drive online" + (f" but {dead_drives}" if dead_drives else ""))

    def drives_online(self, i: int, dead_drives: int = 0) -> bool:
        """Whether node i's `cairn admin info` lists every drive of the cluster, but `dead_drives`, as online."""
        try:
            info = self.cairn(i, "admin", "info", timeout=20)
        except subprocess.TimeoutExpired:
            return False  # a peer that is still starting can hold the answer up: ask again
        states = [line.split()[0] for line in info.stdout.splitlines() if line.startswith("  ")]
        return info.returncode == 0 and bool(states) and sum(state != "online" for state in states) <= dead_drives

    def kill(self, i: int) -> None:
        """SIGKILL node i and all its workers at once, as a crash would."""
        node = self.nodes[i]
        if node.process is not None:
            reap_group(node.process)
        node.paused = False

    def pause(self, i: int) -> None:
        """SIGSTOP node i's whole process group: it keeps its sockets but answers nothing."""
        node = self.nodes[i]
        if node.process is None:
            raise LabError(f"node {i} was never started")
        kill_group(node.process, signal.SIGSTOP)
        node.paused = True

    def resume(self, i: int) -> None:
        node = self.nodes[i]
        if node.process is not None:
            kill_group(node.process, signal.SIGCONT)
        node.paused = False

    def stop(self, i: int, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM node i (continuing it first if paused); SIGKILL what is left after `timeout`."""
        node = self.nodes[i]
        if node.process is None:
            return
        self.resume(i)
        kill_group(node.process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.process.wait(timeout)
        self.kill(i)

    def restart(self, i: int, timeout: float = CLUSTER_READY_TIMEOUT) -> None:
        """Stop node i if it runs, start it on the same drives and wait until it is ready."""
        self.stop(i)
        self.start(i)
        self.wait_ready(i, timeout)

    def recover(self, timeout: float = CLUSTER_READY_TIMEOUT) -> None:
        """Undo every fault: links up, drop rules gone, paused nodes continued, dead nodes started; wait ready."""
        self.net.heal_all()
        for i, node in self.nodes.items():
            if node.paused:
                self.resume(i)
            if not node.running():
                if node.process is not None:
                    self.kill(i)  # a crashed node may have left workers behind
                self.start(i)
        self.wait_cluster_ready(timeout)

    def s3(self, i: int, **config: Any) -> Any:
        """A boto3 client for node i: path-style, connect timeout 2 s, read timeout 10 s, no retries.

        `config` overrides botocore `Config` fields (e.g. `read_timeout=60`).
        """
        return s3_client(self.nodes[i].endpoint, self.access_key, self.secret_key,
                         **{"connect_timeout": 2, "read_timeout": 10, **config})

    def cairn(self, i: int, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run `cairn ARGS...` from the test process against node i (CAIRN_ENDPOINT and admin credentials set)."""
        env = clean_env()
        env.update({"CAIRN_ACCESS_KEY": self.access_key, "CAIRN_SECRET_KEY": self.secret_key,
                    "CAIRN_ENDPOINT": self.nodes[i].endpoint})
        return subprocess.run([tool("cairn"), *args], env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def in_node(self, i: int, cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """Run `cmd` inside running node i's network and mount namespaces (it sees that node's folders)."""
        node = self.nodes[i]
        if not node.running() or node.process is None:
            raise LabError(f"node {i} is not running")
        return subprocess.run(["nsenter", "--target", str(node.process.pid), "--mount", "--net", "--", *cmd],
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)

    def log_tail(self, i: int, lines: int = 60) -> str:
        path = self.nodes[i].log_path
        try:
            tail = path.read_text(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            tail = []
        return f"--- last {len(tail)} lines of {path} ---\n" + "\n".join(tail)

    def close(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL), then tear the network down."""
        try:
            for i in list(self.nodes):
                self.stop(i, timeout=5)
        finally:
            self.nodes.clear()
            self.net.close()

"""Scenarios as data: the YAML a scenario file holds, parsed and checked into typed steps.

Contract: `parse_scenario(doc)` turns one mapping (from YAML) into a `Scenario` or raises
`ScenarioError` naming the field at fault; nothing reaches the runner unchecked. A scenario is a
cluster shape, a workload written and checksummed first, and a list of steps, each one action.
The shape is one node (`drives`: one erasure set, `parity`, which slots sit behind `fuse`) or, with
`nodes` > 1, a distributed cluster in network namespaces (`nodes`, `drives_per_node`, `set_size`
(default: all drives, at most 16), `parity` per set); there `drives` is the set size, `node:` is
refused (node faults take its place) and drive faults are the ones a loop-mounted filesystem shows to
a running node from outside its namespace (`DISTRIBUTED_DRIVE_FAULTS`): `fault: KIND, drives: [j]`
hits slot j of every erasure set, i.e. the drive that holds it on its node. Node faults name nodes
1..nodes:

    kill-node: N | [N...]          (SIGKILL the node's process group)
    pause-node / resume-node: N    (SIGSTOP / SIGCONT)
    cut-link / heal-link: N        (the node's veth down / up: a silent blackhole)
    partition: [[1, 2], [3, 4]]    (drop traffic between the groups; `reject: true` answers TCP with
                                    resets instead of silence)
    heal-partition: true
    restart-node: N                (stop if running, start, wait until the cluster sees all drives)
    load: {..., sigkill_at: [s], kill_node: N}
                                   (SIGKILL node N, default the last, at each time, then restart it)

Single-node steps:

    fault: KIND, drives: [slots]   (dead, missing, full, readonly, bitrot, truncate, meta_delete,
                                    meta_corrupt, slow, flaky; damage kinds take `count`: files, 0=all;
                                    slow/flaky take `latency`, `eio`, `ops`)
    recover: KIND, drives: [slots] (undo a non-destructive fault: a dead drive is remounted, a missing
                                    one put back, a full one emptied, read-only made writable,
                                    slow/flaky cleared; damage is not recovered but healed)
    replace: [slots]               (a fresh empty filesystem in each slot)
    node: sigkill | sigstop | sigcont | restart
    load: {seconds, writers, readers, sigkill_at: [s], background}
    wait_load: true                (join a background load)
    wait_healing_started: SECONDS
    expect: {reads: succeed|fail|auto, writes: succeed|fail|auto, healed_within: SECONDS,
             redundancy: restored}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DRIVE_FAULTS = {"dead", "missing", "full", "readonly", "bitrot", "truncate", "meta_delete", "meta_corrupt",
                "slow", "flaky"}
NODE_FAULTS = {"kill-node", "pause-node", "resume-node", "cut-link", "heal-link", "partition", "heal-partition",
               "restart-node"}
# Drive faults of a distributed scenario: the drive stays mounted in the node's namespace, so only
# what acts on the filesystem itself reaches it (not an unmount, a new filesystem or a FUSE layer).
DISTRIBUTED_DRIVE_FAULTS = {"dead", "full", "readonly", "bitrot", "truncate", "meta_delete", "meta_corrupt"}
DISTRIBUTED_RECOVERIES = {"full", "readonly"}
# What a node fault does to the node's drives, seen from the node the simulator reads through.
NODE_FAULT_KINDS = {"kill-node": "node_down", "pause-node": "node_paused", "cut-link": "link_cut",
                    "partition": "partitioned"}
NODE_FAULT_UNDO = {"resume-node": "node_paused", "heal-link": "link_cut", "heal-partition": "partitioned"}
# Faults that make a drive's copies unreadable while they last (count against read tolerance).
READ_FAULTS = {"dead", "missing", "replaced", "bitrot", "truncate", "meta_delete", "meta_corrupt", "flaky",
               *NODE_FAULT_KINDS.values()}
# Faults that make a drive refuse writes (count against write tolerance).
WRITE_FAULTS = {"dead", "missing", "full", "readonly", "flaky", *NODE_FAULT_KINDS.values()}
# Faults that destroy the drive's copies: only healing brings them back.
DESTRUCTIVE = {"replaced", "bitrot", "truncate", "meta_delete", "meta_corrupt"}
NODE_ACTIONS = {"sigkill", "sigstop", "sigcont", "restart"}
OUTCOMES = {"succeed", "fail", "auto"}
STEP_KEYS = {"fault", "recover", "replace", "node", "load", "wait_load", "wait_healing_started", "expect"} | NODE_FAULTS
SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB)?\s*$")
UNITS = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024 * 1024}


class ScenarioError(ValueError):
    """A scenario document is not valid; the message names the scenario and the field."""


@dataclass
class Workload:
    objects: int = 12
    sizes: list[int] = field(default_factory=lambda: [1024, 100 * 1024, 600 * 1024])
    seed: int = 1


@dataclass
class Step:
    action: str
    kind: str = ""
    drives: list[int] = field(default_factory=list)
    count: int = 0
    latency: float = 0.0
    eio: float = 0.0
    ops: list[str] = field(default_factory=list)
    seconds: float = 0.0
    writers: int = 1
    readers: int = 1
    sigkill_at: list[float] = field(default_factory=list)
    kill_node: int = 0  # distributed: the node `sigkill_at` kills (restarted after each kill)
    background: bool = False
    nodes: list[int] = field(default_factory=list)
    groups: list[list[int]] = field(default_factory=list)
    reject: bool = False
    reads: str = ""
    writes: str = ""
    healed_within: float = 0.0
    redundancy: bool = False

    def describe(self) -> str:
        if self.action in ("fault", "recover"):
            return f"{self.action} {self.kind} on drives {self.drives}"
        if self.action == "replace":
            return f"replace drives {self.drives}"
        if self.action == "node":
            return f"node {self.kind}"
        if self.action == "partition":
            how = " (TCP resets)" if self.reject else ""
            return "partition " + " | ".join(str(g) for g in self.groups) + how
        if self.action in NODE_FAULTS and self.nodes:
            return f"{self.action} {', '.join(map(str, self.nodes))}"
        if self.action == "load":
            victim = f" of node {self.kill_node}" if self.kill_node else ""
            kills = f", SIGKILL{victim} at {self.sigkill_at} s" if self.sigkill_at else ""
            bg = " (background)" if self.background else ""
            return f"load {self.seconds:g} s, {self.writers} writers, {self.readers} readers{kills}{bg}"
        if self.action == "expect":
            parts = [f"reads {self.reads}" if self.reads else "", f"writes {self.writes}" if self.writes else "",
                     f"healed within {self.healed_within:g} s" if self.healed_within else "",
                     "redundancy restored" if self.redundancy else ""]
            return "expect " + ", ".join(p for p in parts if p)
        if self.action == "wait_healing_started":
            return f"wait until healing has started (up to {self.seconds:g} s)"
        return self.action


@dataclass
class Scenario:
    name: str
    drives: int
    parity: int
    steps: list[Step]
    workload: Workload = field(default_factory=Workload)
    fuse: list[int] = field(default_factory=list)
    description: str = ""
    broken_engine: bool = False  # run with CAIRN_DEBUG_DISABLE_HEAL=1: this scenario must FAIL
    nodes: int = 1
    drives_per_node: int = 0  # distributed only; `drives` is then the erasure set size

    @property
    def distributed(self) -> bool:
        return self.nodes > 1

    @property
    def k(self) -> int:
        return self.drives - self.parity

    @property
    def write_tolerance(self) -> int:
        """Drives that may refuse a write while writes still succeed (write quorum k, or k+1 if k == m)."""
        quorum = self.k + 1 if self.k == self.parity and self.parity > 0 else self.k
        return self.drives - quorum


def parse_size(value: Any, where: str) -> int:
    if isinstance(value, int) and value >= 0:
        return value
    match = SIZE_RE.match(str(value))
    if match is None:
        raise ScenarioError(f"{where}: {value!r} is not a size (e.g. 4096, 64KiB, 3MiB)")
    return int(float(match.group(1)) * UNITS[match.group(2)])


def _slots(value: Any, drives: int, where: str) -> list[int]:
    slots = [value] if isinstance(value, int) else value
    if not isinstance(slots, list) or not all(isinstance(s, int) and 0 <= s < drives for s in slots):
        raise ScenarioError(f"{where}: drives must be slot numbers from 0 to {drives - 1}, got {value!r}")
    return list(slots)


def _outcome(value: Any, where: str) -> str:
    if value not in OUTCOMES:
        raise ScenarioError(f"{where}: expected one of {sorted(OUTCOMES)}, got {value!r}")
    return str(value)


def _node_numbers(value: Any, nodes: int, where: str) -> list[int]:
    numbers = [value] if isinstance(value, int) else value
    if not isinstance(numbers, list) or not numbers or not all(isinstance(n, int) and 1 <= n <= nodes
                                                               for n in numbers):
        raise ScenarioError(f"{where}: nodes are numbered 1 to {nodes}, got {value!r}")
    return list(numbers)


def _partition_groups(value: Any, nodes: int, where: str) -> list[list[int]]:
    if not isinstance(value, list) or len(value) < 2:
        raise ScenarioError(f"{where}: partition takes two or more groups of nodes, e.g. [[1, 2], [3, 4]]")
    groups = [_node_numbers(group, nodes, where) for group in value]
    listed = [n for group in groups for n in group]
    if sorted(listed) != list(range(1, nodes + 1)):
        raise ScenarioError(f"{where}: partition groups must hold every node 1 to {nodes} exactly once, got {value!r}")
    return groups


def parse_node_fault(action: str, raw: dict[str, Any], nodes: int, where: str) -> Step:
    value = raw[action]
    if action == "partition":
        return Step(action, groups=_partition_groups(value, nodes, where), reject=bool(raw.get("reject", False)))
    if action == "heal-partition":
        return Step(action)
    return Step(action, nodes=_node_numbers(value, nodes, where))


def parse_step(raw: Any, drives: int, fuse: list[int], where: str, nodes: int = 1) -> Step:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: a step is a mapping, got {raw!r}")
    actions = STEP_KEYS & raw.keys()
    if len(actions) != 1:
        raise ScenarioError(f"{where}: a step has exactly one of {sorted(STEP_KEYS)}, got {sorted(raw)}")
    action = actions.pop()
    value = raw[action]
    if action in NODE_FAULTS:
        if nodes == 1:
            raise ScenarioError(f"{where}: {action} needs a distributed scenario (nodes > 1); one node uses `node:`")
        return parse_node_fault(action, raw, nodes, where)
    if nodes > 1 and action in ("replace", "node"):
        raise ScenarioError(f"{where}: {action} is for single-node scenarios; a distributed one has node faults: "
                            f"{sorted(NODE_FAULTS)}")
    if nodes > 1 and action in ("fault", "recover"):
        allowed = DISTRIBUTED_DRIVE_FAULTS if action == "fault" else DISTRIBUTED_RECOVERIES
        if value not in allowed:
            raise ScenarioError(f"{where}: a distributed scenario can {action} {sorted(allowed)}, not {value!r} "
                                "(its drives stay mounted inside the node's namespace)")
    if action in ("fault", "recover"):
        if value not in DRIVE_FAULTS:
            raise ScenarioError(f"{where}: unknown fault {value!r}; known: {sorted(DRIVE_FAULTS)}")
        if action == "recover" and value in DESTRUCTIVE:
            raise ScenarioError(f"{where}: {value} destroys data: it is healed (expect healed_within), not recovered")
        slots = _slots(raw.get("drives", [0]), drives, where)
        if value in ("slow", "flaky") and not set(slots) <= set(fuse):
            raise ScenarioError(f"{where}: {value} needs FUSE slots; list {slots} in the scenario's `fuse`")
        if value in ("missing", "dead") and set(slots) & set(fuse):
            raise ScenarioError(f"{where}: {value} is injected below FUSE slots; use drives not in `fuse`")
        ops = raw.get("ops", ["read", "write", "open", "create"])
        return Step(action, kind=value, drives=slots, count=int(raw.get("count", 0)),
                    latency=float(raw.get("latency", 0.0)), eio=float(raw.get("eio", 0.0)), ops=list(ops))
    if action == "replace":
        slots = _slots(value, drives, where)
        if set(slots) & set(fuse):
            raise ScenarioError(f"{where}: replace is injected below FUSE slots; use drives not in `fuse`")
        return Step(action, kind="replaced", drives=slots)
    if action == "node":
        if value not in NODE_ACTIONS:
            raise ScenarioError(f"{where}: node action must be one of {sorted(NODE_ACTIONS)}, got {value!r}")
        return Step(action, kind=value)
    if action == "load":
        if not isinstance(value, dict) or float(value.get("seconds", 0)) <= 0:
            raise ScenarioError(f"{where}: load needs a mapping with seconds > 0")
        kills = [float(t) for t in value.get("sigkill_at", [])]
        if any(not 0 < t < float(value["seconds"]) for t in kills):
            raise ScenarioError(f"{where}: sigkill_at times must fall inside the load's seconds")
        if "kill_node" in value and nodes == 1:
            raise ScenarioError(f"{where}: kill_node needs a distributed scenario (nodes > 1)")
        victim = _node_numbers(value.get("kill_node", nodes), nodes, where)[0] if nodes > 1 and kills else 0
        if kills and value.get("background"):
            raise ScenarioError(f"{where}: a load with sigkill_at runs in the foreground")
        return Step(action, seconds=float(value["seconds"]), writers=int(value.get("writers", 1)),
                    readers=int(value.get("readers", 1)), sigkill_at=kills, kill_node=victim,
                    background=bool(value.get("background", False)))
    if action == "wait_load":
        return Step(action)
    if action == "wait_healing_started":
        return Step(action, seconds=float(value))
    if not isinstance(value, dict) or not value.keys() <= {"reads", "writes", "healed_within", "redundancy"}:
        raise ScenarioError(f"{where}: expect takes reads, writes, healed_within, redundancy; got {value!r}")
    if value.get("redundancy", "restored") != "restored":
        raise ScenarioError(f"{where}: redundancy can only be expected `restored`")
    return Step(action, reads=_outcome(value["reads"], where) if "reads" in value else "",
                writes=_outcome(value["writes"], where) if "writes" in value else "",
                healed_within=float(value.get("healed_within", 0.0)), redundancy="redundancy" in value)


def parse_scenario(doc: Any, source: str = "<scenario>") -> Scenario:
    if not isinstance(doc, dict):
        raise ScenarioError(f"{source}: a scenario is a mapping")
    name = doc.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        raise ScenarioError(f"{source}: name must be lowercase letters, digits, '.', '_' or '-', got {name!r}")
    where = f"{source}: {name}"
    nodes, drives_per_node, drives = _shape(doc, where)
    parity = doc.get("parity")
    if not isinstance(parity, int) or not 0 <= parity <= drives // 2:
        raise ScenarioError(f"{where}: parity must be 0 to {drives // 2}, got {parity!r}")
    fuse = _slots(doc.get("fuse", []), drives, f"{where}: fuse")
    raw_w = doc.get("workload", {}) or {}
    if not isinstance(raw_w, dict):
        raise ScenarioError(f"{where}: workload must be a mapping")
    sizes = [parse_size(s, f"{where}: workload.sizes") for s in raw_w.get("sizes", Workload().sizes)]
    workload = Workload(objects=int(raw_w.get("objects", Workload.objects)), sizes=sizes or [1024],
                        seed=int(raw_w.get("seed", 1)))
    raw_steps = doc.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ScenarioError(f"{where}: steps must be a non-empty list")
    steps = [parse_step(s, drives, fuse, f"{where}: step {i + 1}", nodes) for i, s in enumerate(raw_steps)]
    return Scenario(name=name, drives=drives, parity=parity, steps=steps, workload=workload, fuse=fuse,
                    description=str(doc.get("description", "")), broken_engine=bool(doc.get("broken_engine")),
                    nodes=nodes, drives_per_node=drives_per_node)


def _shape(doc: dict[str, Any], where: str) -> tuple[int, int, int]:
    """(nodes, drives per node, drives per erasure set) of a scenario document."""
    nodes = doc.get("nodes", 1)
    if not isinstance(nodes, int) or not 1 <= nodes <= 9:
        raise ScenarioError(f"{where}: nodes must be 1 to 9, got {nodes!r}")
    if nodes == 1:
        drives = doc.get("drives")
        if not isinstance(drives, int) or not 2 <= drives <= 16:
            raise ScenarioError(f"{where}: drives must be 2 to 16 (one erasure set), got {drives!r}")
        return 1, 0, drives
    if "drives" in doc or "fuse" in doc:
        raise ScenarioError(f"{where}: a distributed scenario gives drives_per_node and set_size, not drives or fuse")
    per_node = doc.get("drives_per_node")
    if not isinstance(per_node, int) or not 1 <= per_node <= 16:
        raise ScenarioError(f"{where}: drives_per_node must be 1 to 16, got {per_node!r}")
    total = nodes * per_node
    set_size = doc.get("set_size", total)
    if not isinstance(set_size, int) or not 2 <= set_size <= 16 or total % set_size or set_size % nodes:
        raise ScenarioError(f"{where}: set_size must be 2 to 16, divide the {total} drives and be a multiple of "
                            f"the {nodes} nodes (each set spans every node alike), got {set_size!r}")
    return nodes, per_node, set_size


def load_file(path: Path) -> list[Scenario]:
    """Every scenario in a YAML file (one document, a list, or several `---` documents)."""
    out: list[Scenario] = []
    for doc in yaml.safe_load_all(path.read_text()):
        for item in doc if isinstance(doc, list) else [doc]:
            out.append(parse_scenario(item, str(path)))
    return out

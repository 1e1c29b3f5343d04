"""The scenario library: the matrix of drives x parity x faults, generated as plain data.

Contract: every function returns scenario documents (dicts, exactly what a YAML file holds), which
`scenario.parse_scenario` checks like any hand-written file. `ci_library()` is the size that runs
in the test suite (4 drives where that suffices, small objects) and is also stored as
`scenarios/ci.yaml`; `long_library()` is the full matrix for sets of 4, 8 and 16 drives at every
parity: 0 to parity+1 failed drives, mixed faults, SIGKILL under load, a drive failing during
healing, a replaced drive healing under client writes, bitrot, slow and flaky drives, a frozen
node, and the broken-engine check. Both hold the distributed scenarios (`distributed()`): 4 nodes x
4 drives in network namespaces, two EC 4+4 sets, with a node killed and restarted, a node paused, a
link cut, a 2|2 partition, the node clients write through SIGKILLed under load, and dead, rotten,
full and read-only drives on top of a dead node. The long run adds `eight_nodes()`: 8 nodes x 2
drives in one EC 12+4 set, losing two nodes (parity) and three (beyond it).
"""

from __future__ import annotations

import random
from typing import Any

Doc = dict[str, Any]
HEAL_WITHIN = 60


def _workload(objects: int, big: bool) -> Doc:
    sizes = ["1KiB", "96KiB", "300KiB", "2MiB"] if not big else ["4KiB", "256KiB", "3MiB", "9MiB"]
    return {"objects": objects, "sizes": sizes, "seed": 7}


def _write_tolerance(n: int, p: int) -> int:
    k = n - p
    return n - (k + 1 if k == p and p > 0 else k)


def _healed() -> Doc:
    return {"expect": {"healed_within": HEAL_WITHIN, "redundancy": "restored"}}


def failures(n: int, p: int, f: int, big: bool = False) -> Doc:
    """f drives go missing at once, then come back: within parity nothing fails, beyond it only cleanly."""
    lost = list(range(f))
    steps: list[Doc] = []
    if f:
        steps.append({"fault": "missing", "drives": lost})
    steps.append({"expect": {"reads": "succeed" if f <= p else "fail",
                             "writes": "succeed" if f <= _write_tolerance(n, p) else "fail"}})
    if f:
        steps += [{"recover": "missing", "drives": lost}, {"expect": {"reads": "succeed", "writes": "succeed"}}]
    steps.append(_healed())
    return {"name": f"n{n}-p{p}-missing-{f}", "drives": n, "parity": p, "workload": _workload(12, big),
            "description": f"{f} of {n} drives missing at once with parity {p}, then put back.", "steps": steps}


def mixed(n: int, p: int, big: bool = False) -> Doc:
    """Different faults on `p` drives at once: dead, bitrot, full, read-only, truncated, lost metadata."""
    kinds = ["dead", "bitrot", "full", "readonly", "truncate", "meta_delete", "meta_corrupt", "full"]
    chosen = [(kinds[i % len(kinds)], i) for i in range(p)]
    steps: list[Doc] = [{"fault": kind, "drives": [slot]} for kind, slot in chosen]
    steps.append({"expect": {"reads": "auto", "writes": "auto"}})
    for kind, slot in chosen:
        if kind == "dead":
            steps.append({"replace": [slot]})
        elif kind in ("full", "readonly"):
            steps.append({"recover": kind, "drives": [slot]})
    steps += [{"expect": {"reads": "succeed", "writes": "succeed"}}, _healed()]
    return {"name": f"n{n}-p{p}-mixed", "drives": n, "parity": p, "workload": _workload(12, big),
            "description": "Mixed faults on as many drives as parity allows: " + ", ".join(k for k, _ in chosen),
            "steps": steps}


def kill_times(name: str, seconds: float, count: int = 2) -> list[float]:
    """`count` random moments inside a load of `seconds` (to 0.1 s), one per equal slice so the server
    runs a while between kills; drawn from the scenario's name, so a scenario is the same every run."""
    rng = random.Random(name)
    width = seconds / count
    return [round(i * width + rng.uniform(0.15, 0.85) * width, 1) for i in range(count)]


def crash_under_load(n: int, p: int, big: bool = False) -> Doc:
    name = f"n{n}-p{p}-sigkill-under-load"
    return {"name": name, "drives": n, "parity": p, "workload": _workload(8, big),
            "description": "The server is SIGKILLed twice at random moments while clients write; every "
                           "acknowledged write must survive.",
            "steps": [{"load": {"seconds": 8, "writers": 2, "readers": 1, "sigkill_at": kill_times(name, 8)}},
                      {"expect": {"reads": "succeed", "writes": "succeed"}}, _healed()]}


def fail_during_heal(n: int, p: int, big: bool = False) -> Doc:
    return {"name": f"n{n}-p{p}-fail-during-heal", "drives": n, "parity": p, "workload": _workload(24, True),
            "description": "A drive is replaced; while it heals, another drive dies.",
            "steps": [{"replace": [0]}, {"wait_healing_started": 30}, {"fault": "dead", "drives": [1]},
                      {"expect": {"reads": "succeed"}}, {"replace": [1]},
                      {"expect": {"reads": "succeed", "writes": "succeed"}}, _healed()]}


def replace_under_load(n: int, p: int, big: bool = False) -> Doc:
    return {"name": f"n{n}-p{p}-replace-under-load", "drives": n, "parity": p, "workload": _workload(16, big),
            "description": "A drive is replaced by a blank one and heals while clients keep writing and reading.",
            "steps": [{"load": {"seconds": 12, "writers": 2, "readers": 1, "background": True}},
                      {"replace": [0]}, {"expect": {"healed_within": HEAL_WITHIN}}, {"wait_load": True},
                      _healed()]}


def damage(n: int, p: int, big: bool = False) -> Doc:
    """Bitrot, truncation and metadata loss on objects nobody reads: the scanner must find them."""
    kinds = ["bitrot", "truncate", "meta_delete", "meta_corrupt"]
    chosen = [(kinds[i % len(kinds)], i) for i in range(p)]
    return {"name": f"n{n}-p{p}-bitrot-scanner", "drives": n, "parity": p, "workload": _workload(12, big),
            "description": "Shards and metadata damaged on disk (" + ", ".join(k for k, _ in chosen)
                           + "); no client reads them, so the background scanner must find and heal them.",
            "steps": [*({"fault": kind, "drives": [slot]} for kind, slot in chosen), _healed(),
                      {"expect": {"reads": "succeed"}}]}


def slow_and_flaky(n: int, p: int, big: bool = False) -> Doc:
    return {"name": f"n{n}-p{p}-slow-flaky", "drives": n, "parity": p, "fuse": [n - 1],
            "workload": _workload(8, big),
            "description": "One drive behind a FUSE passthrough becomes slow (latency), then flaky (EIO on "
                           "half the reads).",
            "steps": [{"fault": "slow", "drives": [n - 1], "latency": 0.02},
                      {"expect": {"reads": "succeed", "writes": "succeed"}},
                      {"recover": "slow", "drives": [n - 1]},
                      {"fault": "flaky", "drives": [n - 1], "eio": 0.5, "ops": ["read"]},
                      {"expect": {"reads": "succeed"}},
                      {"recover": "flaky", "drives": [n - 1]}, _healed()]}


def frozen_node(n: int, p: int, big: bool = False) -> Doc:
    return {"name": f"n{n}-p{p}-sigstop", "drives": n, "parity": p, "workload": _workload(6, big),
            "description": "The server is frozen (SIGSTOP): clients time out cleanly; after SIGCONT all is there.",
            "steps": [{"node": "sigstop"}, {"expect": {"reads": "fail", "writes": "fail"}}, {"node": "sigcont"},
                      {"expect": {"reads": "succeed", "writes": "succeed"}}]}


def broken_engine(n: int, p: int) -> Doc:
    return {"name": f"n{n}-p{p}-broken-engine", "drives": n, "parity": p, "broken_engine": True,
            "workload": _workload(8, False),
            "description": "Healing disabled (CAIRN_DEBUG_DISABLE_HEAL=1): a replaced drive never heals. "
                           "This scenario passes only if the simulator flags it.",
            "steps": [{"replace": [0]}, {"expect": {"healed_within": 20, "redundancy": "restored"}}]}


def _four_nodes(name: str, description: str, steps: list[Doc], big: bool) -> Doc:
    """4 nodes x 4 drives, two EC 4+4 sets: each node holds 2 drives of each set."""
    return {"name": f"d4x4-ec4p4-{name}", "nodes": 4, "drives_per_node": 4, "set_size": 8, "parity": 4,
            "workload": _workload(16 if big else 6, big), "description": description, "steps": steps}


def distributed(big: bool = False) -> list[Doc]:
    """Node faults on a 4-node cluster: each must leave the other nodes serving, or (a 2|2 split) refuse
    writes on both sides; after it is undone, healing restores what the faulted node missed."""
    both = {"expect": {"reads": "succeed", "writes": "succeed"}}
    healed = {"expect": {"healed_within": HEAL_WITHIN}}
    return [
        _four_nodes("kill-restart", "Node 4 is SIGKILLed, the others keep serving; it is restarted and healed "
                                    "until two other nodes can be lost.",
                    [{"kill-node": 4}, both, {"restart-node": 4}, both, _healed()], big),
        _four_nodes("pause", "Node 4 is frozen (SIGSTOP): the others mark it offline and keep serving; after "
                             "SIGCONT it catches up.",
                    [{"pause-node": 4}, both, {"resume-node": 4}, both, healed], big),
        _four_nodes("cut-link", "Node 4's link goes down (a silent blackhole); the others keep serving; the link "
                                "comes back and node 4 is healed.",
                    [{"cut-link": 4}, both, {"heal-link": 4}, both, healed], big),
        _four_nodes("partition-2-2", "Nodes 1,2 | 3,4 split (firewalls answer with TCP resets): a half holds 4 of "
                                     "8 drives, one short of the write quorum, so writes fail cleanly on both sides; "
                                     "after the split heals, writes succeed and nothing diverged.",
                    [{"partition": [[1, 2], [3, 4]], "reject": True}, {"expect": {"reads": "auto", "writes": "fail"}},
                     {"heal-partition": True}, both, healed], big),
        _four_nodes("kill-under-load", "Node 1, the one the clients write through, is SIGKILLed twice in the middle "
                                       "of writes and restarted each time; every acknowledged write must survive on "
                                       "the cluster, and what the crashes left half-done is healed or cleaned up.",
                    [{"load": {"seconds": 10, "writers": 2, "readers": 1,
                               "sigkill_at": kill_times("d4x4-kill-under-load", 10), "kill_node": 1}},
                     both, _healed()], big),
        _four_nodes("node-and-drives", "Drive faults and a node fault at once: slot 0 dies (XFS shutdown, on node 1), "
                                       "slot 1 rots (every shard, on node 2) and node 4 is SIGKILLed: 4 of 8 copies "
                                       "of every object are gone or bad and reads still succeed, and writes too (3 "
                                       "of 8 drives refuse them). Node 4 comes back; then slot 2 fills up and slot 6 "
                                       "turns read-only (both on node 3) while writes go on; both recover and every "
                                       "copy on the drives that answer is healed.",
                    [{"fault": "dead", "drives": [0]}, {"fault": "bitrot", "drives": [1]}, {"kill-node": 4}, both,
                     {"restart-node": 4}, {"fault": "full", "drives": [2]}, {"fault": "readonly", "drives": [6]},
                     both, {"recover": "full", "drives": [2]}, {"recover": "readonly", "drives": [6]}, both, healed],
                    big) | {"workload": _workload(12, True)},
    ]


def ci_library() -> list[Doc]:
    docs = [failures(4, p, f) for p in range(3) for f in range(p + 2)]
    docs += [failures(8, 4, 4), failures(8, 4, 5)]
    docs += [mixed(4, 2), crash_under_load(4, 2), fail_during_heal(4, 2), replace_under_load(4, 2),
             damage(4, 2), slow_and_flaky(4, 2), frozen_node(4, 2), broken_engine(4, 2)]
    docs += distributed()
    return docs


def eight_nodes() -> list[Doc]:
    """A wider cluster for the long run: 8 nodes x 2 drives, one EC 12+4 set of 16, each node holding 2
    slots. Two nodes down is exactly parity (reads and writes go on); three is beyond it (both fail
    cleanly, nothing wrong is read) until they come back and healing catches them up."""
    both = {"expect": {"reads": "succeed", "writes": "succeed"}}
    shape = {"nodes": 8, "drives_per_node": 2, "set_size": 16, "parity": 4, "workload": _workload(12, True)}
    return [
        shape | {"name": "d8x2-ec12p4-kill-two",
                 "description": "Nodes 7 and 8 are SIGKILLed (4 of 16 drives, the parity): the other six keep "
                                "serving reads and writes; both restart and are healed until two other nodes "
                                "can be lost.",
                 "steps": [{"kill-node": [7, 8]}, both, {"restart-node": [7, 8]}, both, _healed()]},
        shape | {"name": "d8x2-ec12p4-kill-three",
                 "description": "Nodes 6, 7 and 8 are SIGKILLed (6 of 16 drives, beyond parity): reads and "
                                "writes fail cleanly, never wrong bytes; the nodes restart and every "
                                "acknowledged object is there, healed.",
                 "steps": [{"kill-node": [6, 7, 8]}, {"expect": {"reads": "fail", "writes": "fail"}},
                           {"restart-node": [6, 7, 8]}, both, _healed()]},
    ]


def long_library() -> list[Doc]:
    docs: list[Doc] = []
    for n in (4, 8, 16):
        for p in range(n // 2 + 1):
            docs += [failures(n, p, f, big=True) for f in range(p + 2)]
            if p:
                docs += [mixed(n, p, True), damage(n, p, True), crash_under_load(n, p, True),
                         replace_under_load(n, p, True)]
            if p >= 2:
                docs.append(fail_during_heal(n, p, True))
        docs += [slow_and_flaky(n, n // 4), frozen_node(n, n // 4)]
    docs.append(broken_engine(4, 2))
    docs += distributed(big=True) + eight_nodes()
    return docs

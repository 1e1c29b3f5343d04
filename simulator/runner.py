"""Run one scenario against a fresh cluster and judge it.

Contract: `Runner(scenario, workdir).run()` builds a cluster for the scenario (one node on
loop-mounted drives, or with `nodes` > 1 a `NodeCluster` in network namespaces), writes the workload, executes the steps in order, checks the invariants after every step, and always tears
down what it built (drives, mounts, processes). It returns a `ScenarioResult`: pass/fail, every
violation with the step it came from, the timeline of faults, client samples and healing progress.
A scenario marked `broken_engine` runs with healing disabled and passes only if the simulator
caught that (at least one violation): the proof that the simulator can see a broken engine.
In a distributed scenario reads go through one available node and write probes through every
available node, each judged on its own (a 2|2 partition must refuse writes on both sides); its drive
faults hit slot j of every erasure set, on loop-mounted images, from outside the nodes.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator import support
from simulator.cluster import Cluster
from simulator.drives import SimDrive
from simulator.invariants import FaultState, Outcome, check_expectation, check_reads
from simulator.nodes import REFUSED_WRITE_TIMEOUT, NodeCluster
from simulator.scenario import DESTRUCTIVE, NODE_FAULT_KINDS, NODE_FAULT_UNDO, NODE_FAULTS, Scenario, Step
from simulator.waiting import poll_until
from simulator.workload import Ledger, Load, Recorder, read_all, read_one, write_objects

SETTLE = 20.0  # seconds a recovered cluster gets to notice drives coming back before reads must succeed
# A node whose link came back first waits out the internode requests that hung meanwhile (30 s read
# timeout) and answers 503 until then; its peers notice it within a probe interval.
NODE_SETTLE = 45.0
# How long `redundancy: restored` keeps asking `cairn admin heal` when the step gives no healed_within.
HEAL_RETRY_WITHIN = 60.0


@dataclass
class ScenarioResult:
    scenario: Scenario
    passed: bool = False
    violations: list[str] = field(default_factory=list)
    skipped: str = ""
    seconds: float = 0.0
    heal_seconds: list[float] = field(default_factory=list)
    recorder: Recorder = field(default_factory=Recorder)
    objects: int = 0

    @property
    def verdict(self) -> str:
        if self.skipped:
            return "SKIPPED"
        return "PASS" if self.passed else "FAIL"


class Runner:
    def __init__(self, scenario: Scenario, workdir: Path) -> None:
        self.s = scenario
        self.cluster: Cluster | NodeCluster
        if scenario.distributed:
            self.cluster = NodeCluster(workdir, scenario.nodes, scenario.drives_per_node, scenario.drives,
                                       scenario.parity, disable_heal=scenario.broken_engine)
        else:
            self.cluster = Cluster(workdir, scenario.drives, scenario.parity, scenario.fuse,
                                   disable_heal=scenario.broken_engine)
        self.settle = NODE_SETTLE if scenario.distributed else SETTLE
        self.result = ScenarioResult(scenario)
        self.rec = self.result.recorder
        self.ledger = Ledger()
        self.state = FaultState(scenario.drives, scenario.parity, scenario.write_tolerance)
        self.rng = random.Random(scenario.workload.seed)
        self.load: Load | None = None
        self.touched: set[int] = set()  # slots faulted or replaced: the ones healing must restore
        self.touched_nodes: set[int] = set()  # nodes faulted (distributed)
        self._sampling = threading.Event()

    # --- plumbing ---------------------------------------------------------------------------------

    @property
    def single(self) -> Cluster:
        """The single-node cluster; drive faults and `node:` steps exist only there (the parser sees to it)."""
        assert isinstance(self.cluster, Cluster), "a single-node step reached a distributed scenario"
        return self.cluster

    def drives_at(self, slot: int) -> list[SimDrive]:
        """The drives holding slot `slot`: the one drive of a single node, one per erasure set of a cluster."""
        if isinstance(self.cluster, NodeCluster):
            return self.cluster.drives_at(slot)
        return [self.cluster.drives[slot]]

    def violation(self, step: str, text: str) -> None:
        self.result.violations.append(f"[{step}] {text}")
        self.rec.event("VIOLATION", f"{step}: {text}")

    def _sample_heal(self) -> None:
        while not self._sampling.wait(0.5):
            if not self.cluster.running() or self.cluster.stopped:
                continue
            doc = self.cluster.heal_status()
            if doc is not None:
                with self.rec.lock:
                    self.rec.heal.append((self.rec.now(), int(doc.get("bytes_written", 0)),
                                          int(doc.get("objects_healed", 0))))

    def read_back(self, step: str, settle: float, client: Any = None) -> list[Outcome]:
        """Read every acknowledged object (through `client`, default the cluster's); within tolerance,
        retry failures for up to `settle` s."""
        client = client or self.cluster.client()
        outcomes = read_all(client, self.ledger, self.rec)
        if self.state.reads_within_tolerance() and any(o.status == "error" for o in outcomes):
            deadline = time.monotonic() + settle
            by_key = {w.key: w for w in self.ledger.items()}
            while time.monotonic() < deadline and any(o.status == "error" for o in outcomes):
                time.sleep(0.5)
                outcomes = [read_one(client, by_key[o.key]) if o.status == "error" else o for o in outcomes]
        return outcomes

    # --- the run ----------------------------------------------------------------------------------

    def run(self) -> ScenarioResult:
        problems = support.missing_distributed() if self.s.distributed else support.missing(fuse=bool(self.s.fuse))
        if problems:
            self.result.skipped = "; ".join(problems)
            return self.result
        started = time.monotonic()
        sampler = threading.Thread(target=self._sample_heal, daemon=True)
        try:
            shape = (f"{self.s.nodes} nodes x {self.s.drives_per_node} drives, sets of {self.s.drives}"
                     if self.s.distributed else f"{self.s.drives} drives")
            self.rec.event("setup", f"{shape}, parity {self.s.parity}"
                                    + (", healing DISABLED (broken engine)" if self.s.broken_engine else ""))
            self.cluster.create()
            self.rec.t0 = time.monotonic()
            sampler.start()
            w = self.s.workload
            for o in write_objects(self.cluster.client(), w.seed, self.ledger, w.objects, w.sizes, "base", self.rec):
                if o.status != "ok":
                    self.violation("workload", f"initial write failed on a healthy cluster: {o.key}: {o.detail}")
            self.rec.event("workload", f"{len(self.ledger.keys())} objects written")
            for i, step in enumerate(self.s.steps):
                label = f"step {i + 1}: {step.describe()}"
                self.rec.event("step", step.describe())
                try:
                    self.execute(step, label)
                except Exception as exc:
                    self.violation(label, f"could not run: {type(exc).__name__}: {exc}")
                    break
                self.check_invariants(label)
            if self.load is not None:
                self.load.stop()
                self.result.violations += self.load.violations
        except Exception as exc:
            self.violation("setup", f"{type(exc).__name__}: {exc}\n{self.cluster.log_tail(20)}")
        finally:
            self._sampling.set()
            if self.load is not None:
                self.load.stop()
            self.cluster.destroy()
            self.result.seconds = time.monotonic() - started
            self.result.objects = len(self.ledger.keys())
        caught = bool(self.result.violations)
        self.result.passed = caught if self.s.broken_engine else not caught
        return self.result

    def check_invariants(self, label: str) -> None:
        if self.state.node != "up":
            return  # a frozen or dead node answers nothing; the step's own expectation covers it
        for via, outcomes in self._through_each_node(lambda client: self.read_back(label, self.settle, client)):
            for v in check_reads(self.state, outcomes):
                self.violation(label, f"{v}{via}")

    def execute(self, step: Step, label: str) -> None:
        if step.action == "fault":
            for slot in step.drives:
                for d in self.drives_at(slot):
                    self._inject(step, d)
                self.state.add(slot, step.kind)
                self.touched.add(slot)
        elif step.action == "recover":
            for slot in step.drives:
                for d in self.drives_at(slot):
                    self._recover(step.kind, d)
                self.state.remove(slot, {step.kind})
        elif step.action == "replace":
            for slot in step.drives:
                self.single.drives[slot].replace()
                self.state.remove(slot, set(self.state.active.get(slot, set())))
                self.state.add(slot, "replaced")
                self.touched.add(slot)
        elif step.action == "node":
            self._node(step.kind)
        elif step.action in NODE_FAULTS:
            self._node_fault(step)
        elif step.action == "load":
            self._load(step)
        elif step.action == "wait_load":
            if self.load is not None:
                self.load.join()
                self.result.violations += self.load.violations
                self.load = None
        elif step.action == "wait_healing_started":
            if poll_until(self._healing_started, step.seconds) is None:
                self.violation(label, f"healing did not start within {step.seconds:g} s")
        elif step.action == "expect":
            self._expect(step, label)

    def _inject(self, step: Step, d: SimDrive) -> None:
        kind = step.kind
        if kind == "dead":
            d.shutdown()
        elif kind == "missing":
            d.remove()
        elif kind == "full":
            d.fill()
        elif kind == "readonly":
            d.read_only()
        elif kind in ("slow", "flaky"):
            d.set_fuse_faults(latency=step.latency, eio=step.eio, ops=tuple(step.ops))
        else:
            hit = d.damage(kind, step.count, self.rng)
            self.rec.event("fault", f"{kind}: {len(hit)} files on drive {d.index}")

    def _recover(self, kind: str, d: SimDrive) -> None:
        if kind == "dead":
            d.revive()
        elif kind == "missing":
            d.reinsert()
        elif kind == "full":
            d.unfill()
        elif kind == "readonly":
            d.read_write()
        else:  # slow, flaky (the parser refuses to "recover" damage: that is healing's job)
            d.set_fuse_faults()

    def _node(self, action: str) -> None:
        if action == "sigkill":
            self.single.kill()
            self.state.node = "down"
        elif action == "sigstop":
            self.single.signal(signal.SIGSTOP)
            self.state.node = "stopped"
        elif action == "sigcont":
            self.single.signal(signal.SIGCONT)
            self.state.node = "up"
        else:
            self.single.restart()
            self.state.node = "up"

    def _node_fault(self, step: Step) -> None:
        """A node fault on the distributed cluster, and what it does to the slots seen from the reader."""
        cluster = self.cluster
        assert isinstance(cluster, NodeCluster), "the parser allows node faults only in distributed scenarios"
        act = {"kill-node": cluster.kill_node, "pause-node": cluster.pause_node, "resume-node": cluster.resume_node,
               "cut-link": cluster.cut_link, "heal-link": cluster.heal_link}
        if step.action in act:
            for i in step.nodes:
                act[step.action](i)
        elif step.action == "partition":
            cluster.partition(step.groups, step.reject)
        elif step.action == "heal-partition":
            cluster.heal_partition()
        else:
            cluster.restart_nodes(step.nodes)
        self.touched_nodes.update(step.nodes)
        if step.action == "partition":
            reader = cluster.reader()
            faulted = [i for group in step.groups if reader not in group for i in group]
        else:
            faulted = step.nodes or cluster.numbers
        for i in faulted:
            for slot in cluster.slots_of(i):
                if step.action in NODE_FAULT_KINDS:
                    self.state.add(slot, NODE_FAULT_KINDS[step.action])
                elif step.action in NODE_FAULT_UNDO:
                    self.state.remove(slot, {NODE_FAULT_UNDO[step.action]})
                else:  # restart-node: whatever stopped the node is over
                    self.state.remove(slot, {"node_down", "node_paused"})

    def _load(self, step: Step) -> None:
        load = Load(self.cluster.client, self.s.workload.seed, self.ledger, self.s.workload.sizes, self.rec,
                    step.seconds, step.writers, step.readers)
        load.start()
        if step.background:
            self.load = load
            return
        began = time.monotonic()
        for at in step.sigkill_at:
            time.sleep(max(began + at - time.monotonic(), 0))
            if isinstance(self.cluster, NodeCluster):
                self.rec.event("node", f"SIGKILL of node {step.kill_node} under load at {at:g} s")
                self.cluster.kill_node(step.kill_node)
                self.cluster.restart_nodes([step.kill_node])
                self.touched_nodes.add(step.kill_node)
            else:
                self.rec.event("node", f"SIGKILL under load at {at:g} s")
                self.single.kill()
                self.single.start()
            self.rec.event("node", "restarted")
        load.join()
        self.result.violations += load.violations

    def _healing_started(self) -> bool:
        doc = self.cluster.heal_status()
        return bool(doc and (doc.get("bytes_written", 0) > 0 or doc.get("healing_drives")))

    def _expect(self, step: Step, label: str) -> None:
        if step.reads:
            expected = self.state.resolve(step.reads, reads=True)
            if self.state.node == "stopped":
                outcomes = [read_one(self.cluster.client(timeout=2), w) for w in self.ledger.items()[:1]]
            else:
                settle = self.settle if expected == "succeed" else 0
                for via, outcomes in self._through_each_node(lambda client: self.read_back(label, settle, client)):
                    for v in check_expectation(f"reads{via}", expected, outcomes):
                        self.violation(label, v)
        if step.writes:
            expected = self.state.resolve(step.writes, reads=False)
            timeout = REFUSED_WRITE_TIMEOUT if expected == "fail" else 20.0
            for via, outcomes in self._through_each_node(lambda client: self._probe_writes(client, expected), timeout):
                for v in check_expectation(f"writes{via}", expected, outcomes):
                    self.violation(label, v)
        if step.healed_within:
            self._expect_healed(step.healed_within, label)
        if step.redundancy:
            self._expect_redundancy(label, step.healed_within or HEAL_RETRY_WITHIN)

    def _through_each_node(self, probe: Callable[[Any], list[Outcome]],
                           timeout: float = 20.0) -> list[tuple[str, list[Outcome]]]:
        """(" via node i", outcomes) of `probe(client)` through every available node at once (a node that
        hangs costs each peer an internode timeout before it is marked offline: paid once, in parallel);
        ("", outcomes) through the one node of a single-node cluster."""
        if not isinstance(self.cluster, NodeCluster):
            return [("", probe(self.cluster.client(timeout=2 if self.state.node == "stopped" else 20)))]
        clients = self.cluster.clients(timeout)
        with ThreadPoolExecutor(len(clients)) as pool:
            results = list(pool.map(probe, (client for _, client in clients)))
        return [(f" {via}", outcomes) for (via, _), outcomes in zip(clients, results, strict=True)]

    def _probe_writes(self, client: Any, expected: str) -> list[Outcome]:
        """One new object of each workload size; when success is expected, a failed write is retried
        (as a new object) for up to `settle` s, the time a recovered drive takes to be noticed."""
        sizes = sorted(set(self.s.workload.sizes))
        if self.state.node == "stopped" or (expected == "fail" and self.s.distributed):
            # Each write to a frozen node costs a full client timeout, each refused one in a
            # partition a lock timeout: one is enough to see the failure.
            sizes = sizes[:1]
        w = self.s.workload
        outcomes = write_objects(client, w.seed, self.ledger, len(sizes), sizes, "probe", self.rec)
        deadline = time.monotonic() + (self.settle if expected == "succeed" else 0)
        while any(o.status == "error" for o in outcomes) and time.monotonic() < deadline:
            time.sleep(0.5)
            retry = [sizes[i] for i, o in enumerate(outcomes) if o.status == "error"]
            again = iter(write_objects(client, w.seed, self.ledger, len(retry), retry, "probe", self.rec))
            outcomes = [next(again) if o.status == "error" else o for o in outcomes]
        return outcomes

    def _reachable_slots(self) -> list[int]:
        return [i for i in range(self.s.drives) if not (self.state.active.get(i, set()) - DESTRUCTIVE)]

    def _expect_healed(self, within: float, label: str) -> None:
        began = time.monotonic()
        slots = self._reachable_slots()
        done = poll_until(lambda: not self.cluster.missing_copies(self.ledger.keys(), slots), within, 0.5)
        if done is None:
            left = self.cluster.missing_copies(self.ledger.keys(), slots)
            self.violation(label, f"healing did not complete within {within:g} s: {len(left)} copies missing "
                                  f"or corrupt (first: {left[0] if left else '?'})")
            return
        took = time.monotonic() - began
        self.result.heal_seconds.append(took)
        self.rec.event("healed", f"every copy on drives {slots} verifies ({took:.1f} s)")
        self.state.healed()

    def _expect_redundancy(self, label: str, within: float) -> None:
        """`cairn admin heal` finds nothing left to do on acknowledged objects. An object it cannot heal
        yet (a drive the server has not seen come back) is asked about again until `within` s passed."""
        deadline = time.monotonic() + within
        acknowledged = set(self.ledger.keys())
        while True:
            summary = self.cluster.admin_heal()
            self.rec.event("admin-heal", f"cairn admin heal: {summary}")
            # A write cut off by a crash was never acknowledged: it may have reached some drives, and
            # healing may complete it or purge it. Only acknowledged objects must already be whole.
            late = sorted(key for key in summary.worked if key in acknowledged)
            interrupted = sorted(key for key in summary.worked if key not in acknowledged)
            if interrupted:
                self.rec.event("admin-heal", f"{len(interrupted)} unacknowledged (interrupted) writes completed "
                                             f"or purged: {', '.join(interrupted[:5])}")
            unfinished = summary.failed or summary.exit or len(summary.worked) != summary.healed + summary.purged
            if late or not unfinished or time.monotonic() >= deadline:
                break
            time.sleep(2)
        if late or unfinished:
            self.violation(label, f"`cairn admin heal` still found work on acknowledged objects: {summary}"
                                  + (f"; first: {late[0]}" if late else ""))
        if isinstance(self.cluster, NodeCluster):
            self._read_without_nodes(self.cluster, label)
            return
        # Take `parity` other drives away: every object must now come from the healed drives too.
        others = [i for i in range(self.s.drives) if i not in self.touched and i not in self.s.fuse]
        others = others[: self.s.parity]
        if not others or self.state.active:
            return
        self.rec.event("verify", f"drives {others} removed to read from the healed drives")
        for i in others:
            self.single.drives[i].remove()
            self.state.add(i, "missing")
        try:
            outcomes = self.read_back(label, self.settle)
            for v in check_expectation("reads with the other drives removed", "succeed", outcomes):
                self.violation(label, v)
        finally:
            for i in others:
                self.single.drives[i].reinsert()
                self.state.remove(i, {"missing"})

    def _read_without_nodes(self, cluster: NodeCluster, label: str) -> None:
        """Kill as many untouched nodes as parity allows: every object must now come from the healed ones too."""
        others = [i for i in cluster.numbers if i not in self.touched_nodes]
        others = others[: self.s.parity // len(cluster.slots_of(1))]
        if not others or self.state.active or len(others) == len(cluster.numbers):
            return
        self.rec.event("verify", f"nodes {others} killed to read from the healed nodes")
        for i in others:
            cluster.kill_node(i)
            for slot in cluster.slots_of(i):
                self.state.add(slot, "node_down")
        try:
            outcomes = self.read_back(label, self.settle)
            for v in check_expectation(f"reads with nodes {others} killed", "succeed", outcomes):
                self.violation(label, v)
        finally:
            cluster.restart_nodes(others)
            for i in others:
                for slot in cluster.slots_of(i):
                    self.state.remove(slot, {"node_down"})

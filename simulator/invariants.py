"""What must hold after every step, given the faults in force: the simulator's judgement, pure.

Contract: `FaultState` tracks which faults are active on which drive slot (of one erasure set; in a
distributed cluster a node fault marks the slots that node holds, as seen from the node the
simulator reads through) and whether the single node runs; it knows the set's read tolerance (parity) and write tolerance (drives beyond the write
quorum). The `check_*` functions take observed outcomes and return violations (readable lines;
empty when all is well). The rules:
  - never wrong bytes: a read answers the acknowledged bytes or fails, whatever the faults;
  - within read tolerance every acknowledged object reads back byte-identical;
  - once every fault is recovered, nothing acknowledged is lost (unless more drives were destroyed
    than parity allows, which the state records);
  - expectations: `succeed` means every operation succeeded, `fail` means at least one failed and
    none succeeded wrongly, `auto` means `succeed` within tolerance and no claim beyond it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.scenario import DESTRUCTIVE, READ_FAULTS, WRITE_FAULTS


@dataclass
class Outcome:
    """One client operation's result: status is ok, error (failed cleanly) or wrong (bad bytes)."""

    key: str
    status: str
    detail: str = ""


@dataclass
class FaultState:
    drives: int
    parity: int
    write_tolerance: int
    active: dict[int, set[str]] = field(default_factory=dict)
    node: str = "up"  # up, stopped (SIGSTOP), down (killed)
    lost_possible: bool = False

    def add(self, slot: int, kind: str) -> None:
        self.active.setdefault(slot, set()).add(kind)
        destroyed = {s for s, kinds in self.active.items() if kinds & DESTRUCTIVE}
        if len(destroyed) > self.parity:
            self.lost_possible = True

    def remove(self, slot: int, kinds: set[str]) -> None:
        left = self.active.get(slot, set()) - kinds
        if left:
            self.active[slot] = left
        else:
            self.active.pop(slot, None)

    def healed(self) -> None:
        """Healing verified: the destroyed copies on reachable drives are whole again."""
        for slot in list(self.active):
            self.remove(slot, DESTRUCTIVE)

    def read_faulty(self) -> set[int]:
        return {s for s, kinds in self.active.items() if kinds & READ_FAULTS}

    def write_faulty(self) -> set[int]:
        return {s for s, kinds in self.active.items() if kinds & WRITE_FAULTS}

    def partitioned(self) -> bool:
        """In a network partition the lock quorum, not only the drive count, decides: no claim is made."""
        return any("partitioned" in kinds for kinds in self.active.values())

    def reads_within_tolerance(self) -> bool:
        return self.node == "up" and not self.partitioned() and len(self.read_faulty()) <= self.parity

    def writes_within_tolerance(self) -> bool:
        return self.node == "up" and not self.partitioned() and len(self.write_faulty()) <= self.write_tolerance

    def quiet(self) -> bool:
        return self.node == "up" and not self.active

    def resolve(self, expected: str, reads: bool) -> str:
        """`auto` made concrete: succeed within tolerance, "either" beyond it."""
        if expected != "auto":
            return expected
        within = self.reads_within_tolerance() if reads else self.writes_within_tolerance()
        return "succeed" if within else "either"


def check_reads(state: FaultState, outcomes: list[Outcome]) -> list[str]:
    """The invariants every read-back must satisfy in the current state."""
    violations = [f"WRONG BYTES: {o.key}: {o.detail}" for o in outcomes if o.status == "wrong"]
    errors = [o for o in outcomes if o.status == "error"]
    # Once more drives were destroyed than parity allows, losing objects is the honest outcome.
    if errors and state.reads_within_tolerance() and not state.lost_possible:
        what = "lost after recovery" if state.quiet() else "unreadable within tolerance"
        violations += [f"acknowledged object {what}: {o.key}: {o.detail}" for o in errors[:5]]
        if len(errors) > 5:
            violations.append(f"... and {len(errors) - 5} more")
    return violations


def check_expectation(label: str, expected: str, outcomes: list[Outcome]) -> list[str]:
    """An explicit expectation on reads or writes (`expected` already resolved)."""
    violations = [f"WRONG BYTES: {o.key}: {o.detail}" for o in outcomes if o.status == "wrong"]
    ok = sum(o.status == "ok" for o in outcomes)
    failed = [o for o in outcomes if o.status == "error"]
    if expected == "succeed" and failed:
        violations.append(f"{label} expected to succeed: {len(failed)} of {len(outcomes)} failed "
                          f"(first: {failed[0].key}: {failed[0].detail})")
    if expected == "fail" and not failed:
        violations.append(f"{label} expected to fail cleanly, but all {ok} succeeded")
    return violations

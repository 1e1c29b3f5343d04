"""The simulator's judgement: which outcomes violate which invariant in which fault state."""

from __future__ import annotations

import pytest

from simulator.invariants import FaultState, Outcome, check_expectation, check_reads

OK = Outcome("a", "ok")
ERR = Outcome("b", "error", "503 SlowDown")
WRONG = Outcome("c", "wrong", "bad digest")


def state(active: dict[int, set[str]] | None = None, node: str = "up", parity: int = 2, lost: bool = False) -> FaultState:
    s = FaultState(drives=4, parity=parity, write_tolerance=1, node=node)
    for slot, kinds in (active or {}).items():
        for kind in kinds:
            s.add(slot, kind)
    s.lost_possible = s.lost_possible or lost
    return s


@pytest.mark.parametrize(("fault_state", "outcomes", "expected"), [
    (state(), [OK, OK], []),
    (state(), [OK, ERR], ["lost after recovery"]),
    (state({0: {"dead"}}), [ERR], ["unreadable within tolerance"]),
    (state({0: {"dead"}, 1: {"missing"}}), [ERR], ["unreadable within tolerance"]),
    (state({0: {"dead"}, 1: {"missing"}, 2: {"bitrot"}}), [ERR, OK], []),
    (state({0: {"dead"}, 1: {"missing"}, 2: {"bitrot"}}), [WRONG], ["WRONG BYTES"]),
    (state(), [WRONG], ["WRONG BYTES"]),
    (state({0: {"full"}, 1: {"readonly"}, 2: {"full"}}), [ERR], ["unreadable within tolerance"]),
    (state({0: {"slow"}}), [ERR], ["unreadable within tolerance"]),
    (state(lost=True), [ERR], []),
    (state(node="stopped"), [ERR], []),
])
def test_check_reads(fault_state: FaultState, outcomes: list[Outcome], expected: list[str]) -> None:
    violations = check_reads(fault_state, outcomes)
    assert len(violations) == len(expected)
    for v, text in zip(violations, expected, strict=True):
        assert text in v


@pytest.mark.parametrize(("kinds", "reads_ok", "writes_ok"), [
    ([], True, True),
    ([(0, "dead")], True, True),
    ([(0, "dead"), (1, "missing")], True, False),
    ([(0, "full"), (1, "readonly")], True, False),
    ([(0, "bitrot"), (1, "truncate")], True, True),
    ([(0, "bitrot"), (1, "truncate"), (2, "meta_delete")], False, True),
    ([(0, "slow")], True, True),
    ([(0, "flaky")], True, True),
])
def test_tolerance(kinds: list[tuple[int, str]], reads_ok: bool, writes_ok: bool) -> None:
    s = state()
    for slot, kind in kinds:
        s.add(slot, kind)
    assert s.reads_within_tolerance() is reads_ok
    assert s.writes_within_tolerance() is writes_ok
    assert s.resolve("auto", reads=True) == ("succeed" if reads_ok else "either")


@pytest.mark.parametrize(("kinds", "lost"), [
    ([(0, "bitrot"), (1, "replaced")], False),
    ([(0, "bitrot"), (1, "replaced"), (2, "meta_corrupt")], True),
    ([(0, "dead"), (1, "missing"), (2, "bitrot")], False),
])
def test_destroying_more_than_parity_allows_loss(kinds: list[tuple[int, str]], lost: bool) -> None:
    s = state()
    for slot, kind in kinds:
        s.add(slot, kind)
    assert s.lost_possible is lost


def test_healing_clears_destroyed_copies_only() -> None:
    s = state({0: {"bitrot"}, 1: {"dead", "truncate"}, 2: {"replaced"}})
    s.healed()
    assert s.active == {1: {"dead"}}


@pytest.mark.parametrize(("expected", "outcomes", "violation"), [
    ("succeed", [OK, OK], ""),
    ("succeed", [OK, ERR], "expected to succeed"),
    ("fail", [ERR, ERR], ""),
    ("fail", [OK, ERR], ""),
    ("fail", [OK, OK], "expected to fail cleanly"),
    ("either", [OK, ERR], ""),
    ("either", [OK, WRONG], "WRONG BYTES"),
    ("fail", [WRONG], "WRONG BYTES"),
])
def test_expectations(expected: str, outcomes: list[Outcome], violation: str) -> None:
    violations = check_expectation("reads", expected, outcomes)
    assert (violation in violations[0]) if violation else not violations

"""The CI-size scenario library against real servers on loop-mounted XFS drives (root needed).

Each scenario builds its own drives and server, injects real faults, and must pass every
invariant. A machine without loop devices, XFS tools or FUSE fails here with the list of what is
missing: the simulator never skips a fault it cannot inject.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator import support
from simulator.library import ci_library
from simulator.runner import Runner
from simulator.scenario import Scenario, parse_scenario

SCENARIOS = [parse_scenario(d, "ci library") for d in ci_library()
             if not d.get("broken_engine") and d.get("nodes", 1) == 1]  # distributed: test_distributed_scenarios

pytestmark = pytest.mark.timeout(240)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(scenario: Scenario, tmp_path: Path) -> None:
    problems = support.missing(fuse=bool(scenario.fuse))
    assert not problems, "this machine cannot run the simulator: " + "; ".join(problems)
    result = Runner(scenario, tmp_path / scenario.name).run()
    assert result.verdict == "PASS", "\n".join(result.violations) + f"\n(server log: {tmp_path / scenario.name})"

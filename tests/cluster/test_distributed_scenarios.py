"""The distributed scenarios of the CI library: 4 nodes x 4 drives in network namespaces (root, `ip`, `iptables`).

Each scenario runs through the same entry as the single-node library (`Runner(...).run()`): it builds
its own 4-node cluster (two EC 4+4 sets), writes the workload, kills, pauses, cuts off or partitions
nodes (one crashed twice under client writes, one dead while drives of others die, rot, fill up
and turn read-only), and must pass every invariant: acknowledged writes read back identical, beyond tolerance
errors and never wrong bytes, writes refused on both sides of a 2|2 split, and what a faulted node
missed healed afterwards. A machine without the lab's tools fails here with what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simulator import support
from simulator.library import ci_library
from simulator.runner import Runner
from simulator.scenario import Scenario, ScenarioError, parse_scenario

SCENARIOS = [parse_scenario(d, "ci library") for d in ci_library() if d.get("nodes", 1) > 1]

pytestmark = pytest.mark.timeout(180)


def four_nodes(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "d", "nodes": 4, "drives_per_node": 4, "set_size": 8, "parity": 4,
                            "steps": [{"kill-node": 4}]}
    base.update(overrides)
    return base


@pytest.mark.parametrize(("step", "field", "value"), [
    ({"kill-node": 4}, "nodes", [4]),
    ({"pause-node": [2, 3]}, "nodes", [2, 3]),
    ({"cut-link": 1}, "action", "cut-link"),
    ({"partition": [[1, 2], [3, 4]], "reject": True}, "groups", [[1, 2], [3, 4]]),
    ({"partition": [[1], [2, 3, 4]]}, "reject", False),
    ({"heal-partition": True}, "action", "heal-partition"),
    ({"restart-node": 4}, "nodes", [4]),
    ({"fault": "dead", "drives": [0, 5]}, "drives", [0, 5]),
    ({"recover": "readonly", "drives": [6]}, "kind", "readonly"),
    ({"load": {"seconds": 5, "sigkill_at": [1]}}, "kill_node", 4),
    ({"load": {"seconds": 5, "sigkill_at": [1], "kill_node": 2}}, "kill_node", 2),
])
def test_node_fault_steps(step: dict[str, Any], field: str, value: Any) -> None:
    parsed = parse_scenario(four_nodes(steps=[step]))
    assert parsed.distributed and parsed.drives == 8 and parsed.write_tolerance == 3
    assert getattr(parsed.steps[0], field) == value


@pytest.mark.parametrize(("overrides", "message"), [
    ({"steps": [{"kill-node": 5}]}, "numbered 1 to 4"),
    ({"steps": [{"partition": [[1, 2], [3]]}]}, "every node 1 to 4 exactly once"),
    ({"steps": [{"partition": [[1, 2, 3, 4]]}]}, "two or more groups"),
    ({"steps": [{"fault": "missing", "drives": [0]}]}, "can fault"),
    ({"steps": [{"fault": "slow", "drives": [0]}]}, "can fault"),
    ({"steps": [{"recover": "dead", "drives": [0]}]}, "can recover"),
    ({"steps": [{"replace": [0]}]}, "single-node scenarios"),
    ({"steps": [{"node": "sigkill"}]}, "single-node scenarios"),
    ({"steps": [{"fault": "dead", "drives": [8]}]}, "slot numbers from 0 to 7"),
    ({"steps": [{"load": {"seconds": 5, "sigkill_at": [1], "kill_node": 5}}]}, "numbered 1 to 4"),
    ({"steps": [{"load": {"seconds": 5, "sigkill_at": [1], "background": True}}]}, "in the foreground"),
    ({"set_size": 6}, "set_size must be"),
    ({"drives": 16}, "not drives"),
    ({"nodes": 1, "drives": 4, "parity": 2}, "needs a distributed scenario"),
])
def test_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(four_nodes(**overrides))


def test_the_ci_library_has_every_node_fault() -> None:
    actions = {step.action for s in SCENARIOS for step in s.steps}
    assert {"kill-node", "restart-node", "pause-node", "resume-node", "cut-link", "heal-link", "partition",
            "heal-partition", "fault", "recover"} <= actions
    assert any(step.sigkill_at and step.kill_node for s in SCENARIOS for step in s.steps)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(scenario: Scenario, tmp_path: Path) -> None:
    problems = support.missing_distributed()
    assert not problems, "this machine cannot run distributed scenarios: " + "; ".join(problems)
    result = Runner(scenario, tmp_path / scenario.name).run()
    assert result.verdict == "PASS", "\n".join(result.violations) + f"\n(node logs: {tmp_path / scenario.name}/logs)"

"""Scenario documents: what parses, what is refused and why, and that the stored library is current."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.library import ci_library, long_library
from simulator.scenario import ScenarioError, load_file, parse_scenario, parse_size

CI_YAML = Path(__file__).resolve().parents[2] / "simulator" / "scenarios" / "ci.yaml"


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "s", "drives": 4, "parity": 2, "steps": [{"fault": "dead", "drives": [1]}]}
    base.update(overrides)
    return base


@pytest.mark.parametrize(("text", "expected"), [
    (4096, 4096), ("4096", 4096), ("1KiB", 1024), ("2MiB", 2 * 2**20), ("1.5KiB", 1536), ("0", 0), ("7 B", 7),
])
def test_sizes(text: Any, expected: int) -> None:
    assert parse_size(text, "here") == expected


@pytest.mark.parametrize("text", ["1GB", "-3", "lots", "1 KB"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ScenarioError, match="not a size"):
        parse_size(text, "here")


@pytest.mark.parametrize(("step", "field", "value"), [
    ({"fault": "dead", "drives": [1, 2]}, "drives", [1, 2]),
    ({"fault": "bitrot", "drives": 3, "count": 2}, "count", 2),
    ({"replace": [0]}, "kind", "replaced"),
    ({"node": "sigkill"}, "kind", "sigkill"),
    ({"load": {"seconds": 5, "sigkill_at": [1, 2.5]}}, "sigkill_at", [1.0, 2.5]),
    ({"load": {"seconds": 5, "background": True}}, "background", True),
    ({"expect": {"reads": "succeed", "writes": "fail"}}, "writes", "fail"),
    ({"expect": {"healed_within": 30, "redundancy": "restored"}}, "redundancy", True),
    ({"wait_healing_started": 12}, "seconds", 12.0),
])
def test_steps(step: dict[str, Any], field: str, value: Any) -> None:
    parsed = parse_scenario(doc(steps=[step])).steps[0]
    assert getattr(parsed, field) == value


@pytest.mark.parametrize(("overrides", "message"), [
    ({"name": "Has Spaces"}, "name must be"),
    ({"drives": 17}, "drives must be 2 to 16"),
    ({"parity": 3}, "parity must be 0 to 2"),
    ({"steps": []}, "steps must be a non-empty list"),
    ({"steps": [{"fault": "melted"}]}, "unknown fault"),
    ({"steps": [{"fault": "dead", "drives": [4]}]}, "slot numbers from 0 to 3"),
    ({"steps": [{"fault": "dead", "node": "sigkill"}]}, "exactly one of"),
    ({"steps": [{"fault": "slow", "drives": [0]}]}, "needs FUSE slots"),
    ({"fuse": [0], "steps": [{"fault": "missing", "drives": [0]}]}, "below FUSE"),
    ({"fuse": [0], "steps": [{"replace": [0]}]}, "below FUSE"),
    ({"steps": [{"recover": "bitrot"}]}, "healed"),
    ({"steps": [{"node": "reboot"}]}, "node action"),
    ({"steps": [{"load": {"seconds": 2, "sigkill_at": [3]}}]}, "inside the load"),
    ({"steps": [{"load": {"seconds": 5, "sigkill_at": [1], "kill_node": 1}}]}, "needs a distributed scenario"),
    ({"steps": [{"expect": {"reads": "maybe"}}]}, "expected one of"),
    ({"steps": [{"expect": {"redundancy": "partial"}}]}, "restored"),
    ({"steps": [{"expect": {"speed": 1}}]}, "expect takes"),
    ({"workload": {"sizes": ["big"]}}, "not a size"),
])
def test_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(doc(**overrides))


@pytest.mark.parametrize(("drives", "parity", "tolerance"), [(4, 2, 1), (4, 1, 1), (4, 0, 0), (8, 4, 3), (8, 3, 3),
                                                             (16, 4, 4), (16, 8, 7)])
def test_write_tolerance(drives: int, parity: int, tolerance: int) -> None:
    assert parse_scenario(doc(drives=drives, parity=parity)).write_tolerance == tolerance


def test_every_library_scenario_parses() -> None:
    scenarios = [parse_scenario(d, "library") for d in ci_library() + long_library()]
    names = [s.name for s in scenarios]
    assert len(set(names)) == len(set(d["name"] for d in ci_library() + long_library()))
    shapes = {(s.drives, s.parity) for s in scenarios}
    assert {(n, p) for n in (4, 8, 16) for p in range(n // 2 + 1)} <= shapes


def test_stored_ci_library_is_current() -> None:
    """scenarios/ci.yaml is what `cairn-sim --dump ci` prints: regenerate it when the library changes."""
    assert list(yaml.safe_load_all(CI_YAML.read_text())) == ci_library()
    assert [s.name for s in load_file(CI_YAML)] == [d["name"] for d in ci_library()]


def test_the_operations_guide_example_parses() -> None:
    """The YAML scenario shown to operators in docs/operations.md is a valid scenario."""
    text = (CI_YAML.parents[2] / "docs" / "operations.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert blocks, "docs/operations.md lost its scenario example"
    for block in blocks:
        scenario = parse_scenario(yaml.safe_load(block), "docs/operations.md")
        assert scenario.steps

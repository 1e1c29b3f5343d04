"""The simulator must catch a broken engine: with healing disabled, the report has to flag it.

`CAIRN_DEBUG_DISABLE_HEAL=1` is a test-only switch that starts the server without its background
healer and scanner. A replaced drive then never heals: the simulator must report the scenario's
violations (healing did not complete, `cairn admin heal` still finds work), and the same scenario
against the normal engine must pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator import support
from simulator.library import broken_engine
from simulator.report import write_report
from simulator.runner import Runner
from simulator.scenario import parse_scenario

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(autouse=True)
def _requirements() -> None:
    problems = support.missing()
    assert not problems, "this machine cannot run the simulator: " + "; ".join(problems)


def test_report_flags_disabled_healing(tmp_path: Path) -> None:
    scenario = parse_scenario(broken_engine(4, 2), "test")
    result = Runner(scenario, tmp_path / "run").run()
    assert any("healing did not complete within" in v for v in result.violations), result.violations
    assert any("`cairn admin heal` still found work" in v for v in result.violations), result.violations
    assert result.verdict == "PASS"  # for a broken_engine scenario: the simulator caught it

    report = write_report([result], tmp_path / "report").read_text()
    assert "caught the broken engine" in report
    assert "healing did not complete within" in report
    assert (tmp_path / "report" / "report.html").read_text().count("healing did not complete") >= 1
    assert (tmp_path / "report" / f"{scenario.name}.png").stat().st_size > 0


def test_same_scenario_passes_on_the_real_engine(tmp_path: Path) -> None:
    doc = broken_engine(4, 2)
    doc.update(name="n4-p2-replace-heals", broken_engine=False)
    result = Runner(parse_scenario(doc, "test"), tmp_path / "run").run()
    assert result.verdict == "PASS", result.violations
    assert result.heal_seconds and result.heal_seconds[0] < 20

"""The healing-rate measurement runs and its rebuilt drive verifies (numbers: `cairn-sim --bench`).

The ratio to raw write speed is printed, not asserted: on a shared CI disk it is too noisy to gate on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator import support
from simulator.bench import heal_benchmark

pytestmark = pytest.mark.timeout(300)


def test_replaced_drive_heals_and_rates_are_measured(tmp_path: Path) -> None:
    problems = support.missing()
    assert not problems, "this machine cannot run the simulator: " + "; ".join(problems)
    result = heal_benchmark(tmp_path, objects=8, object_size=4 * 2**20)
    print(result.as_dict())
    assert result.raw_write_mb_s > 0 and result.heal_mb_s > 0
    assert result.healed_bytes >= 8 * 4 * 2**20 // 2  # drive 0 holds at least its half of EC 2+2

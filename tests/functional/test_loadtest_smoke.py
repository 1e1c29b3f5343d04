"""The multipart/presigned benchmark (loadtests/multipart_presigned.py) runs end to end at minimal sizes.

It measures nothing here: it proves that the script still starts Cairn and rclone, uploads in parts,
fetches presigned URLs (a tampered one refused), reads every object back and prints its report, so
the benchmark is not found broken on the day it is needed. Performance itself is never asserted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "loadtests" / "multipart_presigned.py"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, report_lines", [
    (["--rounds", "1", "--size-mib", "6", "--part-mib", "5", "--small-seconds", "0.1",
      "--small-keys", "16"],
     ["- Cairn: multipart/single PUT", "- rclone: multipart/single PUT", "| 4 KiB GET, presigned URL"]),
])
def test_benchmark_runs_at_minimal_sizes(args: list[str], report_lines: list[str]) -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True,
                            timeout=50, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for line in report_lines:
        assert line in result.stdout, result.stdout[-3000:]

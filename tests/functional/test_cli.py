"""The `cairn` command line itself: every command's help renders, and bad usage fails cleanly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.harness import BIN_DIR

COMMANDS = [
    [],
    ["server"],
    ["admin"],
    ["admin", "heal"],
    ["admin", "info"],
]


def cairn(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN_DIR / "cairn"), *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, cwd=cwd)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "cairn")
def test_help_renders(command: list[str]) -> None:
    result = cairn(*command, "--help")
    assert result.returncode == 0, f"cairn {' '.join(command)} --help exited {result.returncode}\n{result.stderr}"
    assert "Usage" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(("args", "needle"), [
    (["server", "--parity", "3", "d{1...4}"], "parity"),
    (["server", "--workers", "x", "d1"], "workers"),
])
def test_bad_server_usage_fails_without_traceback(tmp_path: Path, args: list[str], needle: str) -> None:
    result = cairn(*args, cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert needle in output.lower(), output

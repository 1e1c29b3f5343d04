"""Lint gates: ruff, mypy and the import-linter contracts, each a test that shows the tool's output.

Contract: a gate passes only when its tool exits 0 on the whole tree with the settings in
pyproject.toml. The import contracts are also tested against deliberately bad imports in a scratch
copy of the package, so a contract that checks nothing (misconfigured, or matching no module)
fails here instead of passing silently.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LAYERS = "Layers only import downward"
SANS_IO = "The S3 protocol layer is sans-IO"


def run_tool(args: list[str], cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    if result.returncode != 0:
        pytest.fail(f"{' '.join(result.args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}",
                    pytrace=False)


def test_ruff() -> None:
    assert_clean(run_tool([str(BIN / "ruff"), "check", "appliance", "simulator", "tests", "loadtests"]))


def test_mypy() -> None:
    assert_clean(run_tool([str(BIN / "mypy")]))


def test_import_contracts() -> None:
    assert_clean(run_tool([str(BIN / "lint-imports"), "--no-cache", "--no-logo"]))


# (module to add to the scratch copy, its source, the contract that must report it)
BAD_IMPORTS = [
    ("appliance/s3/_lint_probe.py", "import socket\n", SANS_IO),
    ("appliance/s3/_lint_probe.py", "import asyncio\n", SANS_IO),
    ("appliance/s3/_lint_probe.py", "from uvicorn import Config\n", SANS_IO),
    ("appliance/s3/_lint_probe.py", "import appliance.cluster\n", SANS_IO),
    ("appliance/engine/_lint_probe.py", "import appliance.http\n", LAYERS),
    ("appliance/engine/_lint_probe.py", "import appliance.s3\n", LAYERS),
    ("appliance/cluster/_lint_probe.py", "import appliance.s3\n", LAYERS),
    ("appliance/http/_lint_probe.py", "import appliance.cli\n", LAYERS),
]


@pytest.mark.parametrize(("probe", "source", "contract"), BAD_IMPORTS)
def test_import_contracts_catch_bad_imports(tmp_path: Path, probe: str, source: str, contract: str) -> None:
    shutil.copytree(ROOT / "appliance", tmp_path / "appliance", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / probe).write_text(source)
    module = probe.removesuffix(".py").replace("/", ".")

    result = run_tool([str(BIN / "lint-imports"), "--no-cache", "--no-logo"], cwd=tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode != 0, f"lint-imports accepted {module}: {source!r}\n{output}"
    assert f"{contract} BROKEN" in output, output
    section = output.split(f"{contract}\n{'-' * len(contract)}", 1)[-1]
    assert module in section, f"{contract} did not name {module}\n{output}"

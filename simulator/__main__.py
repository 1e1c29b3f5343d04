"""`cairn-sim` / `python -m simulator`: run failure scenarios against real Cairn servers, write a report.

Usage:
  cairn-sim [FILE.yaml ...]          run the scenarios in these files (default: the CI library)
  cairn-sim --long                   run the full matrix (4, 8, 16 drives, every parity); report to docs/
  cairn-sim --only TEXT              only scenarios whose name contains TEXT
  cairn-sim --dump ci|long           print a library as YAML and exit
  cairn-sim --check                  say what this machine lacks for the simulator (loop devices, XFS, FUSE,
                                     and `ip`/`iptables`/namespaces for distributed scenarios), and exit
  cairn-sim --bench [--heal-workers N]
                                     healing rate of a replaced drive vs raw write speed of its image
Exit status: 0 when every scenario passed, 1 when any failed, 2 when none could run here.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from pathlib import Path

import yaml

from simulator import support
from simulator.bench import heal_benchmark
from simulator.library import ci_library, long_library
from simulator.report import write_report
from simulator.runner import Runner, ScenarioResult
from simulator.scenario import Scenario, load_file, parse_scenario

LONG_REPORT_DIR = Path("docs/simulator")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cairn-sim", description="Cairn failure simulator")
    parser.add_argument("files", nargs="*", type=Path, help="scenario YAML files (default: the CI library)")
    parser.add_argument("--long", action="store_true", help="run the full matrix and write the report under docs/")
    parser.add_argument("--only", default="", help="only scenarios whose name contains this text")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: sim-report, or docs/ with --long)")
    parser.add_argument("--workdir", type=Path, default=None, help="where drive images go (default: a temp folder)")
    parser.add_argument("--dump", choices=["ci", "long"], help="print a library as YAML and exit")
    parser.add_argument("--check", action="store_true", help="report missing requirements and exit")
    parser.add_argument("--bench", action="store_true", help="measure the healing rate of a replaced drive")
    parser.add_argument("--heal-workers", type=int, default=None,
                        help="with --bench: the server's --heal-workers (default: the server's default)")
    args = parser.parse_args(argv)
    # A terminated run still tears down what it built (mounts, namespaces, servers) on its way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    if args.check:
        problems = support.missing(fuse=True, network=True)
        for line in problems:
            print(f"missing: {line}")
        print("all requirements met" if not problems else f"{len(problems)} requirement(s) missing")
        return 2 if problems else 0
    if args.bench:
        problems = support.missing()
        if problems:
            print("cairn-sim: cannot benchmark here: " + "; ".join(problems), file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix="cairn-bench-", dir=args.workdir) as tmp:
            result = heal_benchmark(Path(tmp), heal_workers=args.heal_workers)
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    if args.dump:
        docs = ci_library() if args.dump == "ci" else long_library()
        yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
        return 0

    scenarios: list[Scenario] = []
    if args.files:
        for path in args.files:
            scenarios += load_file(path)
    else:
        docs = long_library() if args.long else ci_library()
        scenarios = [parse_scenario(d, "library") for d in docs]
    scenarios = [s for s in scenarios if args.only in s.name]
    if not scenarios:
        print("cairn-sim: no scenario selected", file=sys.stderr)
        return 2
    out = args.out or (LONG_REPORT_DIR if args.long else Path("sim-report"))
    title = "Cairn failure simulator" + (" (long matrix)" if args.long else "")
    results = run_all(scenarios, args.workdir, out, title)
    report = out / "report.md"
    print(f"report: {report} and {report.with_suffix('.html')}")
    if all(r.skipped for r in results):
        return 2
    return 0 if all(r.verdict == "PASS" for r in results) else 1


def run_all(scenarios: list[Scenario], workdir: Path | None, out: Path, title: str) -> list[ScenarioResult]:
    """Run every scenario in turn; the report is rewritten after each one, so a stopped run keeps what it did."""
    results: list[ScenarioResult] = []
    plotted: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="cairn-sim-", dir=workdir) as tmp:
        for scenario in scenarios:
            result = Runner(scenario, Path(tmp) / scenario.name).run()
            results.append(result)
            print(f"{result.verdict:7} {scenario.name} ({result.seconds:.0f} s)"
                  + (f": {result.skipped or result.violations[0].splitlines()[0]}"
                     if result.skipped or (result.violations and not scenario.broken_engine) else ""),
                  flush=True)
            write_report(results, out, title, planned=len(scenarios), plotted=plotted)
    return results


if __name__ == "__main__":
    sys.exit(main())

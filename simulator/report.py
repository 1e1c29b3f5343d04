"""The run report: what an operator reads to see what Cairn survived, in Markdown and HTML.

Contract: `write_report(results, out_dir, title)` writes `report.md`, `report.html` and one PNG per
scenario (healing progress and client throughput/errors over time, faults marked) into `out_dir`,
and returns the Markdown path. A long run calls it after every scenario with `planned` (how many
scenarios the run holds) and `plotted` (names whose PNG this run already drew), so an interrupted run
still leaves a readable report of what it finished, marked partial. The scenario table gives pass/fail and why; the timeline lists every
fault, recovery, expectation and violation with its time. Nothing here judges: it shows the
results the runner produced.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)

from simulator.runner import ScenarioResult  # noqa: E402


def _plot(result: ScenarioResult, path: Path) -> None:
    rec = result.recorder
    fig, (heal_ax, client_ax) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    if rec.heal:
        heal_ax.plot([h[0] for h in rec.heal], [h[1] / 2**20 for h in rec.heal], label="MiB healed")
        twin = heal_ax.twinx()
        twin.plot([h[0] for h in rec.heal], [h[2] for h in rec.heal], color="tab:green", linestyle="--",
                  label="objects healed")
        twin.set_ylabel("objects")
    heal_ax.set_ylabel("MiB healed")
    heal_ax.set_title(f"{result.scenario.name}: healing progress")
    end = max([s.t for s in rec.samples] + [h[0] for h in rec.heal] + [e[0] for e in rec.events] + [1.0])
    seconds = int(end) + 1
    ok = [0] * seconds
    err = [0] * seconds
    mib = [0.0] * seconds
    for s in rec.samples:
        i = min(max(int(s.t), 0), seconds - 1)
        if s.ok:
            ok[i] += 1
            mib[i] += s.nbytes / 2**20
        else:
            err[i] += 1
    xs = list(range(seconds))
    client_ax.plot(xs, ok, label="ok ops/s", color="tab:blue")
    client_ax.plot(xs, err, label="errors/s", color="tab:red")
    client_ax.plot(xs, mib, label="MiB/s", color="tab:gray", linestyle=":")
    client_ax.set_xlabel("seconds since the workload started")
    client_ax.set_title("client throughput and errors")
    client_ax.legend(loc="upper right", fontsize="small")
    for t, kind, _ in rec.events:
        if kind in ("step", "node"):
            for ax in (heal_ax, client_ax):
                ax.axvline(t, color="black", alpha=0.15)
        if kind == "VIOLATION":
            for ax in (heal_ax, client_ax):
                ax.axvline(t, color="red", alpha=0.5)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _row(r: ScenarioResult) -> list[str]:
    s = r.scenario
    why = r.skipped or ("; ".join(r.violations[:2]) if r.violations else "")
    if s.broken_engine:
        why = ("caught the broken engine: " if r.passed else "DID NOT CATCH the broken engine. ") + why
    heal = ", ".join(f"{h:.1f}" for h in r.heal_seconds) or "-"
    return [s.name, str(s.drives), str(s.parity), r.verdict, f"{r.seconds:.0f}", heal, str(r.objects), why]


HEADERS = ["scenario", "drives", "parity", "result", "seconds", "healed in (s)", "objects", "notes"]


def write_report(results: list[ScenarioResult], out_dir: Path, title: str = "Cairn failure simulator",
                 planned: int | None = None, plotted: set[str] | None = None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    passed = sum(r.verdict == "PASS" for r in results)
    failed = sum(r.verdict == "FAIL" for r in results)
    skipped = sum(r.verdict == "SKIPPED" for r in results)
    plotted = set() if plotted is None else plotted
    for r in results:
        if not r.skipped and r.scenario.name not in plotted:
            _plot(r, out_dir / f"{r.scenario.name}.png")
            plotted.add(r.scenario.name)
    planned = len(results) if planned is None else planned
    summary = (f"{passed} passed, {failed} failed, {skipped} skipped of {len(results)} scenarios"
               + (f" (partial: {len(results)} of {planned} planned have run)" if planned > len(results) else ""))

    md = [f"# {title}", "", f"Run {stamp}: **{summary}**.", "",
          "A scenario passes when every invariant held after every step (acknowledged objects read back "
          "byte-identical within tolerance, errors and never wrong bytes beyond it, nothing acknowledged "
          "lost after recovery, every copy healed and verified). A `broken_engine` scenario runs with "
          "healing disabled and passes only if the simulator flags it.", "",
          "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for r in results:
        md.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in _row(r)) + " |")
    for r in results:
        md += ["", f"## {r.scenario.name}: {r.verdict}", ""]
        if r.scenario.description:
            md += [r.scenario.description, ""]
        if r.skipped:
            md += [f"Skipped: {r.skipped}"]
            continue
        md += [f"![{r.scenario.name}]({r.scenario.name}.png)", "", "| t (s) | event | detail |", "|---|---|---|"]
        for t, kind, text in r.recorder.events:
            md.append(f"| {t:.1f} | {kind} | {text.replace('|', '/').splitlines()[0] if text else ''} |")
        if r.violations:
            md += ["", "Violations:", ""] + [f"- {v.splitlines()[0]}" for v in r.violations]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    e = html.escape
    rows = "".join(
        f"<tr class='{r.verdict.lower()}'>" + "".join(f"<td>{e(c)}</td>" for c in _row(r)) + "</tr>" for r in results)
    sections = []
    for r in results:
        if r.skipped:
            sections.append(f"<h2>{e(r.scenario.name)}: SKIPPED</h2><p>{e(r.skipped)}</p>")
            continue
        events = "".join(f"<tr><td>{t:.1f}</td><td>{e(kind)}</td><td>{e(text.splitlines()[0] if text else '')}</td></tr>"
                         for t, kind, text in r.recorder.events)
        sections.append(
            f"<h2>{e(r.scenario.name)}: {r.verdict}</h2><p>{e(r.scenario.description)}</p>"
            f"<img src='{e(r.scenario.name)}.png' alt='healing and client plots'>"
            f"<table><tr><th>t (s)</th><th>event</th><th>detail</th></tr>{events}</table>")
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:3px 6px;font-size:13px}tr.fail{background:#fdd}tr.pass{background:#dfd}tr.skipped{background:#eee}"
        f"</style></head><body><h1>{e(title)}</h1><p>Run {e(stamp)}: <b>{e(summary)}</b>.</p><table><tr>"
        + "".join(f"<th>{e(h)}</th>" for h in HEADERS) + f"</tr>{rows}</table>{''.join(sections)}</body></html>")
    (out_dir / "report.html").write_text(page)
    return md_path

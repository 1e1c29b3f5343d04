"""Shared measuring for the benchmarks beside throughput.py (multipart/presigned, cluster).

Contract: `Meter.measure(group, servers, workload, run)` times one round of a workload on a group of
server processes (one `throughput.Server` per process tree: a single server, or every node of a
cluster) and records a `Round`: wall seconds, units done (bytes or operations), latencies, the CPU the
group used (its process trees, from /proc), the client's own CPU and the rest of the machine's.
`Meter.table()` renders the medians as Markdown with every round listed, so a reader sees the
spread on this shared machine. It measures and reports; it never asserts a target.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from throughput import MIB, Server, fmt, machine_busy_seconds


@dataclass(frozen=True)
class Round:
    seconds: float
    units: float  # bytes for MiB/s, operations for ops/s
    latencies: list[float]
    server_cpu: float
    client_cpu: float
    other_cpu: float

    def rate(self, unit: str) -> float:
        return self.units / self.seconds / (MIB if unit == "MiB/s" else 1)


@dataclass(frozen=True)
class Measured:
    """A workload as reported: its name, a title for tables and its unit ("MiB/s" or "ops/s")."""

    name: str
    title: str
    unit: str


@dataclass
class Meter:
    workloads: Sequence[Measured]
    rounds: dict[tuple[str, str], list[Round]] = field(default_factory=dict)

    def unit(self, workload: str) -> str:
        return next(w.unit for w in self.workloads if w.name == workload)

    async def measure(self, group: str, servers: Sequence[Server], workload: str,
                      run: Callable[[], Awaitable[tuple[float, list[float]]]]) -> Round:
        """Run one round; `run` returns (units done, latencies)."""
        busy0 = machine_busy_seconds()
        cpu0, client0, t0 = sum(s.cpu_seconds() for s in servers), time.process_time(), time.perf_counter()
        gc.disable()
        try:
            units, latencies = await run()
        finally:
            gc.enable()
        seconds = time.perf_counter() - t0
        server_cpu = sum(s.cpu_seconds() for s in servers) - cpu0
        client_cpu = time.process_time() - client0
        other = max(0.0, machine_busy_seconds() - busy0 - server_cpu - client_cpu)
        sample = Round(seconds, units, latencies, server_cpu, client_cpu, other)
        self.rounds.setdefault((workload, group), []).append(sample)
        gc.collect()
        os.sync()  # write back this group's dirty pages now, not during the next group's round
        unit = self.unit(workload)
        print(f"  {workload:<15} {group:<10} {sample.rate(unit):10.1f} {unit:<6} server CPU {server_cpu:6.2f} s, "
              f"client CPU {client_cpu / seconds:4.0%}, others {other / seconds:4.0%}, {seconds:5.1f} s", flush=True)
        return sample

    def median(self, workload: str, group: str) -> float | None:
        samples = self.rounds.get((workload, group))
        return statistics.median(s.rate(self.unit(workload)) for s in samples) if samples else None

    def table(self, groups: Sequence[tuple[str, str]], ratio: tuple[str, str]) -> list[str]:
        """Markdown lines: per workload the median rate of each (group, label) and the ratio of the
        two groups named in `ratio`; then server CPU (cores used, seconds per GiB or per 1000 ops)
        and latency percentiles; then every round's rate."""
        a, b = ratio
        labels = dict(groups)
        head = "| workload | " + " | ".join(label for _, label in groups) + f" | {labels[a]}/{labels[b]} |"
        out = [head, "|---|" + "---|" * (len(groups) + 1)]
        for w in self.workloads:
            values = {g: self.median(w.name, g) for g, _ in groups}
            if all(v is None for v in values.values()):
                continue
            top, bottom = values[a], values[b]
            ratio_text = f"{top / bottom:.2f}x" if top and bottom else "-"
            out.append(f"| {w.title} ({w.unit}) | " + " | ".join(fmt(values[g]) for g, _ in groups)
                       + f" | {ratio_text} |")
        out += ["", "| workload | " + " | ".join(f"{label} server CPU (cores)" for _, label in groups)
                + " | " + " | ".join(f"{label} server CPU s per GiB or 1000 ops" for _, label in groups)
                + " | " + " | ".join(f"{label} p50 / p99 latency (ms)" for _, label in groups) + " |",
                "|---|" + "---|" * (3 * len(groups))]
        for w in self.workloads:
            if not any(self.rounds.get((w.name, g)) for g, _ in groups):
                continue
            per = 1024 * MIB if w.unit == "MiB/s" else 1000
            cores, cost = [], []
            for g, _ in groups:
                rounds = self.rounds.get((w.name, g), [])
                cores.append(fmt(statistics.median(r.server_cpu / r.seconds for r in rounds)) if rounds else "-")
                cost.append(fmt(statistics.median(r.server_cpu / r.units * per for r in rounds)) if rounds else "-")
            lat = [latency_text(self.rounds.get((w.name, g), [])) for g, _ in groups]
            out.append(f"| {w.title} | " + " | ".join(cores + cost + lat) + " |")
        out.append("")
        for w in self.workloads:
            listed = [f"{label}: " + ", ".join(fmt(r.rate(w.unit)) for r in self.rounds[(w.name, g)])
                      for g, label in groups if self.rounds.get((w.name, g))]
            if listed:
                out.append(f"- Rounds, {w.title} ({w.unit}): " + "; ".join(listed) + ".")
        return out


def latency_text(rounds: Sequence[Round]) -> str:
    latencies = sorted(x for r in rounds for x in r.latencies)
    if not latencies:
        return "-"
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000
    return f"{fmt(p50)} / {fmt(p99)}"



"""Measuring one scenario run: wall time, CPU of every process involved, Redis commands.

CPU is read from ``/proc`` for the client (this process), the worker (its whole process tree) and
each ``redis-server``; Redis commands are ``INFO commandstats`` deltas, which include the commands
Lua scripts run (the benchmark's own ``INFO`` calls are left out).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from .procs import Worker, cpu_seconds, self_cpu_seconds

#: Seconds waited after a run before the closing snapshot, so work that trails the client's view of
#: "done" (acks, the last report, the finalizer) is counted in the run it belongs to.
SETTLE_S = 0.3


class RedisProbe:
    """Counters of one ``redis-server``: its CPU (from ``/proc``) and ``INFO commandstats``."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.client = redis.Redis.from_url(url)
        self.pid = int(self.client.info("server")["process_id"])

    def commands(self) -> Counter[str]:
        """Calls and total microseconds per command, as ``{"<cmd>": calls, "<cmd>.usec": usec}``."""
        out: Counter[str] = Counter()
        for key, stats in self.client.info("commandstats").items():
            cmd = key.removeprefix("cmdstat_")
            if cmd != "info":
                out[cmd] = int(stats["calls"])
                out[f"{cmd}.usec"] = int(stats["usec"])
        return out

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)


@dataclass
class Snapshot:
    t: float
    cpu: dict[str, float]
    commands: dict[str, Counter[str]]


@dataclass
class Sample:
    """One run of one scenario."""

    scenario: str
    n: int
    wall_s: float
    cpu_s: dict[str, float]
    calls: dict[str, int]
    script_usec: int
    by_command: dict[str, dict[str, int]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.n / self.wall_s

    @property
    def cpu_us_per_member(self) -> float:
        return 1e6 * sum(self.cpu_s.values()) / self.n

    @property
    def commands_per_member(self) -> float:
        return sum(self.calls.values()) / self.n

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "n": self.n,
            "wall_s": self.wall_s,
            "throughput_per_s": self.throughput,
            "cpu_s": self.cpu_s,
            "cpu_us_per_member": self.cpu_us_per_member,
            "calls": self.calls,
            "commands_per_member": self.commands_per_member,
            "script_usec": self.script_usec,
            "by_command": self.by_command,
            **self.extra,
        }


class Meter:
    """Takes snapshots around a run; ``worker`` may be ``None`` (scripts driven directly)."""

    def __init__(self, probes: list[RedisProbe], worker: Worker | None = None) -> None:
        self.probes = probes
        self.worker = worker

    def snapshot(self) -> Snapshot:
        cpu = {"client": self_cpu_seconds()}
        if self.worker is not None:
            cpu.update(self.worker.cpu_seconds())
        for probe in self.probes:
            cpu[f"redis_{probe.name}"] = probe.cpu_seconds()
        return Snapshot(time.perf_counter(), cpu, {p.name: p.commands() for p in self.probes})

    def run(self, scenario: str, n: int, fn: Callable[[], Any]) -> Sample:
        """Run ``fn`` (which returns its wall time, optionally with extra fields) between two snapshots."""
        before = self.snapshot()
        out = fn()
        wall, extra = (out, {}) if isinstance(out, float) else out
        time.sleep(SETTLE_S)
        after = self.snapshot()
        return diff(scenario, n, wall, before, after, extra)


def diff(scenario: str, n: int, wall: float, a: Snapshot, b: Snapshot, extra: dict[str, Any]) -> Sample:
    cpu = {k: b.cpu[k] - a.cpu.get(k, 0.0) for k in b.cpu}
    calls: dict[str, int] = {}
    by_command: dict[str, dict[str, int]] = {}
    script_usec = 0
    for server, after in b.commands.items():
        delta = after - a.commands[server]  # Counter subtraction drops zeros
        by_command[server] = {k: v for k, v in delta.items() if not k.endswith(".usec")}
        calls[server] = sum(by_command[server].values())
        script_usec += delta.get("evalsha.usec", 0) + delta.get("eval.usec", 0)
    return Sample(scenario, n, wall, cpu, calls, script_usec, by_command, extra)

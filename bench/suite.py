"""Running scenarios interleaved, repetition by repetition, and pairing each swarm run with its baseline."""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from . import scenarios as sc
from .accounting import MonitorCounter
from .meter import Meter, Sample

Scenario = tuple[int, Callable[[], Any]]


@dataclass(frozen=True)
class Sizes:
    """How big and how often; ``quick`` shrinks everything for the CI smoke run."""

    reps: int = 7
    n: int = 2000
    n_10ms: int = 400
    handoff_m: int = 21
    e2e: tuple[int, ...] = (1000, 10000)
    e2e_reps: tuple[int, ...] = (7, 3)
    scale: tuple[int, ...] = (1000, 10000, 100000)
    scale_reps: int = 7
    bulk_n: int = 100000
    bulk_reps: int = 3
    #: P8: the small and the big swarm sharing a pool of 4 (10 ms members), alternated with the small alone
    fair_small: int = 10
    fair_big: int = 10000
    fair_reps: int = 5
    #: F3: members admitted by a rate, and the rate per second
    rate_n: int = 60
    rate_per_s: int = 20
    #: P5: idle open and finished swarms in Redis, reaper ticks timed
    reaper_open: int = 100000
    reaper_finished: int = 100000
    reaper_reps: int = 7
    #: P9: members added from an iterator, and the batch size
    stream_n: int = 1000000
    stream_batch: int = 10000


QUICK = Sizes(
    reps=2,
    n=40,
    n_10ms=12,
    handoff_m=4,
    e2e=(30, 60),
    e2e_reps=(1, 1),
    scale=(50, 100, 200),
    scale_reps=1,
    bulk_n=300,
    bulk_reps=1,
    fair_big=200,
    fair_reps=1,
    rate_n=10,
    reaper_open=2000,
    reaper_finished=2000,
    reaper_reps=2,
    stream_n=5000,
    stream_batch=1000,
)


def clean(broker: redis.Redis, state: redis.Redis) -> None:
    """Drop the state and stored results between runs, so every run starts from the same empty servers."""
    state.flushdb()
    keys = list(broker.scan_iter(match="celery-task-meta-*", count=2000))
    for i in range(0, len(keys), 2000):
        broker.unlink(*keys[i : i + 2000])


def interleaved(
    meter: Meter, families: list[dict[str, Scenario]], reps: int, cleanup: Callable[[], None]
) -> dict[str, list[Sample]]:
    """Each repetition runs every scenario once; the order rotates so none always goes first."""
    samples: dict[str, list[Sample]] = defaultdict(list)
    for rep in range(reps):
        for family in families:
            names = list(family)
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                n, fn = family[name]
                cleanup()
                samples[name].append(meter.run(name, n, fn))
    return samples


def throughput_family(size: Sizes, slots: int) -> dict[str, Scenario]:
    n = size.n
    return {
        "group": (n, lambda: sc.run_group(n)),
        "chord": (n, lambda: sc.run_chord(n)),
        "swarm30": (n, lambda: sc.run_swarm(n, 30)),
        "swarm2x": (n, lambda: sc.run_swarm(n, 2 * slots)),
        "many_small": (n, lambda: sc.run_many_small(n)),
    }


def ten_ms_family(size: Sizes) -> dict[str, Scenario]:
    n = size.n_10ms
    return {
        "group_10ms": (n, lambda: sc.run_group(n, "sleep_ms")),
        "swarm_10ms_k4": (n, lambda: sc.run_swarm(n, 4, "sleep_ms")),
        "naive_10ms_k4": (n, lambda: sc.run_naive_loop(n, 4, "sleep_ms")),
    }


def handoff_family(size: Sizes) -> dict[str, Scenario]:
    m = size.handoff_m
    return {
        "handoff": (m - 1, lambda: sc.run_handoff(m)),
        "roundtrip": (m - 1, lambda: sc.run_roundtrips(m - 1)),
    }


def warm_up(slots: int) -> None:
    """Import, connect and fork everything once, unmeasured."""
    sc.run_group(20)
    sc.run_chord(20)
    sc.run_swarm(20, 2 * slots)
    sc.run_many_small(20)
    sc.run_naive_loop(8, 4, "noop")
    sc.run_handoff(3)
    sc.run_roundtrips(2)


def paired(samples: dict[str, list[Sample]], name: str, base: str, metric: Callable[[Sample], float]) -> list[float]:
    return [metric(a) / metric(b) for a, b in zip(samples[name], samples[base], strict=True)]


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(samples: dict[str, list[Sample]]) -> dict[str, dict[str, float]]:
    """Medians per scenario: throughput, CPU per member (total and per process), commands per member."""
    out = {}
    for name, runs in samples.items():
        row = {
            "throughput_per_s": med([s.throughput for s in runs]),
            "cpu_us_per_member": med([s.cpu_us_per_member for s in runs]),
            "commands_per_member": med([s.commands_per_member for s in runs]),
        }
        for part in runs[0].cpu_s:
            row[f"cpu_us_per_member.{part}"] = med([1e6 * s.cpu_s[part] / s.n for s in runs])
        for server in runs[0].calls:
            row[f"commands_per_member.{server}"] = med([s.calls[server] / s.n for s in runs])
        for key in ("median_s", "p95_s", "slot_gap_median_ms", "slot_gap_mean_ms"):
            values = [s.extra[key] for s in runs if key in s.extra]  # no slot gap when no slot ran two tasks
            if values:
                row[key] = med(values)
        out[name] = row
    return out


def ratios(samples: dict[str, list[Sample]]) -> dict[str, float]:
    """Paired ratios (median over repetitions) of each swarm scenario against its plain-Celery baseline."""
    thr = lambda s: s.throughput  # noqa: E731
    cpu = lambda s: s.cpu_us_per_member  # noqa: E731
    out: dict[str, float] = {}
    for name in ("chord", "swarm30", "swarm2x", "many_small"):
        out[f"throughput.{name}/group"] = med(paired(samples, name, "group", thr))
        out[f"cpu.{name}/group"] = med(paired(samples, name, "group", cpu))
        diffs = [
            a.commands_per_member - b.commands_per_member for a, b in zip(samples[name], samples["group"], strict=True)
        ]
        out[f"commands_extra.{name}-group"] = med(diffs)
    out["throughput.swarm_10ms_k4/naive_10ms_k4"] = med(paired(samples, "swarm_10ms_k4", "naive_10ms_k4", thr))
    out["throughput.group_10ms/naive_10ms_k4"] = med(paired(samples, "group_10ms", "naive_10ms_k4", thr))
    out["cpu.swarm_10ms_k4/naive_10ms_k4"] = med(paired(samples, "swarm_10ms_k4", "naive_10ms_k4", cpu))
    for stat in ("median_s", "p95_s"):
        pairs = zip(samples["handoff"], samples["roundtrip"], strict=True)
        out[f"handoff.{stat.removesuffix('_s')}/roundtrip"] = med([a.extra[stat] / b.extra[stat] for a, b in pairs])
    return out


def _monitored_swarm(state_url: str, n: int, pool: str | None) -> MonitorCounter:
    with MonitorCounter(state_url) as mon:
        sc.run_swarm(n, 30, pool=pool)
        time.sleep(0.5)  # let the last report and the finalizer land
    return mon


def round_trips(state_url: str, n: int, pool: str | None = None) -> dict[str, Any]:
    """State-Redis commands by connection (``MONITOR``), for swarms of ``n`` and ``n // 2`` no-ops (limit 30,
    in ``pool`` if given).

    ``<name>_per_member`` divides the bigger run's counts by ``n``; ``marginal_<name>_per_member`` is the
    difference between the two runs divided by the difference in members, which leaves out what a swarm
    costs once (create, start, the lease renewal of a new swarm, finalization). It is rounded to two
    decimals: a one-off command that lands in one run and not the other moves it by ``1 / (n - n // 2)``.
    """
    big, small = _monitored_swarm(state_url, n, pool), _monitored_swarm(state_url, n // 2, pool)
    extra = n - n // 2
    out: dict[str, Any] = {f"{k}_per_member": v / n for k, v in sorted(big.by_name.items())}
    out.update(
        {f"marginal_{k}_per_member": round((big.by_name[k] - small.by_name[k]) / extra, 2) for k in sorted(big.by_name)}
    )
    out["by_command_per_member"] = {k: v / n for k, v in sorted(big.by_name_command.items())}
    out["n"] = n
    return out

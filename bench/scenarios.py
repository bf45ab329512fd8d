"""The workloads, each timed from building the canvas on the client to the client holding the results.

Every function returns its wall time in seconds (and sometimes extra fields). They import
:mod:`bench.app` lazily: its settings come from the environment :mod:`bench.run` prepares.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from typing import Any

from celery import chord, group

from mageflow_celery import SwarmConfig, swarm

#: Seconds any single run may take before the benchmark gives up.
RUN_TIMEOUT_S = 900.0
#: Poll interval of the naive client loop (``AsyncResult.ready()`` on each task in flight).
NAIVE_POLL_S = 0.005
#: Poll interval of ``SwarmResult.get`` (it reads one hash per poll).
SWARM_POLL_S = 0.02


def _tasks() -> Any:
    from bench import app

    return app


def slot_gaps(stamps: list[Any]) -> dict[str, float]:
    """Idle time of the pool slots between one ``sleep_ms`` task's end and the next one's start (same slot)."""
    by_slot: dict[str, list[tuple[float, float]]] = {}
    for slot, start, end in stamps:
        by_slot.setdefault(slot, []).append((start, end))
    gaps = []
    for runs in by_slot.values():
        runs.sort()
        gaps += [b[0] - a[1] for a, b in zip(runs, runs[1:], strict=False)]
    if not gaps:
        return {}
    return {"slot_gap_median_ms": 1000 * statistics.median(gaps), "slot_gap_mean_ms": 1000 * statistics.fmean(gaps)}


def _timed(t0: float, task: str, results: list[Any]) -> float | tuple[float, dict[str, Any]]:
    wall = time.perf_counter() - t0
    return (wall, slot_gaps(results)) if task == "sleep_ms" else wall


def run_group(n: int, task: str = "noop") -> float | tuple[float, dict[str, Any]]:
    sig = getattr(_tasks(), task)
    t0 = time.perf_counter()
    res = group(sig.s() for _ in range(n)).apply_async()
    return _timed(t0, task, res.get(timeout=RUN_TIMEOUT_S))


def run_chord(n: int) -> float:
    b = _tasks()
    t0 = time.perf_counter()
    res = chord(b.noop.s() for _ in range(n))(b.collect.s())
    assert res.get(timeout=RUN_TIMEOUT_S, follow_parents=False) == n
    return time.perf_counter() - t0


def run_swarm(n: int, limit: int, task: str = "noop", pool: str | None = None) -> float | tuple[float, dict[str, Any]]:
    b = _tasks()
    sig = getattr(b, task)
    t0 = time.perf_counter()
    config = SwarmConfig(max_concurrency=limit, pool=pool)
    s = swarm(tasks=[sig.s() for _ in range(n)], config=config, is_swarm_closed=True, app=b.app)
    results = s.apply_async().get(timeout=RUN_TIMEOUT_S, interval=SWARM_POLL_S)
    assert len(results) == n
    return _timed(t0, task, results)


def run_many_small(n: int, size: int = 10, limit: int = 5) -> float:
    """SPEC P6: ``n // size`` swarms of ``size`` no-ops each (``max_concurrency=limit``), all applied
    before any result is awaited, then every swarm's results collected."""
    b = _tasks()
    t0 = time.perf_counter()
    config = SwarmConfig(max_concurrency=limit)
    running = [
        swarm(tasks=[b.noop.s() for _ in range(size)], config=config, is_swarm_closed=True, app=b.app).apply_async()
        for _ in range(n // size)
    ]
    for res in running:
        assert len(res.get(timeout=RUN_TIMEOUT_S, interval=SWARM_POLL_S)) == size
    return time.perf_counter() - t0


def run_naive_loop(n: int, k: int, task: str = "sleep_ms") -> float | tuple[float, dict[str, Any]]:
    """What users write without swarms: keep ``k`` tasks in flight, polling for one to finish."""
    sig = getattr(_tasks(), task)
    t0 = time.perf_counter()
    left = n
    in_flight: deque[Any] = deque()
    results = []
    while left or in_flight:
        while left and len(in_flight) < k:
            in_flight.append(sig.delay())
            left -= 1
        done = [r for r in in_flight if r.ready()]
        for r in done:
            in_flight.remove(r)
            results.append(r.result)
        if not done:
            time.sleep(NAIVE_POLL_S)
    return _timed(t0, task, results)


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def run_handoff(m: int) -> tuple[float, dict[str, Any]]:
    """A swarm of ``m`` stamping members at ``max_concurrency=1``: gaps between one's end and the next's start."""
    b = _tasks()
    t0 = time.perf_counter()
    s = swarm(
        tasks=[b.stamp.s() for _ in range(m)], config=SwarmConfig(max_concurrency=1), is_swarm_closed=True, app=b.app
    )
    stamps = s.apply_async().get(timeout=RUN_TIMEOUT_S, interval=SWARM_POLL_S)
    wall = time.perf_counter() - t0
    gaps = [nxt[0] - prev[1] for prev, nxt in zip(stamps, stamps[1:], strict=False)]
    return wall, {"handoff_s": gaps, "median_s": statistics.median(gaps), "p95_s": _p95(gaps)}


def run_roundtrips(m: int) -> tuple[float, dict[str, Any]]:
    """``m`` sequential ``.delay().get()`` round trips of the same stamping task."""
    b = _tasks()
    rtts = []
    t0 = time.perf_counter()
    for _ in range(m):
        t = time.perf_counter()
        b.stamp.delay().get(timeout=RUN_TIMEOUT_S)
        rtts.append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    return wall, {"roundtrip_s": rtts, "median_s": statistics.median(rtts), "p95_s": _p95(rtts)}

"""SPEC P8 and F3 on a real worker: what a shared pool costs, how fair it is, how late a rate admits.

A ``threads -c 8`` worker has more slots than the pool has tokens, so the pool, not the worker, is
what holds members back. Each function returns what it measured; :mod:`bench.run` prints it.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from mageflow_celery import SwarmConfig, get_pool, set_pool_limit, swarm
from mageflow_celery.testing import PeakSampler

from .scenarios import RUN_TIMEOUT_S, SWARM_POLL_S, _tasks

#: The pool of the fairness runs and its limit (SPEC P8: a pool of 4).
POOL, POOL_LIMIT = "bench-fair", 4
#: How often the sampler reads the pool's tokens in use, seconds.
SAMPLE_S = 0.005


def limit_pool() -> None:
    """Give the pool its limit: a swarm of limit 30 then waits on it (the round trips of a busy pool)."""
    set_pool_limit(_tasks().app, POOL, POOL_LIMIT)


def _pooled_swarm(n: int, limit: int, ms: float = 10.0, weight: int = 1) -> Any:
    b = _tasks()
    config = SwarmConfig(max_concurrency=limit, pool=POOL, weight=weight)
    return swarm(tasks=[b.sleep_ms.s(ms) for _ in range(n)], config=config, is_swarm_closed=True, app=b.app)


def _time_small(n_small: int) -> float:
    t0 = time.perf_counter()
    res = _pooled_swarm(n_small, POOL_LIMIT).apply_async()
    res.get(timeout=RUN_TIMEOUT_S, interval=SWARM_POLL_S)
    return time.perf_counter() - t0


def fairness(n_small: int, n_big: int, reps: int) -> dict[str, Any]:
    """A small swarm's time alone in the pool against its time behind a big swarm on the same pool.

    The big swarm (``n_big`` 10 ms members, same weight) starts first; once it holds the whole pool, the
    small one is applied and timed to its result. The big one is then cancelled (it need not finish:
    what is measured is the small one's wait). Alone and shared runs alternate; the pool's tokens in use
    are sampled all along.
    """
    app = _tasks().app
    set_pool_limit(app, POOL, POOL_LIMIT)
    alone, shared = [], []
    with PeakSampler(lambda: get_pool(app, POOL).in_use, SAMPLE_S) as sampler:
        for _ in range(reps):
            alone.append(_time_small(n_small))
            big = _pooled_swarm(n_big, n_big).apply_async()
            deadline = time.monotonic() + 30
            while get_pool(app, POOL).in_use < POOL_LIMIT and time.monotonic() < deadline:
                time.sleep(SAMPLE_S)
            shared.append(_time_small(n_small))
            big.cancel()
            _drain(app)
    ratios = [s / a for s, a in zip(shared, alone, strict=True)]
    return {
        "n_small": n_small,
        "n_big": n_big,
        "pool_limit": POOL_LIMIT,
        "alone_s": alone,
        "shared_s": shared,
        "shared_over_alone": statistics.median(ratios),
        "shared_over_alone_all": ratios,
        "peak_in_use": sampler.peak,
        "samples": sampler.samples,
    }


def _drain(app: Any) -> None:
    """Wait until the cancelled big swarm's running members have finished and let the pool go."""
    deadline = time.monotonic() + 60
    while get_pool(app, POOL).in_use and time.monotonic() < deadline:
        time.sleep(0.02)


def rate_lateness(n: int, per_s: int) -> dict[str, Any]:
    """A swarm of ``n`` stamping members admitted at ``per_s``/s: how late each starts against the ideal
    schedule (the first member's start plus ``i / per_s``). Lateness includes the publish and the
    broker's delivery, so it bounds the wake-up delay of the rate's timer from above."""
    b = _tasks()
    config = SwarmConfig(max_concurrency=n, rate_limit=f"{per_s}/s")
    s = swarm(tasks=[b.stamp.s() for _ in range(n)], config=config, is_swarm_closed=True, app=b.app)
    stamps = s.apply_async().get(timeout=RUN_TIMEOUT_S, interval=SWARM_POLL_S)
    starts = sorted(start for start, _ in stamps)
    late = [1000 * (t - (starts[0] + i / per_s)) for i, t in enumerate(starts)]
    # the bucket's next slot is one interval after the previous admission: a member's wake-up delay is how
    # much longer than one interval it started after the previous one (the drift above adds these up)
    delay = [1000 * (b - a - 1 / per_s) for a, b in zip(starts, starts[1:], strict=False)]
    return {
        "n": n,
        "per_s": per_s,
        "achieved_per_s": (n - 1) / (starts[-1] - starts[0]) if n > 1 else float("nan"),
        "late_ms_median": statistics.median(late),
        "late_ms_max": max(late),
        "slot_delay_ms_median": statistics.median(delay) if delay else float("nan"),
        "slot_delay_ms_max": max(delay) if delay else float("nan"),
    }

"""Paired A/B of two worker variants: ``python -m bench.ab --pool prefork --b ENV=1 [--a ENV=0] [--reps 6]``.

Library changes are compared by putting the variant behind an environment variable for a while (the
worker reads it), then alternating worker starts: A, B, B, A, A, B, ... Each start runs a warm-up swarm,
then a plain group, a swarm (``max_concurrency=30``) and a group again, all of ``--n`` no-op tasks, and
records the swarm's throughput and CPU per member (client, worker tree and both Redis servers) against
the mean of the two groups around it. Alternating cancels the drift of a shared VM, which moves a single
run's ratio by about ±0.07; compare the medians it prints, and run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from mageflow_celery.testing import RedisServer

from .meter import RedisProbe
from .procs import Worker, cpu_seconds, self_cpu_seconds

LOGS = Path(__file__).resolve().parent / "results" / "logs"


def _env(pairs: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs.split(",") if pair)


def main(argv: list[str] | None = None) -> dict[str, list[tuple[float, float]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default="prefork", help="worker pool (default prefork)")
    parser.add_argument("--n", type=int, default=2000, help="no-op tasks per run (default 2000)")
    parser.add_argument("--reps", type=int, default=6, help="worker starts per variant (default 6)")
    parser.add_argument("--a", default="", help="worker environment of variant A, NAME=VALUE,... (default none)")
    parser.add_argument("--b", default="", help="worker environment of variant B, NAME=VALUE,...")
    args = parser.parse_args(argv)
    variants = {"A": _env(args.a), "B": _env(args.b)}
    out: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    LOGS.mkdir(parents=True, exist_ok=True)
    with RedisServer() as broker, RedisServer() as state:
        os.environ["BENCH_BROKER_URL"], os.environ["BENCH_STATE_URL"] = broker.url, state.url
        from celery import group

        from bench.app import app, noop
        from mageflow_celery import SwarmConfig, swarm

        servers = [RedisProbe("broker", broker.url).pid, RedisProbe("state", state.url).pid]

        def run_group() -> None:
            group(noop.s() for _ in range(args.n)).apply_async().get(timeout=600)

        def run_swarm() -> None:
            config = SwarmConfig(max_concurrency=30)
            swarm(tasks=[noop.s()] * args.n, config=config, is_swarm_closed=True, app=app).apply_async().get(
                timeout=600
            )

        def measure(worker: Worker, run: Callable[[], None]) -> tuple[float, float]:
            def cpu() -> float:
                return sum(worker.cpu_seconds().values()) + self_cpu_seconds() + sum(map(cpu_seconds, servers))

            c0, t0 = cpu(), time.perf_counter()
            run()
            return args.n / (time.perf_counter() - t0), (cpu() - c0) / args.n * 1e6

        for rep in range(args.reps):
            for name in ("A", "B") if rep % 2 == 0 else ("B", "A"):
                env = {**os.environ, **variants[name]}
                with Worker(args.pool, 2, env, LOGS).start(app) as worker:
                    run_swarm()  # warm-up
                    g1, s, g2 = measure(worker, run_group), measure(worker, run_swarm), measure(worker, run_group)
                group_rate, group_cpu = (g1[0] + g2[0]) / 2, (g1[1] + g2[1]) / 2
                out[name].append((s[0] / group_rate, s[1] / group_cpu))
                print(f"{name}: swarm/group throughput {out[name][-1][0]:.3f}, CPU {out[name][-1][1]:.3f}", flush=True)
    for name in ("A", "B"):
        thr = statistics.median(r[0] for r in out[name])
        cpu = statistics.median(r[1] for r in out[name])
        print(f"{name} {variants[name] or '(as is)'}: median throughput ratio {thr:.3f}, CPU ratio {cpu:.3f}")
    return out


if __name__ == "__main__":
    main()

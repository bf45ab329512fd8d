"""Paired A/B of two worker variants: ``python -m bench.ab --pool prefork --b ENV=1 [--a ENV=0] [--reps 6]``.

Library changes are compared by putting the variant behind an environment variable for a while (the
worker reads it), then alternating worker starts: A, B, B, A, A, B, ... Each start runs a warm-up swarm,
then a plain group, a swarm (``max_concurrency=30``) and a group again, all of ``--n`` no-op tasks, and
records, with the same :class:`~bench.meter.Meter` and scenarios as :mod:`bench.run`, the swarm's
throughput and CPU per member against the mean of the two groups around it. Alternating cancels the
drift of a shared VM, which moves a single run's ratio by about ±0.07; compare the medians it prints,
and run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from mageflow_celery.testing import RedisServer

from .meter import Meter, RedisProbe
from .procs import Worker

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
    n = args.n
    variants = {"A": _env(args.a), "B": _env(args.b)}
    out: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    LOGS.mkdir(parents=True, exist_ok=True)
    with RedisServer() as broker, RedisServer() as state:
        os.environ["BENCH_BROKER_URL"], os.environ["BENCH_STATE_URL"] = broker.url, state.url
        from bench import app as bench_app

        from .scenarios import run_group, run_swarm

        probes = [RedisProbe("broker", broker.url), RedisProbe("state", state.url)]
        for rep in range(args.reps):
            for name in ("A", "B") if rep % 2 == 0 else ("B", "A"):
                env = {**os.environ, **variants[name]}
                with Worker(args.pool, 2, env, LOGS).start(bench_app.app) as worker:
                    meter = Meter(probes, worker)
                    run_swarm(n, 30)  # warm-up
                    g1 = meter.run("group", n, lambda: run_group(n))
                    sw = meter.run("swarm30", n, lambda: run_swarm(n, 30))
                    g2 = meter.run("group", n, lambda: run_group(n))
                group_rate = (g1.throughput + g2.throughput) / 2
                group_cpu = (g1.cpu_us_per_member + g2.cpu_us_per_member) / 2
                out[name].append((sw.throughput / group_rate, sw.cpu_us_per_member / group_cpu))
                print(f"{name}: swarm/group throughput {out[name][-1][0]:.3f}, CPU {out[name][-1][1]:.3f}", flush=True)
    for name in ("A", "B"):
        thr = statistics.median(r[0] for r in out[name])
        cpu = statistics.median(r[1] for r in out[name])
        print(f"{name} {variants[name] or '(as is)'}: median throughput ratio {thr:.3f}, CPU ratio {cpu:.3f}")
    return out


if __name__ == "__main__":
    main()

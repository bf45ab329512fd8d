"""Benchmark mageflow_celery swarms against plain Celery: ``python -m bench.run [--quick]``.

Starts two throwaway ``redis-server`` processes (broker + result backend; swarm state), then a
Celery worker subprocess per pool, and runs the scenarios interleaved. Prints a table of paired
ratios and the SPEC §4 targets, and writes everything to ``bench/results/<timestamp>.json``.
See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from mageflow_celery.testing import RedisServer

from . import flow, scale, scenarios, speed, suite
from .meter import Meter, RedisProbe
from .procs import REPO, Worker
from .report import table, targets
from .scaling import create_bulk, drive_scripts
from .suite import QUICK, Sizes

RESULTS_DIR = REPO / "bench" / "results"
#: Sections besides the per-pool families, each skippable with ``--skip``.
SECTIONS = ("scaling", "e2e", "flow", "reaper", "stream")
#: The worker of the flow-control section: more slots than the pool has tokens (SPEC P8).
FLOW_POOL, FLOW_CONCURRENCY = "threads", 8


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes and 2 reps: a smoke run, not a measurement")
    p.add_argument("--reps", type=int, help="repetitions of each interleaved scenario (default 7)")
    p.add_argument("--n", type=int, help="no-op members per throughput run (default 2000)")
    p.add_argument("--pools", default="prefork,solo,threads,gevent", help="worker pools, comma-separated")
    p.add_argument("--concurrency", type=int, default=2, help="pool size of prefork and threads workers")
    p.add_argument("--e2e-100k", action="store_true", help="also run the 100,000-member end-to-end comparison")
    p.add_argument("--e2e-1m", action="store_true", help="also run a 1,000,000-member swarm end to end (long)")
    p.add_argument("--skip-scaling", action="store_true", help="skip the direct script and bulk creation runs")
    p.add_argument("--skip", default="", help=f"sections to skip, comma-separated, of: {','.join(SECTIONS)}")
    p.add_argument("--out", type=Path, help="JSON file to write (default bench/results/<timestamp>.json)")
    return p.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> Sizes:
    size = QUICK if args.quick else Sizes()
    if args.reps:
        size = replace(size, reps=args.reps)
    if args.n:
        size = replace(size, n=args.n)
    for flag, n in ((args.e2e_100k, 100000), (args.e2e_1m, 1000000)):
        if flag:
            size = replace(size, e2e=(*size.e2e, n), e2e_reps=(*size.e2e_reps, 1))
    return size


def skipped(args: argparse.Namespace) -> set[str]:
    out = {s for s in args.skip.split(",") if s}
    unknown = out - set(SECTIONS)
    if unknown:
        raise SystemExit(f"--skip: unknown section(s) {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    return out | ({"scaling"} if args.skip_scaling else set())


def machine() -> dict[str, Any]:
    import celery
    import kombu
    import redis

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True)
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "redis_py": redis.__version__,
        "redis_server": server,
        "platform": platform.platform(),
        "git": commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else ""),
        "argv": sys.argv,
    }


def run_scaling(size: Sizes, state: RedisProbe, broker: RedisProbe) -> dict[str, Any]:
    """Scripts driven directly at each size (interleaved reps), then bulk creation."""
    meter = Meter([state])
    runs: dict[int, list[Any]] = {n: [] for n in size.scale}
    for rep in range(size.scale_reps):
        order = list(size.scale[rep % len(size.scale) :]) + list(size.scale[: rep % len(size.scale)])
        for n in order:
            suite.clean(broker.client, state.client)
            runs[n].append(drive_scripts(meter, n))
    by_n = {
        str(n): {
            "script_us_per_member": suite.med([s.script_usec / s.n for s in samples]),
            "redis_cpu_us_per_member": suite.med([1e6 * s.cpu_s["redis_state"] / s.n for s in samples]),
            "client_cpu_us_per_member": suite.med([1e6 * s.cpu_s["client"] / s.n for s in samples]),
            "commands_per_member": suite.med([s.commands_per_member for s in samples]),
            "wall_us_per_member": suite.med([1e6 * s.wall_s / s.n for s in samples]),
            "samples": [s.as_dict() for s in samples],
        }
        for n, samples in runs.items()
    }
    small, large = by_n[str(size.scale[0])], by_n[str(size.scale[-1])]
    keys = ("script_us_per_member", "redis_cpu_us_per_member", "commands_per_member")
    ratio = {k: large[k] / small[k] if small[k] else float("nan") for k in keys}
    bulk = []
    for _ in range(size.bulk_reps):
        suite.clean(broker.client, state.client)
        bulk.append(create_bulk(state.client, size.bulk_n))
    suite.clean(broker.client, state.client)
    bulk_median = {k: suite.med([b[k] for b in bulk]) for k in bulk[0]}
    return {"scaling": {"by_n": by_n, "ratio": ratio}, "bulk": {**bulk_median, "reps": bulk}}


def run_pool(pool: str, worker: Worker, size: Sizes, probes: list[RedisProbe], state_url: str) -> dict[str, Any]:
    broker, state = probes
    meter = Meter(probes, worker)
    suite.warm_up(worker.slots)
    families = [suite.throughput_family(size, worker.slots), suite.ten_ms_family(size), suite.handoff_family(size)]
    samples = suite.interleaved(meter, families, size.reps, lambda: suite.clean(broker.client, state.client))
    suite.clean(broker.client, state.client)
    return {
        "slots": worker.slots,
        "ratios": suite.ratios(samples),
        "summary": suite.summarize(samples),
        "round_trips": suite.round_trips(state_url, size.n),
        "samples": {name: [s.as_dict() for s in runs] for name, runs in samples.items()},
    }


def run_flow(size: Sizes, worker: Worker, probes: list[RedisProbe], state_url: str) -> dict[str, Any]:
    """SPEC P8 and F3 on a worker with more slots than the pool has tokens."""
    broker, state = probes
    suite.clean(broker.client, state.client)
    suite.warm_up(worker.slots)
    plain = suite.round_trips(state_url, size.n)
    pooled = suite.round_trips(state_url, size.n, pool=flow.POOL)
    flow.limit_pool()
    busy = suite.round_trips(state_url, size.n, pool=flow.POOL)
    key = "marginal_mageflow-worker_per_member"
    suite.clean(broker.client, state.client)
    fair = flow.fairness(size.fair_small, size.fair_big, size.fair_reps)
    suite.clean(broker.client, state.client)
    rate = flow.rate_lateness(size.rate_n, size.rate_per_s)
    suite.clean(broker.client, state.client)
    return {
        "worker": f"{worker.pool} -c{worker.concurrency}",
        "round_trips_plain": plain[key],
        "round_trips_pooled": pooled[key],
        "round_trips_extra": pooled[key] - plain[key],
        "round_trips_pooled_busy": busy[key],
        "round_trips_extra_busy": busy[key] - plain[key],
        "fairness": fair,
        "rate": rate,
    }


def run_e2e(size: Sizes, worker: Worker, probes: list[RedisProbe]) -> dict[str, Any]:
    broker, state = probes
    meter = Meter(probes, worker)
    out = {}
    for n, reps in zip(size.e2e, size.e2e_reps, strict=True):
        family = {
            "group": (n, lambda n=n: scenarios.run_group(n)),
            "swarm30": (n, lambda n=n: scenarios.run_swarm(n, 30)),
        }
        samples = suite.interleaved(meter, [family], reps, lambda: suite.clean(broker.client, state.client))
        out[str(n)] = {
            "group_per_s": suite.med([s.throughput for s in samples["group"]]),
            "swarm_per_s": suite.med([s.throughput for s in samples["swarm30"]]),
            "ratio": suite.med(suite.paired(samples, "swarm30", "group", lambda s: s.throughput)),
            "reps": reps,
            "group_samples_per_s": [s.throughput for s in samples["group"]],
            "swarm_samples_per_s": [s.throughput for s in samples["swarm30"]],
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    size = sizes_from(args)
    skip = skipped(args)
    pools = [p for p in args.pools.split(",") if p]
    started = time.time()
    results: dict[str, Any] = {"meta": machine(), "sizes": asdict(size), "pools": {}, "e2e": {}}
    log_dir = RESULTS_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with RedisServer() as broker_server, RedisServer() as state_server:
        os.environ["BENCH_BROKER_URL"] = broker_server.url
        os.environ["BENCH_STATE_URL"] = f"{state_server.url}?client_name=mageflow-client"
        worker_env = {**os.environ, "BENCH_STATE_URL": f"{state_server.url}?client_name=mageflow-worker"}
        worker_env["PYTHONPATH"] = os.pathsep.join([str(REPO), worker_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        from bench import app as bench_app

        probes = [RedisProbe("broker", broker_server.url), RedisProbe("state", state_server.url)]
        results["meta"]["speed"] = speed.measure(probes[0].client)
        if "scaling" not in skip:
            print("scaling: scripts driven directly, bulk creation", file=sys.stderr, flush=True)
            results.update(run_scaling(size, probes[1], probes[0]))
        if "reaper" not in skip:
            print(f"reaper: {size.reaper_open} idle open + {size.reaper_finished} finished", file=sys.stderr)
            suite.clean(probes[0].client, probes[1].client)
            results["reaper"] = scale.run_reaper_idle(
                bench_app.app, probes[1], size.reaper_open, size.reaper_finished, size.reaper_reps
            )
            suite.clean(probes[0].client, probes[1].client)
        if "stream" not in skip:
            print(f"stream: {size.stream_n} members in batches of {size.stream_batch}", file=sys.stderr)
            results["stream"] = scale.run_stream(size.stream_n, size.stream_batch, broker_server.url, state_server.url)
            suite.clean(probes[0].client, probes[1].client)
        for pool in pools:
            print(f"pool {pool}: {size.reps} interleaved reps", file=sys.stderr, flush=True)
            with Worker(pool, args.concurrency, worker_env, log_dir).start(bench_app.app) as worker:
                results["pools"][pool] = run_pool(pool, worker, size, probes, state_server.url)
                if pool == "prefork" and "e2e" not in skip:
                    results["e2e"] = run_e2e(size, worker, probes)
        if "flow" not in skip:
            print(f"flow: pool fairness and rates on {FLOW_POOL} -c{FLOW_CONCURRENCY}", file=sys.stderr, flush=True)
            with Worker(FLOW_POOL, FLOW_CONCURRENCY, worker_env, log_dir).start(bench_app.app) as worker:
                results["flow"] = run_flow(size, worker, probes, state_server.url)
    results["meta"]["duration_s"] = time.time() - started
    results["meta"]["loadavg_end"] = os.getloadavg()
    results.setdefault("scaling", {"by_n": {}, "ratio": {}})
    results.setdefault("bulk", {})
    results["targets"] = [t.check(results) for t in targets(pools)]
    text = table(results)
    results["table"] = text
    out = args.out or RESULTS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    print(text)
    print(f"\nwritten to {out}")
    return results


if __name__ == "__main__":
    main()

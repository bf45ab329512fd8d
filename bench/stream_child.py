"""The child process of :func:`bench.scale.run_stream`: stream members into one swarm, report its own memory.

``python -m bench.stream_child --n N --batch B`` (with ``BENCH_BROKER_URL`` and ``BENCH_STATE_URL`` set)
starts an open swarm with no members and ``max_concurrency=1``, then adds ``N`` no-op members from a
generator with ``Swarm.add_tasks`` in batches of ``B``. The members are registered, not queued, so
nothing reaches the broker. Prints one JSON line: the swarm id, this process's RSS before adding and
its peak (``ru_maxrss``), the wall time, and the ``add`` script's microseconds per member over the first
and the last tenth of the batches (read from ``INFO commandstats`` between two batches).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .meter import RedisProbe

_KIB_PER_MIB = 1024


def rss_mib() -> float:
    """This process's resident set size now (``VmRSS``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / _KIB_PER_MIB
    return float("nan")


def peak_rss_mib() -> float:
    """This process's peak resident set size (``ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / _KIB_PER_MIB


def members(n: int, batch: int, probe: RedisProbe, marks: list[int]) -> Iterator[Any]:
    """``noop.s(i)`` for ``i < n``; before each batch's first member (the previous batch is added by then)
    the scripts' microseconds so far are noted in ``marks``."""
    from bench import app as b

    for i in range(n):
        if i % batch == 0:
            commands = probe.commands()
            marks.append(commands.get("evalsha.usec", 0) + commands.get("eval.usec", 0))
        yield b.noop.s(i)


def per_member_us(marks: list[int], n: int, batch: int, first: bool) -> float:
    """Script microseconds per member over the first (or last) tenth of the batches."""
    steps = [(b - a, min(batch, n - j * batch)) for j, (a, b) in enumerate(zip(marks, marks[1:], strict=False))]
    k = max(1, len(steps) // 10)
    part = steps[:k] if first else steps[-k:]
    return sum(us for us, _ in part) / sum(size for _, size in part) if part else float("nan")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.stream_child", description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    from bench import app as b
    from mageflow_celery import SwarmConfig, swarm
    from mageflow_celery.engine.runtime import runtime_for

    store = runtime_for(b.app).store
    probe = RedisProbe("state", os.environ[b.STATE_ENV])
    s = swarm(config=SwarmConfig(max_concurrency=1), task_name="stream", app=b.app)
    swarm_id = s.apply_async().id
    rss_start, peak_start = rss_mib(), peak_rss_mib()
    marks: list[int] = []
    t1 = time.perf_counter()
    added = s.add_tasks(members(args.n, args.batch, probe, marks), batch_size=args.batch)
    t2 = time.perf_counter()
    commands = probe.commands()
    marks.append(commands.get("evalsha.usec", 0) + commands.get("eval.usec", 0))
    assert len(added) == args.n, f"{len(added)} of {args.n} members added"
    out = {
        "swarm_id": swarm_id,
        "prefix": store.prefix,
        "n": args.n,
        "batch": args.batch,
        "rss_start_mib": rss_start,
        "rss_peak_before_add_mib": peak_start,
        "rss_peak_mib": peak_rss_mib(),
        "rss_end_mib": rss_mib(),
        "add_wall_s": t2 - t1,
        "child_wall_s": time.perf_counter() - t0,
        "add_script_us_first": per_member_us(marks, args.n, args.batch, first=True),
        "add_script_us_last": per_member_us(marks, args.n, args.batch, first=False),
    }
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()

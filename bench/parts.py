"""What each call a swarm member adds costs on this machine, one call at a time: ``python -m bench.parts``.

Runs the worker's part for one member in a loop, in this process, against two throwaway Redis servers
(broker and state), and prints the client CPU and wall time of each call, then the state Redis's own
time per script call (``INFO commandstats``). No worker runs: these are the parts of the per-member cost
that :mod:`bench.run` measures as a whole. As in a worker, publishing does not subscribe to results.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Callable

import redis
from celery._state import _set_task_join_will_block

from mageflow_celery.testing import RedisServer


def _timed(label: str, n: int, call: Callable[[int], object]) -> None:
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        call(i)
    cpu_us = (time.process_time() - cpu) / n * 1e6
    wall_us = (time.perf_counter() - wall) / n * 1e6
    print(f"  {label:44} {cpu_us:7.1f} us CPU {wall_us:7.1f} us wall", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="calls of each kind (default 3000)")
    n = parser.parse_args().n
    with RedisServer() as broker, RedisServer() as state:
        os.environ["BENCH_BROKER_URL"], os.environ["BENCH_STATE_URL"] = broker.url, state.url
        from bench.app import app, noop
        from mageflow_celery import SwarmConfig, swarm
        from mageflow_celery.engine.dispatch import publish_members
        from mageflow_celery.engine.runtime import runtime_for
        from mageflow_celery.keys import FINAL_STEP

        _set_task_join_will_block(True)  # as in a worker: no result subscription per publish
        rt = runtime_for(app)
        store = rt.store
        open_all = SwarmConfig(max_concurrency=n + 1)
        sid = swarm(tasks=[noop.s()] * (n + 1), config=open_all, is_swarm_closed=True, app=app).apply_async().id
        one = swarm(tasks=[noop.s()] * 2, config=SwarmConfig(max_concurrency=1), is_swarm_closed=True, app=app)
        one_id = one.apply_async().id
        store.receive(one_id, 0, FINAL_STEP, "bench")
        admits_one = store.report(one_id, [(0, "s", b"null")], want_ctx=True)
        raw = redis.Redis.from_url(broker.url)
        state_client = redis.Redis.from_url(state.url)
        print(f"Per call, {n} calls each (client side):")
        state_client.config_resetstat()
        _timed("receive (the start gate)", n, lambda i: store.receive(sid, i, FINAL_STEP, uuid.uuid4().hex))
        _timed("report (one outcome)", n, lambda i: store.report(sid, [(i, "s", b"null")], want_ctx=False))
        stats = state_client.info("commandstats")
        _timed("publish_members (one member, pool's producer)", n, lambda i: publish_members(rt, one_id, admits_one))
        with app.producer_or_acquire() as producer:
            _timed(
                "publish_members (one member, held producer)",
                n,
                lambda i: publish_members(rt, one_id, admits_one, producer),
            )
            _timed("noop.apply_async(producer=...) (plain Celery)", n, lambda i: noop.apply_async(producer=producer))
        _timed("LPUSH of a 600-byte message (redis-py)", n, lambda i: raw.lpush("bench:x", b"x" * 600))
        evalsha = stats["cmdstat_evalsha"]
        inner = sum(v["usec"] for k, v in stats.items() if k not in ("cmdstat_evalsha", "cmdstat_config|resetstat"))
        print("On the state Redis, per script call:")
        per_call = inner / evalsha["calls"]
        print(f"  EVALSHA {evalsha['usec_per_call']:.1f} us, of which commands inside {per_call:.1f} us")


if __name__ == "__main__":
    main()

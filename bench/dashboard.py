"""Time the dashboard's pages on a big state: ``python -m bench.dashboard [--swarms 2000] [--members 100000]``.

Starts a throwaway ``redis-server``, fills it with ``--swarms`` swarms (a quarter cancelled, a quarter
paused, the rest running, 3 members each, nothing consuming them) and one swarm of ``--members``
members, then renders each page ``--reps`` times server side (Starlette's test client: routing, the
Redis reads, the template) and through a real uvicorn (``httpx``, loopback), and prints the median and
the 95th percentile of each. Nothing here is asserted: see docs/operations.md for the last numbers.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable

import httpx2 as httpx
from celery import Celery
from starlette.testclient import TestClient

from mageflow_celery import SwarmConfig, install, swarm
from mageflow_celery.dashboard import create_app
from mageflow_celery.ops.dashboard.serve import server
from mageflow_celery.testing import RedisServer, find_free_port, wait_for


def fill(app: Celery, n: int) -> list[str]:
    """``n`` swarms of 3 members that no worker consumes: every 4th cancelled, every 4th paused."""
    ids = []
    for i in range(n):
        tasks = [app.signature("bench.nowhere", args=(i, j)).set(queue="nowhere") for j in range(3)]
        res = swarm(
            tasks=tasks, task_name=f"batch-{i:05d}", config=SwarmConfig(max_concurrency=2), app=app
        ).apply_async()
        if i % 4 == 1:
            res.cancel()
        elif i % 4 == 2:
            res.pause()
        ids.append(res.id)
    return ids


def big(app: Celery, n: int) -> str:
    tasks = [app.signature("bench.nowhere", args=(j,)).set(queue="nowhere") for j in range(n)]
    s = swarm(tasks=tasks, task_name="big", config=SwarmConfig(max_concurrency=20), is_swarm_closed=True, app=app)
    return s.apply_async().id


def timed(call: Callable[[], object], reps: int) -> tuple[float, float]:
    call()  # warm up (templates compiled, scripts loaded)
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.splitlines()[0])
    p.add_argument("--swarms", type=int, default=2000)
    p.add_argument("--members", type=int, default=100_000)
    p.add_argument("--reps", type=int, default=20)
    args = p.parse_args(argv)
    with RedisServer() as redis_server:
        app = Celery("bench-dashboard", broker=redis_server.url, backend=redis_server.url, set_as_current=False)
        app.conf.broker_connection_retry_on_startup = True
        install(app, redis_url=redis_server.url)
        t0 = time.perf_counter()
        fill(app, args.swarms)
        t1 = time.perf_counter()
        big_id = big(app, args.members)
        t2 = time.perf_counter()
        app.control.purge()
        print(f"filled {args.swarms} swarms in {t1 - t0:.1f}s, a {args.members}-member swarm in {t2 - t1:.1f}s")
        paths = [
            "/",
            f"/?offset={args.swarms // 2}",
            f"/?offset={args.swarms - 50}",
            "/?state=paused",
            "/?state=cancelled&offset=200",
            f"/?q=batch-{args.swarms - 7:05d}",
            "/?q=no-such-name",
            f"/swarms/{big_id}",
            f"/swarms/{big_id}?offset={args.members // 2}",
            f"/swarms/{big_id}?state=queued&offset={args.members - 100}",
            f"/swarms/{big_id}?state=dispatched",
            "/metrics",
        ]
        port = find_free_port()
        srv = server(app, port=port, token="t", log_level="warning")
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        wait_for(lambda: srv.started, timeout_s=20)
        print(f"{'page':<58} {'server side ms (median / p95)':>30} {'over HTTP ms (median / p95)':>30}")
        with (
            TestClient(create_app(app, token="t")) as local,
            httpx.Client(base_url=f"http://127.0.0.1:{port}") as remote,
        ):
            for path in paths:
                assert local.get(path).status_code == 200, path
                inner = timed(lambda path=path: local.get(path), args.reps)
                outer = timed(lambda path=path: remote.get(path), args.reps)
                print(f"{path[:58]:<58} {inner[0]:>14.1f} / {inner[1]:<13.1f} {outer[0]:>14.1f} / {outer[1]:<13.1f}")
        srv.should_exit = True
        thread.join(timeout=20)
        app.close()


if __name__ == "__main__":
    main()

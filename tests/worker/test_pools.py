"""F1, F2, F4: shared concurrency pools across swarms, weighted round-robin fairness, limits that change, on
a real Redis and real workers. Members record ``(label, start, end)``; a member waits (with a deadline)
until as many members of its pool run as the pool allows, so a limit never reached shows up as a failure."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
from celery import Celery
from celery.bin.base import CLIContext
from click.testing import CliRunner

from mageflow_celery import SwarmConfig, set_pool_limit, swarm
from mageflow_celery.client.pools import get_pool
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.ops.cli import swarm as swarm_cli
from mageflow_celery.testing import max_overlap, process_client, wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]

RECORDS = "test:pooled"


def _tasks(app: Celery) -> Any:
    url = app.conf.broker_url

    @app.task(name="p.call", shared=False)
    def call(label: str, want: int = 1, gate: str = "") -> str:
        """A call to the shared API: waits until ``want`` calls run at once (or a deadline), records itself."""
        r = process_client(url)
        r.incr("test:active")
        start = time.time()
        r.rpush("test:started", label)
        deadline = time.monotonic() + 3.0
        while (int(r.get("test:active") or 0) < want or (gate and not r.exists(gate))) and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.01)
        r.decr("test:active")
        r.rpush(RECORDS, json.dumps([label, start, time.time()]))
        return label

    @app.task(name="p.retry_once", bind=True, shared=False, max_retries=2, default_retry_delay=0)
    def retry_once(self: Any, label: str, want: int = 1) -> str:
        if self.request.retries == 0:
            raise self.retry()
        return call(label, want)

    return call, retry_once


def intervals(r: redis.Redis) -> list[tuple[str, float, float]]:
    return [tuple(json.loads(x)) for x in r.lrange(RECORDS, 0, -1)]  # type: ignore[misc]


@pytest.mark.parametrize("pool_kind", ["threads", "prefork"])
def test_members_of_three_swarms_never_hold_more_of_a_pools_tokens_than_its_limit(
    pool_kind: str, mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given a pool "api" limited to 3, and three swarms of 5 calls each (own limits 2) sharing it
    call, _ = _tasks(mageflow_app)
    set_pool_limit(mageflow_app, "api", 3)
    mageflow_worker(pool=pool_kind, concurrency=8)
    results = [
        swarm(
            tasks=[call.s(f"{k}{i}", want=3) for i in range(5)],
            config=SwarmConfig(pool="api", max_concurrency=2),
            is_swarm_closed=True,
            app=mageflow_app,
        ).apply_async()
        for k in "abc"
    ]

    # When they run to their end
    assert [r.get(timeout=60) for r in results] == [[f"{k}{i}" for i in range(5)] for k in "abc"]

    # Then at every instant at most 3 calls ran across the swarms, and 3 did; each swarm kept its own limit
    rows = intervals(mageflow_redis)
    assert len(rows) == 15
    assert max_overlap(rows) == 3, rows
    for k in "abc":
        assert max_overlap([row for row in rows if row[0].startswith(k)]) <= 2
    # And every token came back (the last one after the results: the pool is told after the swarm)
    wait_for(lambda: get_pool(mageflow_app, "api").in_use == 0, message="every token back")
    info = get_pool(mageflow_app, "api")
    assert (info.limit, info.in_use, info.waiting) == (3, 0, [])


def test_a_swarm_alone_on_its_pool_passes_its_tokens_on_and_keeps_the_limit(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given a pool of 2 and the only swarm on it: 10 calls, its own limit 4, on a worker with 6 slots
    call, _ = _tasks(mageflow_app)
    set_pool_limit(mageflow_app, "alone", 2)
    mageflow_worker(pool="threads", concurrency=6)
    cfg = SwarmConfig(pool="alone", max_concurrency=4)
    res = swarm(tasks=[call.s(f"s{i}", want=2) for i in range(10)], config=cfg, is_swarm_closed=True, app=mageflow_app)

    # When it runs to its end
    assert res.apply_async().get(timeout=60) == [f"s{i}" for i in range(10)]

    # Then 2 calls ran at once, never more, and the pool made only the 2 first grants: each ended member
    # passed its token on to the next one (docs/pools.md)
    rows = intervals(mageflow_redis)
    assert len(rows) == 10 and max_overlap(rows) == 2
    assert runtime_for(mageflow_app).store.pool_view("alone").grants_made == 2
    wait_for(lambda: get_pool(mageflow_app, "alone").in_use == 0, message="every token back")


def test_a_freed_token_goes_to_the_waiting_swarms_in_weighted_round_robin(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given a pool of 1 token, swarm A (weight 2) holding it at a gate, then B and C (weight 1) waiting
    call, _ = _tasks(mageflow_app)
    set_pool_limit(mageflow_app, "one", 1)
    mageflow_worker(concurrency=4)

    def start(key: str, weight: int, n: int, gate: str = "") -> Any:
        members = [call.s(f"{key}{i}", gate=gate if i == 0 else "") for i in range(n)]
        cfg = SwarmConfig(pool="one", weight=weight, max_concurrency=3)
        return swarm(tasks=members, config=cfg, is_swarm_closed=True, app=mageflow_app).apply_async()

    a = start("A", 2, 6, gate="test:gate:A")
    wait_for(lambda: mageflow_redis.lrange("test:started", 0, -1) == [b"A0"], message="A0 to hold the token")
    b, c = start("B", 1, 3), start("C", 1, 3)
    wait_for(lambda: [s for s, _ in get_pool(mageflow_app, "one").waiting] == [a.id, b.id, c.id])

    # When A's first call ends (and each call after it)
    mageflow_redis.set("test:gate:A", 1)
    for res in (a, b, c):
        res.get(timeout=60)

    # Then tokens went round: A twice (its weight), then B, then C, again and again
    order = [x.decode()[0] for x in mageflow_redis.lrange("test:started", 0, -1)]
    assert "".join(order) == "AABCAABCAABC"


def test_raising_a_pools_limit_admits_at_once_and_lowering_it_revokes_nothing(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given a pool of 1 and a swarm of 4 gated calls on it
    call, _ = _tasks(mageflow_app)
    set_pool_limit(mageflow_app, "grow", 1)
    mageflow_worker(concurrency=6)
    gate = "test:gate:grow"
    members = [call.s(f"g{i}", gate=gate) for i in range(4)]
    res = swarm(tasks=members, config=SwarmConfig(pool="grow"), is_swarm_closed=True, app=mageflow_app).apply_async()
    wait_for(lambda: mageflow_redis.llen("test:started") == 1)

    # When the limit is raised to 3 (the CLI's pool set), then two more start at once
    obj = CLIContext(app=mageflow_app, no_color=True, workdir=None, quiet=False)
    out = CliRunner().invoke(swarm_cli, ["pool", "set", "grow", "3"], obj=obj)
    assert out.exit_code == 0 and out.stdout.startswith("Pool grow: limit 3"), out.output
    wait_for(lambda: mageflow_redis.llen("test:started") == 3, message="two more to start")
    # When it is lowered to 1 while 3 run, then none is revoked and the pool shows 3 in use
    set_pool_limit(mageflow_app, "grow", 1)
    info = get_pool(mageflow_app, "grow")
    assert (info.limit, info.in_use) == (1, 3)
    ls = CliRunner().invoke(swarm_cli, ["pool", "ls", "--json"], obj=obj)
    assert json.loads(ls.stdout)[0]["in_use"] == 3
    # And once they end, the last one runs alone
    mageflow_redis.set(gate, 1)
    assert res.get(timeout=30) == ["g0", "g1", "g2", "g3"]
    assert max_overlap(intervals(mageflow_redis)[3:]) == 1


def test_pooled_nested_swarms_and_retrying_members_hold_exactly_one_pool_token_each(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given a pool of 2, an outer swarm of two nested pooled swarms whose members retry once, and a
    # pooled member of the outer swarm that retries
    call, retry_once = _tasks(mageflow_app)
    set_pool_limit(mageflow_app, "nest", 2)
    mageflow_worker(concurrency=8)
    cfg = SwarmConfig(pool="nest", max_concurrency=3)
    inner = [
        swarm(tasks=[retry_once.s(f"{k}{i}", want=2) for i in range(3)], config=cfg, is_swarm_closed=True) for k in "xy"
    ]
    outer = swarm(tasks=inner, is_swarm_closed=True, app=mageflow_app)

    # When it runs
    assert outer.apply_async().get(timeout=60) == [[f"{k}{i}" for i in range(3)] for k in "xy"]

    # Then at most 2 members held the pool's tokens at once (2 did), retries included; all came back
    rows = intervals(mageflow_redis)
    assert len(rows) == 6 and max_overlap(rows) == 2
    wait_for(lambda: get_pool(mageflow_app, "nest").in_use == 0, message="every token back")


def test_a_pools_limit_from_app_conf_is_written_by_a_starting_worker(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given app.conf.mageflow_pools, when a worker starts, then the pools have those limits and rates
    mageflow_app.conf.mageflow_pools = {"conf_a": 5, "conf_b": {"limit": 2, "rate_limit": "30/m"}}
    mageflow_worker(concurrency=1)
    a, b = get_pool(mageflow_app, "conf_a"), get_pool(mageflow_app, "conf_b")
    assert (a.limit, a.rate_limit, b.limit, b.rate_limit) == (5, None, 2, "30/m")
    assert runtime_for(mageflow_app).store.pool_names() == ["conf_a", "conf_b"]

"""§1 member options: a member's countdown counts from its admission (it holds its token while it waits), and
swarm-level options are defaults for every member next to the app's task_routes."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from celery import Celery, Task

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def test_a_members_countdown_counts_from_its_admission_not_from_the_swarms_start(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis, mageflow_redis_url: str
) -> None:
    # Given a swarm of limit 1: a gated member, then a member with a 1 s countdown
    gate_client = redis.Redis.from_url(mageflow_redis_url, socket_timeout=30)

    @mageflow_app.task(name="o.stamp", shared=False)
    def stamp(label: str, gated: bool = False) -> float:
        if gated:
            gate_client.blpop(["test:gate"], timeout=20)
        mageflow_redis.hset("test:stamps", label, repr(time.time()))
        return time.time()

    mageflow_worker(concurrency=2)
    started = time.time()
    s = swarm(
        tasks=[stamp.s("first", gated=True), stamp.s("second").set(countdown=1)],
        config=SwarmConfig(max_concurrency=1),
        is_swarm_closed=True,
        app=mageflow_app,
    )
    result = s.apply_async()

    # When the first member runs for longer than the second's countdown, then ends
    wait_for(lambda: time.time() > started + 1.5, message="1.5 s to pass")
    assert result.progress().queued == 1  # the second one waits for the token, not for its countdown
    mageflow_redis.rpush("test:gate", "ok")
    assert len(result.get(timeout=20)) == 2
    gate_client.close()

    # Then the second one started a full countdown after the first one ended (its admission)
    stamps = {k.decode(): float(v) for k, v in mageflow_redis.hgetall("test:stamps").items()}
    assert stamps["second"] - stamps["first"] >= 0.95, stamps


def test_swarm_options_are_defaults_for_members_and_task_routes_still_route_them(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given a task routed by the app's task_routes, and a worker consuming every queue involved
    mageflow_app.conf.task_routes = {"o.routed": {"queue": "special"}}

    @mageflow_app.task(name="o.routed", shared=False, bind=True)
    def routed(self: Task) -> list[Any]:
        return [self.request.delivery_info["routing_key"], list(self.request.timelimit or [])]

    mageflow_worker(concurrency=2, queues=["celery", "special", "swarmq"])

    def run(*members: Any, **options: Any) -> Any:
        s = swarm(tasks=list(members), is_swarm_closed=True, options=options, app=mageflow_app)
        return s.apply_async().get(timeout=20)

    # When the swarm sets a time limit only, then the route still picks the queue, the limit applies
    assert run(routed.s(), time_limit=30) == [["special", [30, None]]]
    # When the swarm sets a queue, then it wins over the route, as apply_async(queue=...) does in Celery;
    # and a member's own queue wins over the swarm's
    got = run(routed.s(), routed.s().set(queue="celery"), queue="swarmq")
    assert got == [["swarmq", [None, None]], ["celery", [None, None]]]

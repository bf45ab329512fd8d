"""N2: a member's own ``link`` / ``link_error`` (and a chain member's) run as plain Celery runs them, after
that member's own outcome, in addition to the swarm's accounting and callbacks."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from celery import Celery

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.keys import member_task_id
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]


class Tasks:
    def __init__(self, app: Celery, r: redis.Redis) -> None:
        @app.task(name="cb.value", shared=False)
        def value(x: Any) -> Any:
            return x

        @app.task(name="cb.fail", shared=False)
        def fail(x: Any) -> None:
            raise ValueError(f"{x} failed")

        @app.task(name="cb.retry_once", bind=True, shared=False, max_retries=2, default_retry_delay=0)
        def retry_once(self: Any, x: Any) -> Any:
            if self.request.retries == 0:
                raise self.retry()
            return x

        @app.task(name="cb.linked", shared=False)
        def linked(result: Any, tag: str) -> None:
            r.rpush("test:linked", json.dumps([tag, result]))

        @app.task(name="cb.errback", shared=False)
        def errback(request: Any, exc: BaseException, traceback: Any, tag: str = "") -> None:
            r.rpush("test:errback", json.dumps([tag, request.id, type(exc).__name__]))

        @app.task(name="cb.swarm_done", shared=False)
        def swarm_done(results: list[Any]) -> None:
            r.rpush("test:swarm_done", json.dumps(results))

        self.value, self.fail, self.retry_once = value, fail, retry_once
        self.linked, self.errback, self.swarm_done = linked, errback, swarm_done


def test_member_links_and_errbacks_run_as_in_celery_beside_the_swarm_accounting(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given members with their own link / link_error: a plain member, a failing one, a retried one, and a
    # chain member with a link on the chain and a link_error on it
    t = Tasks(mageflow_app, mageflow_redis)
    mageflow_worker(concurrency=4)
    plain = t.value.s(1)
    plain.link(t.linked.s(tag="plain"))
    failing = t.fail.s(2)
    failing.link_error(t.errback.s(tag="failing"))
    failing.link(t.linked.s(tag="never"))
    retried = t.retry_once.s(3)
    retried.link(t.linked.s(tag="retried"))
    chained = t.value.s(4) | t.value.s()
    chained.link(t.linked.s(tag="chain"))
    chained_fail = t.value.s(5) | t.fail.s()
    chained_fail.link_error(t.errback.s(tag="chain"))
    s = swarm(
        tasks=[plain, failing, retried, chained, chained_fail],
        success_callbacks=[t.swarm_done.s()],
        config=SwarmConfig(max_concurrency=5),
        is_swarm_closed=True,
        app=mageflow_app,
    )

    # When it runs to its end
    result = s.apply_async()
    assert result.get(timeout=30) == [1, 3, 4]
    wait_for(lambda: mageflow_redis.llen("test:swarm_done") == 1 and mageflow_redis.llen("test:errback") == 2)
    assert t.value.delay("settle").get(timeout=10) == "settle"  # a round trip: whatever was sent has run

    # Then each link ran once with its member's result, each errback once with Celery's errback arguments,
    # the swarm's own callback once, and nothing for the failing member's link
    linked = sorted(tuple(json.loads(x)) for x in mageflow_redis.lrange("test:linked", 0, -1))
    assert linked == [("chain", 4), ("plain", 1), ("retried", 3)]
    errbacks = sorted(tuple(json.loads(x)) for x in mageflow_redis.lrange("test:errback", 0, -1))
    assert errbacks == [
        ("chain", member_task_id(result.id, 4), "ValueError"),
        ("failing", member_task_id(result.id, 1), "ValueError"),
    ]
    assert [json.loads(x) for x in mageflow_redis.lrange("test:swarm_done", 0, -1)] == [[1, 3, 4]]
    p = result.progress()
    assert (p.succeeded, p.failed) == (3, 2)

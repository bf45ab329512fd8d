"""S11: a swarm is a Celery canvas citizen (chain, group, chord, link/link_error)."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery, chain, chord, group
from celery.result import AsyncResult

from mageflow_celery import SwarmConfig, SwarmFailedError, swarm
from mageflow_celery.testing import settle_swarm, wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def _tasks(app: Celery) -> dict[str, Any]:
    @app.task(name="t.ten", shared=False)
    def ten() -> int:
        return 10

    @app.task(name="t.mul", shared=False)
    def mul(x: int, y: int) -> int:
        return x * y

    @app.task(name="t.ident", shared=False)
    def ident(x: Any = None) -> Any:
        return x

    @app.task(name="t.total", shared=False)
    def total(values: list[int]) -> int:
        return sum(values)

    @app.task(name="t.boom", shared=False)
    def boom(*args: Any) -> None:
        raise ValueError("boom")

    @app.task(name="t.record", shared=False, bind=True)
    def record(self: Any, *args: Any, **kwargs: Any) -> str:
        import redis

        redis.Redis.from_url(app.conf.broker_url).rpush("test:recorded", repr(args))
        return "recorded"

    @app.task(name="t.errback", shared=False)
    def errback(request: Any, exc: BaseException, traceback: Any) -> None:
        import redis

        redis.Redis.from_url(app.conf.broker_url).rpush("test:errback", f"{type(exc).__name__}:{request.id}")

    return {"ten": ten, "mul": mul, "ident": ident, "total": total, "boom": boom, "record": record, "errback": errback}


def test_a_swarm_in_a_chain_gets_the_parent_result_and_passes_its_result_list_on(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given chain(ten, swarm of mul(parent, i), total) and a worker
    t = _tasks(mageflow_app)
    mageflow_worker(concurrency=4)
    s = swarm(tasks=[t["mul"].s(i) for i in range(1, 5)], config=SwarmConfig(max_concurrency=2), is_swarm_closed=True)

    # When the chain runs
    result = chain(t["ten"].s(), s, t["total"].s()).apply_async()

    # Then members got 10 prepended, and the last step received the list in member order
    assert result.get(timeout=30) == 10 + 20 + 30 + 40
    assert result.parent.get(timeout=5) == [10, 20, 30, 40]


def test_immutable_members_and_immutable_swarms_do_not_receive_the_parent_result(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given a swarm with an immutable member, and an immutable swarm, both after a step returning 10
    t = _tasks(mageflow_app)
    mageflow_worker(concurrency=4)
    mixed = swarm(tasks=[t["ident"].s(), t["ident"].si(7)], is_swarm_closed=True)
    frozen = swarm(tasks=[t["ident"].s(3)], is_swarm_closed=True, immutable=True)

    # When each runs in a chain
    r1 = chain(t["ten"].s(), mixed).apply_async()
    r2 = chain(t["ten"].s(), frozen).apply_async()

    # Then only the mutable member saw the parent result
    assert r1.get(timeout=30) == [10, 7]
    assert r2.get(timeout=30) == [3]


def test_swarms_in_a_group_and_in_a_chord_header_count_as_one_part_each(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given two swarms and a plain task
    t = _tasks(mageflow_app)
    mageflow_worker(concurrency=4)

    def make(n: int) -> Any:
        return swarm(tasks=[t["mul"].s(i, n) for i in range(3)], is_swarm_closed=True)

    # When they run in a group, and as a chord header
    g = group(make(1), make(10), t["ten"].s()).apply_async()
    c = chord([make(2), t["ten"].s()], t["ident"].s()).apply_async()

    # Then each swarm contributes its result list as one part
    assert g.get(timeout=30) == [[0, 1, 2], [0, 10, 20], 10]
    assert c.get(timeout=30) == [[0, 2, 4], 10]


def test_link_fires_on_success_and_link_error_on_failure(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: Any
) -> None:
    # Given a succeeding swarm with a link, and a failing one with a link_error
    t = _tasks(mageflow_app)
    mageflow_worker(concurrency=4)
    ok = swarm(tasks=[t["mul"].s(2, 3)], is_swarm_closed=True)
    ok.link(t["record"].s())
    bad = swarm(tasks=[t["boom"].s(), t["ident"].s(1)], config=SwarmConfig(stop_after_n_failures=1))
    bad.link_error(t["errback"].s())

    # When both run
    ok_result = ok.apply_async()
    bad_result = bad.apply_async()

    # Then the link got the result list, and the errback got a SwarmFailedError for the swarm id
    assert ok_result.get(timeout=30) == [6]
    with pytest.raises(SwarmFailedError):
        bad_result.get(timeout=30)
    # (each ran once: after the first call, a barrier starts after any copy published with it)
    wait_for(lambda: mageflow_redis.llen("test:recorded") >= 1 and mageflow_redis.llen("test:errback") >= 1)
    settle_swarm(ok_result.id, mageflow_app)
    settle_swarm(bad_result.id, mageflow_app)
    assert mageflow_redis.lrange("test:recorded", 0, -1) == [b"([6],)"]
    assert mageflow_redis.lrange("test:errback", 0, -1) == [f"SwarmFailedError:{bad_result.id}".encode()]


def test_a_failed_swarm_fails_the_rest_of_its_chain_like_a_failed_chord(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: Any
) -> None:
    # Given chain(swarm that fails, record) with an errback on the chain (Celery puts it on every step)
    t = _tasks(mageflow_app)
    mageflow_worker(concurrency=4)
    bad = swarm(tasks=[t["boom"].s()], config=SwarmConfig(stop_after_n_failures=1), is_swarm_closed=True)
    c = chain(bad, t["record"].s())
    c.link_error(t["errback"].s())

    # When the chain runs
    result = c.apply_async()

    # Then the later step never runs and is marked failed, and the errback gets the SwarmFailedError
    with pytest.raises(SwarmFailedError):
        result.get(timeout=30)
    wait_for(lambda: mageflow_redis.llen("test:errback") >= 1, timeout_s=20)
    settle_swarm(result.parent.id, mageflow_app)  # a second errback call would have run by now
    assert mageflow_redis.lrange("test:errback", 0, -1) == [f"SwarmFailedError:{result.parent.id}".encode()]
    assert mageflow_redis.llen("test:recorded") == 0
    assert AsyncResult(result.id, app=mageflow_app).state == "FAILURE"

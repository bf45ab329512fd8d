"""S3 concurrency limit and S8 retries: at most ``max_concurrency`` members hold a token at any moment.

Each member records its own ``(start, end)`` wall-clock stamps in a Redis list (works across prefork
children); the test sweeps the intervals and checks the maximal overlap.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
from celery import Celery, Task

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.testing import max_overlap, process_client
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]

INTERVALS = "test:intervals"


def _record(app: Celery, label: Any, start: float) -> None:
    process_client(app.conf.broker_url).rpush(INTERVALS, json.dumps([label, start, time.time()]))


def _intervals(client: redis.Redis) -> list[tuple[Any, float, float]]:
    return [tuple(json.loads(raw)) for raw in client.lrange(INTERVALS, 0, -1)]  # type: ignore[misc]


def _define_work(app: Celery) -> Task:
    @app.task(name="t.work", shared=False)
    def work(i: int) -> int:
        start = time.time()
        time.sleep(0.05)  # the member's own work, not synchronization
        _record(app, i, start)
        return i

    return work


def test_max_overlap_sweeps_intervals_correctly() -> None:
    # Given intervals overlapping two at a time (one starting exactly when another ends), then three
    intervals = [("a", 0.0, 1.0), ("b", 0.5, 2.0), ("c", 1.0, 3.0)]

    # Then the sweep counts the intervals really open together
    assert max_overlap(intervals) == 2
    assert max_overlap([*intervals, ("d", 2.5, 2.6), ("e", 2.55, 2.7)]) == 3
    assert max_overlap([("a", 0.0, 1.0), ("b", 1.0, 2.0)]) == 1


@pytest.mark.parametrize(
    ("pool", "limit"),
    [("threads", 2), ("threads", 3), ("prefork", 2), ("prefork", 3)],
)
def test_a_swarm_never_runs_more_members_at_once_than_its_limit_and_uses_the_limit(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis, pool: str, limit: int
) -> None:
    # Given a worker with 4 slots and a closed swarm of 20 members of ~50 ms limited to `limit`
    work = _define_work(mageflow_app)
    mageflow_worker(pool=pool, concurrency=4)
    s = swarm(
        tasks=[work.s(i) for i in range(20)],
        config=SwarmConfig(max_concurrency=limit),
        is_swarm_closed=True,
        app=mageflow_app,
    )

    # When it runs to the end
    results = s.apply_async().get(timeout=60)

    # Then every member ran once, never more than `limit` at a time, and more than one at some point
    intervals = _intervals(mageflow_redis)
    assert results == list(range(20))
    assert sorted(label for label, _, _ in intervals) == list(range(20))
    peak = max_overlap(intervals)
    assert 1 < peak <= limit, f"peak concurrency {peak} with limit {limit}"


def test_two_swarms_on_one_worker_each_keep_their_own_limit(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given two closed swarms limited to 1 and 2, on one worker with 4 slots
    @mageflow_app.task(name="t.tagged", shared=False)
    def tagged(tag: str, i: int) -> int:
        start = time.time()
        time.sleep(0.03)
        _record(mageflow_app, tag, start)
        return i

    mageflow_worker(concurrency=4)
    one = swarm(tasks=[tagged.s("one", i) for i in range(8)], config=SwarmConfig(max_concurrency=1), app=mageflow_app)
    two = swarm(tasks=[tagged.s("two", i) for i in range(8)], config=SwarmConfig(max_concurrency=2), app=mageflow_app)
    one.close_swarm()
    two.close_swarm()

    # When both run at the same time
    r1, r2 = one.apply_async(), two.apply_async()
    assert r1.get(timeout=30) == list(range(8))
    assert r2.get(timeout=30) == list(range(8))

    # Then each swarm's own members never exceed its own limit
    intervals = _intervals(mageflow_redis)
    assert max_overlap([iv for iv in intervals if iv[0] == "one"]) == 1
    assert max_overlap([iv for iv in intervals if iv[0] == "two"]) <= 2


def test_a_retrying_member_keeps_its_token_and_only_its_final_outcome_counts(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given, at max_concurrency=1, a member retrying twice with self.retry, one retried by autoretry_for
    # until it succeeds, one whose retries run out, then plain members
    @mageflow_app.task(name="t.retry_then_ok", shared=False, bind=True, max_retries=5)
    def retry_then_ok(self: Task, label: str) -> str:
        start = time.time()
        _record(mageflow_app, label, start)
        if self.request.retries < 2:
            raise self.retry(countdown=0)
        return f"{label}@{self.request.retries}"

    @mageflow_app.task(
        name="t.autoretry", shared=False, bind=True, autoretry_for=(ValueError,), max_retries=2, default_retry_delay=0
    )
    def autoretry(self: Task, label: str, succeed_on: int) -> str:
        start = time.time()
        _record(mageflow_app, label, start)
        if self.request.retries < succeed_on:
            raise ValueError(f"attempt {self.request.retries}")
        return f"{label}@{self.request.retries}"

    work = _define_work(mageflow_app)
    mageflow_worker(concurrency=4)
    s = swarm(
        tasks=[
            retry_then_ok.s("manual"),
            autoretry.s("auto", succeed_on=1),
            autoretry.s("exhausted", succeed_on=99),
            work.s(3),
            work.s(4),
        ],
        config=SwarmConfig(max_concurrency=1),
        is_swarm_closed=True,
        app=mageflow_app,
    )

    # When the swarm runs
    result = s.apply_async()
    assert result.get(timeout=30) == ["manual@2", "auto@1", 3, 4]

    # Then attempts ran one at a time, each member's attempts back to back (the token was never handed on
    # between attempts), and the members counted once each: 4 succeeded, 1 failed (not 3)
    intervals = _intervals(mageflow_redis)
    labels = [label for label, _, _ in sorted(intervals, key=lambda iv: iv[1])]
    assert labels == ["manual"] * 3 + ["auto"] * 2 + ["exhausted"] * 3 + [3, 4]
    assert max_overlap(intervals) == 1
    progress = result.progress()
    assert (progress.total, progress.succeeded, progress.failed, progress.cancelled) == (5, 4, 1, 0)

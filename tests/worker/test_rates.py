"""F3: rate limits, a token bucket on the state Redis's clock (burst 1), per swarm and per pool, exact across
workers; admission waits, never fails, and resumes with no client alive (the reaper admits at each slot);
``progress()`` shows when the next admission comes."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from celery import Celery

from mageflow_celery import SwarmConfig, set_pool_limit, swarm
from mageflow_celery.testing import process_client, wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def _record_task(app: Celery) -> Any:
    url = app.conf.broker_url

    @app.task(name="r.tick", shared=False)
    def tick(label: str) -> str:
        r = process_client(url)
        seconds, micros = r.time()  # the state Redis's clock, as the bucket's
        r.rpush("test:ticks", json.dumps([label, seconds + micros / 1e6]))
        return label

    return tick


def _starts(r: redis.Redis) -> list[float]:
    return sorted(json.loads(x)[1] for x in r.lrange("test:ticks", 0, -1))


def _measured_rate(starts: list[float]) -> float:
    return (len(starts) - 1) / (starts[-1] - starts[0])


@pytest.mark.slow
def test_a_swarms_rate_is_kept_over_six_seconds_within_ten_percent_with_no_client_involved(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given a swarm of 25 members limited to 4 per second (its own limit would let all 25 run at once)
    tick = _record_task(mageflow_app)
    mageflow_worker(concurrency=4, pool="prefork")
    s = swarm(
        tasks=[tick.s(f"m{i}") for i in range(25)],
        config=SwarmConfig(max_concurrency=25, rate_limit="4/s"),
        is_swarm_closed=True,
        app=mageflow_app,
    )

    # When it starts (the client does nothing more: the worker's reaper admits at each slot)
    result = s.apply_async()
    p = wait_for(lambda: (p := result.progress()).next_admission_at and p, message="a held admission")
    assert p.rate_limit == "4/s" and p.queued >= 20

    # Then its members started 4 per second, measured over 6 s, within 10 %
    assert result.get(timeout=30) == [f"m{i}" for i in range(25)]
    starts = _starts(mageflow_redis)
    assert starts[-1] - starts[0] >= 5.5
    assert abs(_measured_rate(starts) - 4.0) <= 0.4, _measured_rate(starts)
    # And no two members started closer than the bucket allows (burst 1), give or take the clocks' reads
    assert min(b - a for a, b in zip(starts, starts[1:], strict=False)) >= 0.2
    assert result.progress().next_admission_at is None


@pytest.mark.slow
def test_a_pools_rate_is_kept_across_the_swarms_sharing_it(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given a pool with no limit but a rate of 5/s, and two swarms of 14 members on it
    tick = _record_task(mageflow_app)
    set_pool_limit(mageflow_app, "rated", None, rate_limit="5/s")
    mageflow_worker(concurrency=4)
    results = [
        swarm(
            tasks=[tick.s(f"{k}{i}") for i in range(14)],
            config=SwarmConfig(pool="rated", max_concurrency=14),
            is_swarm_closed=True,
            app=mageflow_app,
        ).apply_async()
        for k in "ab"
    ]

    # When they run, then the 28 members started 5 per second together, within 10 %, over 5 s
    for result in results:
        result.get(timeout=30)
    starts = _starts(mageflow_redis)
    assert len(starts) == 28 and starts[-1] - starts[0] >= 5.0
    assert abs(_measured_rate(starts) - 5.0) <= 0.5, _measured_rate(starts)
    # And both swarms advanced together (round robin), not one after the other
    labels = [json.loads(x)[0][0] for x in mageflow_redis.lrange("test:ticks", 0, -1)]
    assert labels[:10].count("a") in range(3, 8)


def test_an_invalid_rate_is_refused() -> None:
    for bad in ("fast", "0/s", "-3/m", "4/x"):
        with pytest.raises(ValueError):
            SwarmConfig(rate_limit=bad)
    assert SwarmConfig(rate_limit="100/m").rate_limit == "100/m"

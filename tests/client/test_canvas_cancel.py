"""S9 in a canvas: a cancelled swarm is REVOKED, as a revoked task is: the later steps of its chain never run
and a chord holding it fails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery, chain, chord
from celery.exceptions import TaskRevokedError
from celery.result import AsyncResult

from mageflow_celery import SwarmCancelledError, SwarmResult, swarm
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]


@pytest.fixture
def tasks(mageflow_app: Celery, mageflow_redis_url: str, mageflow_redis: redis.Redis) -> Iterator[dict[str, Any]]:
    gate_client = redis.Redis.from_url(mageflow_redis_url, socket_timeout=30)

    @mageflow_app.task(name="c.gated", shared=False)
    def gated(x: int) -> int:
        mageflow_redis.rpush("test:started", x)
        gate_client.blpop(["test:gate"], timeout=20)
        return x

    @mageflow_app.task(name="c.record", shared=False)
    def record(*args: Any) -> str:
        mageflow_redis.rpush("test:recorded", repr(args))
        return "recorded"

    @mageflow_app.task(name="c.ten", shared=False)
    def ten() -> int:
        return 10

    yield {"gated": gated, "record": record, "ten": ten}
    mageflow_redis.rpush("test:gate", *["ok"] * 4)
    gate_client.close()


def _cancel_when_running(mageflow_redis: redis.Redis, swarm_id: str, app: Celery) -> None:
    wait_for(lambda: mageflow_redis.llen("test:started") == 1, message="the member to start")
    assert SwarmResult(swarm_id, app=app).cancel() is True


def test_a_cancelled_swarm_in_a_chain_is_revoked_and_the_next_step_never_runs(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis, tasks: dict[str, Any]
) -> None:
    # Given chain(swarm of one gated member, record) running
    mageflow_worker(concurrency=2)
    s = swarm(tasks=[tasks["gated"].s(1)], is_swarm_closed=True)
    swarm_id = s.freeze().id
    result = chain(s, tasks["record"].s()).apply_async()

    # When the swarm is cancelled while its member runs, and the member then finishes
    _cancel_when_running(mageflow_redis, swarm_id, mageflow_app)
    mageflow_redis.rpush("test:gate", "ok")

    # Then the swarm's task state is REVOKED, get() raises SwarmCancelledError, and the next step never ran
    wait_for(lambda: AsyncResult(swarm_id, app=mageflow_app).state == "REVOKED", message="the swarm revoked")
    with pytest.raises(SwarmCancelledError):
        SwarmResult(swarm_id, app=mageflow_app).get(timeout=10)
    wait_for(lambda: SwarmResult(swarm_id, app=mageflow_app).progress().running == 0)
    assert tasks["ten"].delay().get(timeout=20) == 10  # a barrier: what was published before it has started
    assert mageflow_redis.llen("test:recorded") == 0
    assert AsyncResult(result.id, app=mageflow_app).state == "PENDING"


def test_a_chord_holding_a_cancelled_swarm_fails(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis, tasks: dict[str, Any]
) -> None:
    # Given chord([swarm of one gated member, ten], record) running
    mageflow_worker(concurrency=3)
    s = swarm(tasks=[tasks["gated"].s(1)], is_swarm_closed=True)
    swarm_id = s.freeze().id
    result = chord([s, tasks["ten"].s()], tasks["record"].s()).apply_async()

    # When the swarm is cancelled
    _cancel_when_running(mageflow_redis, swarm_id, mageflow_app)

    # Then the chord fails as it does when a plain header task is revoked (TaskRevokedError), and its body
    # never runs
    with pytest.raises(TaskRevokedError, match="swarm cancelled"):
        result.get(timeout=20)
    mageflow_redis.rpush("test:gate", "ok")
    assert tasks["ten"].delay().get(timeout=20) == 10
    assert mageflow_redis.llen("test:recorded") == 0

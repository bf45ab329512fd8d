"""S12 expiry: a running swarm's keys carry the sliding idle TTL, a finished swarm's the result TTL, and a
late report to an expired swarm is ignored (with a WARNING) without re-creating any key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis
from celery import Celery, Task

from mageflow_celery import SwarmConfig, SwarmResult, swarm
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]


@pytest.fixture
def gated(mageflow_app: Celery, mageflow_redis_url: str, mageflow_redis: redis.Redis) -> Iterator[Task]:
    """A member that blocks until ``test:gate`` gets an item; the gate is opened at teardown."""
    gate_client = redis.Redis.from_url(mageflow_redis_url, socket_timeout=30)  # longer than the BLPOP timeout

    @mageflow_app.task(name="t.gated", shared=False)
    def gated(x: int) -> int:
        gate_client.blpop(["test:gate"], timeout=20)
        return x

    yield gated
    mageflow_redis.rpush("test:gate", *["ok"] * 4)
    gate_client.close()


def state_keys(client: redis.Redis, swarm_id: str) -> list[bytes]:
    """The state keys of a swarm (Celery's own keys for its members are left out)."""
    return sorted(client.scan_iter(match=f"mageflow:*{swarm_id}*"))


def ttls(client: redis.Redis, swarm_id: str) -> dict[bytes, int]:
    return {key: client.ttl(key) for key in state_keys(client, swarm_id)}


def test_a_running_swarm_keys_carry_the_idle_ttl_and_a_finished_swarm_keys_the_result_ttl(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis, gated: Task
) -> None:
    # Given a started swarm with a running (gated) member and a queued one
    mageflow_worker(concurrency=2)
    s = swarm(
        tasks=[gated.s(1), gated.s(2)],
        config=SwarmConfig(max_concurrency=1, idle_ttl_s=5000, result_ttl_s=120),
        is_swarm_closed=True,
        app=mageflow_app,
    )
    result = s.apply_async()
    wait_for(lambda: result.progress().running == 1)

    # Then every key of the running swarm expires after about idle_ttl_s
    running = ttls(mageflow_redis, result.id)
    assert len(running) >= 7 and all(4990 <= ttl <= 5000 for ttl in running.values()), running

    # When the members finish
    mageflow_redis.rpush("test:gate", "ok", "ok")
    assert result.get(timeout=20) == [1, 2]
    wait_for(lambda: mageflow_redis.hget(f"mageflow:swarm:{{{result.id}}}:meta", "fin") == b"done")

    # Then every key of the finished swarm expires after about result_ttl_s
    finished = ttls(mageflow_redis, result.id)
    assert finished and all(110 <= ttl <= 120 for ttl in finished.values()), finished


@pytest.mark.mageflow(result_expires=777)
def test_a_finished_swarm_is_kept_for_result_expires_by_default(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given an app with result_expires=777 and a swarm without result_ttl_s
    @mageflow_app.task(name="t.one", shared=False)
    def one() -> int:
        return 1

    mageflow_worker(concurrency=2)
    result = swarm(tasks=[one.s()], is_swarm_closed=True, app=mageflow_app).apply_async()

    # When it finished, then its keys expire after result_expires
    assert result.get(timeout=20) == [1]
    wait_for(lambda: all(760 <= ttl <= 777 for ttl in ttls(mageflow_redis, result.id).values()))


def test_a_late_report_to_an_expired_swarm_is_ignored_with_a_warning_and_creates_no_key(
    mageflow_app: Celery,
    mageflow_worker: WorkerFactory,
    mageflow_redis: redis.Redis,
    gated: Task,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a swarm abandoned for longer than its 1 s idle TTL while its member runs
    mageflow_worker(concurrency=2)
    s = swarm(tasks=[gated.s(1)], config=SwarmConfig(idle_ttl_s=1), is_swarm_closed=True, app=mageflow_app)
    result = s.apply_async()
    wait_for(lambda: result.progress().running == 1)
    wait_for(lambda: not state_keys(mageflow_redis, result.id), timeout_s=15, message="the swarm's keys to expire")

    # When the member finishes and its outcome is reported
    with caplog.at_level(logging.WARNING, logger="mageflow_celery"):
        mageflow_redis.rpush("test:gate", "ok")
        wait_for(
            lambda: any(r.levelno == logging.WARNING and result.id in r.getMessage() for r in caplog.records),
            message="a WARNING about the expired swarm",
        )

    # Then no key of the swarm was re-created
    assert state_keys(mageflow_redis, result.id) == []


@pytest.mark.parametrize("expires", [0, None])
def test_result_expires_0_or_none_keeps_a_finished_swarm_forever_as_celery_does(
    expires: int | None, mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given an app whose result_expires means "never expire" (0 or None, as in Celery)
    mageflow_app.conf.result_expires = expires

    @mageflow_app.task(name="t.one", shared=False)
    def one() -> int:
        return 1

    mageflow_worker(concurrency=2)
    result = swarm(tasks=[one.s()], is_swarm_closed=True, app=mageflow_app).apply_async()

    # When it finished
    assert result.get(timeout=20) == [1]
    wait_for(lambda: mageflow_redis.hget(f"mageflow:swarm:{{{result.id}}}:meta", "fin") == b"done")

    # Then none of its keys expires (TTL -1), and its result is still there to read
    kept = ttls(mageflow_redis, result.id)
    assert len(kept) >= 7 and set(kept.values()) == {-1}, kept
    assert SwarmResult(result.id, app=mageflow_app).get(timeout=1) == [1]


def test_every_transition_slides_the_idle_ttl_of_every_key(mageflow_app: Celery, mageflow_redis: redis.Redis) -> None:
    # Given an open, started swarm with a 10 s idle TTL and no transition for a few seconds
    s = swarm(
        tasks=[mageflow_app.signature("t.nowhere").set(queue="nowhere")],
        config=SwarmConfig(idle_ttl_s=10),
        app=mageflow_app,
    )
    result = s.apply_async()
    wait_for(
        lambda: all(0 < ttl <= 7 for ttl in ttls(mageflow_redis, result.id).values()),
        timeout_s=15,
        message="the keys' TTLs to run down to 7 s",
    )

    # When a transition happens (a member is added and queued)
    s.run_in_swarm(mageflow_app.signature("t.nowhere").set(queue="nowhere"))

    # Then every key of the swarm has its full idle TTL again
    after = ttls(mageflow_redis, result.id)
    assert len(after) >= 7 and all(9 <= ttl <= 10 for ttl in after.values()), after

"""S11: swarms under celery beat, with add_periodic_task and hand-written beat_schedule entries."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from celery import Celery
from celery.beat import ScheduleEntry, Scheduler

from mageflow_celery import SwarmConfig, SwarmResult, swarm
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def _double(app: Celery) -> Any:
    @app.task(name="t.double", shared=False)
    def double(x: int, **kwargs: Any) -> int:
        return x * 2

    return double


def _fire(app: Celery, entry: ScheduleEntry) -> str:
    """Send one beat firing the way celery beat does; return the started swarm's id."""
    scheduler = Scheduler(app, lazy=True)
    starter = scheduler.apply_async(entry, advance=False)
    return str(starter.get(timeout=20))


def test_add_periodic_task_registers_a_real_task_and_each_firing_starts_a_new_swarm(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given a swarm scheduled with add_periodic_task
    double = _double(mageflow_app)
    nightly = swarm(tasks=[double.s(i) for i in range(3)], config=SwarmConfig(max_concurrency=2), is_swarm_closed=True)
    mageflow_app.add_periodic_task(3600.0, nightly, name="nightly")
    mageflow_worker(concurrency=4)
    entry_conf = mageflow_app.conf.beat_schedule["nightly"]

    # Then the entry names a registered task
    assert entry_conf["task"] == "mageflow.swarm"
    assert entry_conf["task"] in mageflow_app.tasks

    # When beat fires it twice
    entry = ScheduleEntry(name="nightly", app=mageflow_app, **entry_conf)
    first, second = _fire(mageflow_app, entry), _fire(mageflow_app, entry)

    # Then each firing created and ran its own swarm
    assert first != second
    for swarm_id in (first, second):
        assert SwarmResult(swarm_id, app=mageflow_app).get(timeout=20) == [0, 2, 4]


def test_a_hand_written_beat_schedule_entry_works_the_same_way(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given a beat_schedule entry written by hand from a swarm's kwargs, plus a run kwarg of its own
    @mageflow_app.task(name="t.dated", shared=False)
    def dated(x: int, run_date: str = "") -> str:
        return f"{x * 2}@{run_date}"

    batch = swarm(tasks=[dated.s(5)], is_swarm_closed=True)
    mageflow_app.conf.beat_schedule = {
        "batch": {"task": "mageflow.swarm", "schedule": 60.0, "kwargs": {**batch.kwargs, "run_date": "2026-11-27"}}
    }
    mageflow_worker(concurrency=2)

    # When beat fires it
    entry = ScheduleEntry(name="batch", app=mageflow_app, **mageflow_app.conf.beat_schedule["batch"])
    swarm_id = _fire(mageflow_app, entry)

    # Then a swarm ran, and the entry's extra kwarg reached the member
    result = SwarmResult(swarm_id, app=mageflow_app)
    assert result.get(timeout=20) == ["10@2026-11-27"]
    wait_for(lambda: result.progress().succeeded == 1, timeout_s=5)


def test_a_periodic_swarm_with_link_calls_it_once_with_the_result_list_after_the_members(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given a periodic swarm with a link (the beat entry carries it as an option of the starter task)
    double = _double(mageflow_app)

    @mageflow_app.task(name="t.notify", shared=False)
    def notify(value: Any) -> None:
        mageflow_redis.rpush("test:notified", json.dumps(value))

    nightly = swarm(tasks=[double.s(i) for i in range(3)], is_swarm_closed=True)
    nightly.link(notify.s())  # (link returns the callback, as in Celery: schedule the swarm itself)
    mageflow_app.add_periodic_task(3600.0, nightly, name="linked")
    mageflow_worker(concurrency=4)
    entry = ScheduleEntry(name="linked", app=mageflow_app, **mageflow_app.conf.beat_schedule["linked"])

    # When beat fires it
    swarm_id = _fire(mageflow_app, entry)

    # Then the link ran once, after the members, with their results (not with the starter's swarm id)
    assert SwarmResult(swarm_id, app=mageflow_app).get(timeout=20) == [0, 2, 4]
    wait_for(lambda: mageflow_redis.llen("test:notified") >= 1)
    double.delay(0).get(timeout=10)  # settle: a solo queue order is not guaranteed, so also wait a round trip
    assert [json.loads(x) for x in mageflow_redis.lrange("test:notified", 0, -1)] == [[0, 2, 4]]

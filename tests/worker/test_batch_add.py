"""N4: adding many members in one atomic step (all or nothing), from an iterator in batches, with a message
per member (aio), and ``close_on_max_task=False``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from celery import Celery
from pydantic import BaseModel

from mageflow_celery import (
    NotSerializableError,
    SwarmConfig,
    SwarmResult,
    TooManyTasksError,
    swarm,
)
from mageflow_celery import aio as mageflow
from mageflow_celery.keys import member_task_id
from mageflow_celery.testing import redis_snapshot
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]


class Item(BaseModel):
    item: int


def _tag(app: Celery) -> Any:
    @app.task(name="b.tag", shared=False)
    def tag(label: str, item: int = -1, batch: str = "") -> str:
        return f"{label}:{item}:{batch}"

    return tag


def test_run_in_swarm_with_a_list_queues_every_member_at_once_with_the_message_and_returns_handles_in_order(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given a started, open swarm
    tag = _tag(mageflow_app)
    mageflow_worker(concurrency=4)
    s = swarm(tasks=[tag.s("first")], config=SwarmConfig(max_concurrency=2), app=mageflow_app)
    res = s.apply_async(kwargs={"batch": "b"})

    # When three members are run in one call, with one message for all
    handles = s.run_in_swarm([tag.s("x"), tag.s("y"), tag.s("z")], kwargs={"item": 7})

    # Then their handles come back in order, with their member ids, and they run with the merged message
    assert [h.id for h in handles] == [member_task_id(res.id, i) for i in (1, 2, 3)]
    s.close_swarm()
    assert res.get(timeout=20) == ["first:-1:b", "x:7:b", "y:7:b", "z:7:b"]


def test_add_tasks_registers_members_whose_handles_queue_them(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given a swarm, and a list of members registered in one call
    tag = _tag(mageflow_app)
    mageflow_worker(concurrency=4)
    s = swarm(app=mageflow_app)
    res = s.apply_async()
    handles = s.add_tasks([tag.s("a"), tag.s("b")])
    assert res.progress().registered == 2

    # When each handle is queued (the second with a message of its own) and the swarm closed
    handles[1].delay(Item(item=2))
    handles[0].delay()
    s.close_swarm()

    # Then both ran; results are in member (add) order
    assert res.get(timeout=20) == ["a:-1:", "b:2:"]


def test_a_batch_that_would_exceed_max_task_allowed_or_holds_an_unencodable_member_writes_nothing(
    mageflow_app: Celery, mageflow_redis: redis.Redis
) -> None:
    # Given a started swarm allowing 4 members, with 2
    tag = _tag(mageflow_app)
    s = swarm(tasks=[tag.s("a"), tag.s("b")], config=SwarmConfig(max_task_allowed=4), app=mageflow_app)
    res = s.apply_async()
    before = redis_snapshot(mageflow_redis)

    # When a batch of 3 is added (one too many), or a batch of 2 whose second member cannot be encoded
    with pytest.raises(TooManyTasksError):
        s.run_in_swarm([tag.s("c"), tag.s("d"), tag.s("e")])
    with pytest.raises(NotSerializableError):
        s.add_tasks([tag.s("c"), tag.s(object())])

    # Then nothing was written: not one member of either batch
    assert redis_snapshot(mageflow_redis) == before
    assert res.progress().total == 2


def test_add_tasks_from_an_iterator_adds_in_batches_and_gives_handles_built_on_demand(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given a swarm and a generator of 25 members (never a list in the client)
    tag = _tag(mageflow_app)
    mageflow_worker(concurrency=4)
    s = swarm(app=mageflow_app)
    res = s.apply_async()
    calls_before = res._rt.store.calls

    # When they are added in batches of 10
    handles = s.add_tasks((tag.s(f"m{i}") for i in range(25)), batch_size=10)

    # Then three atomic adds were made, and the handles know their members without holding them
    assert res._rt.store.calls - calls_before == 3
    assert len(handles) == 25 and res.progress().registered == 25
    assert handles[-1].id == member_task_id(res.id, 24) and list(handles[-1].args) == ["m24"]
    for handle in handles:
        handle.delay()
    s.close_swarm()
    assert res.get(timeout=30) == [f"m{i}:-1:" for i in range(25)]


def test_aio_run_tasks_in_swarm_gives_each_task_its_own_message_and_refuses_mismatched_lengths(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given a started swarm, through the aio facade
    tag = _tag(mageflow_app)
    mageflow_worker(concurrency=4)

    async def flow() -> Any:
        s = await mageflow.swarm(app=mageflow_app)
        res = await s.aio_run_no_wait()
        before = redis_snapshot(mageflow_redis)
        # a message per task; lengths that differ are refused before anything is written
        with pytest.raises(ValueError):
            await s.aio_run_tasks_in_swarm([tag.s("a"), tag.s("b")], [Item(item=1)])
        assert redis_snapshot(mageflow_redis) == before
        await s.aio_run_tasks_in_swarm([tag.s("a"), tag.s("b")], [Item(item=1), {"item": 2}])
        await s.close_swarm()
        return await res.get(timeout=20)

    assert asyncio.run(flow()) == ["a:1:", "b:2:"]


def test_close_on_max_task_false_keeps_the_swarm_open_when_its_maximum_is_reached(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given a swarm allowing 3 members
    tag = _tag(mageflow_app)
    mageflow_worker(concurrency=4)
    s = swarm(config=SwarmConfig(max_task_allowed=3), app=mageflow_app)
    res = s.apply_async()

    # When 3 are run with close_on_max_task=False
    s.run_in_swarm([tag.s("a"), tag.s("b"), tag.s("c")], close_on_max_task=False)

    # Then the swarm stays open (it does not finish), though a further add is refused
    assert res.progress().closed is False
    with pytest.raises(TooManyTasksError):
        s.add_task(tag.s("d"))
    # And it finishes once closed
    s.close_swarm()
    assert SwarmResult(res.id, app=mageflow_app).get(timeout=20) == ["a:-1:", "b:-1:", "c:-1:"]

"""S10 progress and the read-only views of mageflow_celery.ops.inspect, step by step on a real worker."""

from __future__ import annotations

import pytest
import redis
from celery import Celery
from opskit import Ops

from mageflow_celery import SwarmConfig, SwarmNotFoundError, SwarmProgress, SwarmResult, swarm
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.keys import SwarmKeys, index_key, member_task_id
from mageflow_celery.ops.inspect import describe_swarm, list_swarms
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis]


def _counts(p: SwarmProgress) -> tuple[int, ...]:
    return (p.registered, p.queued, p.dispatched, p.running, p.succeeded, p.failed, p.cancelled)


@pytest.mark.worker
def test_progress_counts_match_what_the_members_are_doing_at_each_step(
    ops: Ops, mageflow_worker: WorkerFactory
) -> None:
    # Given an open swarm of 3 initial members (limit 2) and one more member added before the start
    mageflow_worker(concurrency=4)
    s = swarm(
        tasks=[ops.gated.s(i) for i in range(3)],
        config=SwarmConfig(max_concurrency=2),
        task_name="steps",
        app=ops.app,
    )
    res = SwarmResult(s.freeze().id, app=ops.app)
    late = s.add_task(ops.gated.s(3, fail=True))
    p = res.progress()
    #                  reg q  d  r  ok f  c
    assert _counts(p) == (4, 0, 0, 0, 0, 0, 0)
    assert (p.state, p.closed, p.paused, p.total, p.name, p.max_concurrency) == ("pending", False, False, 4, "steps", 2)
    assert p.created_at is not None and p.finished_at is None

    # When it starts: the initial members are queued and two admitted; the added one stays registered
    s.apply_async()
    ops.wait_started(0, 1)
    assert _counts(res.progress()) == (1, 1, 0, 2, 0, 0, 0)
    assert sorted(ops.started()) == [0, 1]

    # When the added member is run, it is queued behind the third one
    late.delay()
    assert _counts(res.progress()) == (0, 2, 0, 2, 0, 0, 0)

    # When member 0 finishes, member 2 takes its token
    ops.open(0)
    wait_for(lambda: res.progress().succeeded == 1, message="member 0 reported")
    p = res.progress()
    assert (p.registered, p.queued, p.dispatched + p.running, p.succeeded) == (0, 1, 2, 1)
    wait_for(lambda: res.progress().running == 2, message="member 2 received")
    assert _counts(res.progress()) == (0, 1, 0, 2, 1, 0, 0)

    # When members 1 and 2 finish, the failing member 3 runs and fails
    ops.open(1, 2, 3)
    wait_for(lambda: res.progress().failed == 1, message="member 3 reported")
    p = res.progress()
    assert _counts(p) == (0, 0, 0, 0, 3, 1, 0)
    assert (p.state, p.done, p.total) == ("running", 4, 4)  # still open: not finished

    # Then describe_swarm shows the failed member with its error
    info = describe_swarm(ops.app, res.id)
    assert info["failed_members"] == [
        {
            "task_id": member_task_id(res.id, 3),
            "index": 3,
            "exc_type": "ValueError",
            "message": "member 3 failed on purpose",
        }
    ]
    assert info["failed_members_truncated"] is False
    assert (info["swarm_id"], info["name"], info["state"], info["closed"], info["total"]) == (
        res.id,
        "steps",
        "running",
        False,
        4,
    )
    assert (info["succeeded"], info["failed"], info["queued"], info["running"], info["max_concurrency"]) == (
        3,
        1,
        0,
        0,
        2,
    )

    # When it is closed, it finishes at once
    assert res.close_swarm() is True
    p = res.progress()
    assert (p.state, p.closed, p.done) == ("succeeded", True, 4)
    assert p.finished_at is not None and p.finished_at >= (p.created_at or 0)
    assert res.get(timeout=10) == [0, 10, 20]


def test_list_swarms_lists_the_index_newest_first_and_drops_expired_swarms(
    mageflow_app: Celery, mageflow_redis: redis.Redis
) -> None:
    # Given three swarms: one running, one finished (empty and closed), one created but not started
    @mageflow_app.task(name="ops.noop", shared=False)
    def noop() -> None:
        return None

    running = swarm(tasks=[noop.s()], task_name="a", app=mageflow_app).apply_async()
    finished = swarm(is_swarm_closed=True, task_name="b", app=mageflow_app).apply_async()
    pending = swarm(tasks=[noop.s()], task_name="c", app=mageflow_app)
    pending.close_swarm()

    # When listed
    listed = list_swarms(mageflow_app)

    # Then all three are there, newest first, with their real progress
    assert [p.swarm_id for p in listed] == [pending.id, finished.id, running.id]
    assert [(p.name, p.state) for p in listed] == [("c", "pending"), ("b", "succeeded"), ("a", "running")]
    assert (listed[2].total, listed[2].dispatched, listed[2].closed, listed[1].closed) == (1, 1, False, True)
    assert [p.swarm_id for p in list_swarms(mageflow_app, include_finished=False)] == [pending.id, running.id]

    # When one swarm's state expires (its keys vanish), it is dropped from the list and the index
    prefix = runtime_for(mageflow_app).settings.key_prefix
    mageflow_redis.delete(*SwarmKeys(prefix, running.id).all())
    assert [p.swarm_id for p in list_swarms(mageflow_app)] == [pending.id, finished.id]
    assert mageflow_redis.zscore(index_key(prefix), running.id) is None


def test_describe_swarm_of_an_unknown_id_raises_swarm_not_found(mageflow_app: Celery) -> None:
    with pytest.raises(SwarmNotFoundError):
        describe_swarm(mageflow_app, "no-such-swarm")
    assert list_swarms(mageflow_app) == []

"""S2 member states and S10 progress: registered -> queued -> dispatched -> running -> finished.

Members are gated: each blocks on its own Redis list until the test pushes ``ok`` or ``fail`` to it,
so the test decides when each member finishes and reads ``progress()`` at known points.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery, Task
from celery.result import AsyncResult

from mageflow_celery import SwarmConfig, SwarmProgress, SwarmResult, swarm
from mageflow_celery.keys import member_task_id
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]

STARTED = "test:started"


class Gates:
    """``gates(label, "ok" | "fail")`` lets gated member ``label`` finish; members block through ``client``."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=30)  # longer than a gate's BLPOP timeout
        self.opened: set[str] = set()

    def __call__(self, label: str, outcome: str = "ok") -> None:
        self.opened.add(label)
        self.client.rpush(f"test:gate:{label}", outcome)


@pytest.fixture
def gates(mageflow_redis_url: str, mageflow_redis: redis.Redis) -> Iterator[Gates]:
    """Every gate is opened at teardown, so no worker thread stays blocked."""
    g = Gates(mageflow_redis_url)
    yield g
    for label in set("abcdefghx") - g.opened:
        g(label, "ok")
    g.client.close()


def _gated(app: Celery, client: redis.Redis) -> Task:
    @app.task(name="t.gated", shared=False)
    def gated(label: str) -> str:
        client.rpush(STARTED, label)
        popped = client.blpop([f"test:gate:{label}"], timeout=20)
        if popped is None or popped[1] == b"fail":
            raise ValueError(f"{label} failed")
        return label

    return gated


def _started(client: redis.Redis) -> list[str]:
    return [x.decode() for x in client.lrange(STARTED, 0, -1)]


def _counts(p: SwarmProgress) -> dict[str, Any]:
    names = ("state", "total", "registered", "queued", "dispatched", "running", "succeeded", "failed", "cancelled")
    return {name: getattr(p, name) for name in names}


def _wait_progress(result: SwarmResult, **expected: Any) -> SwarmProgress:
    """Wait until ``progress()`` shows the expected values; return it."""

    def matches() -> SwarmProgress | None:
        p = result.progress()
        return p if all(getattr(p, k) == v for k, v in expected.items()) else None

    try:
        return wait_for(matches, timeout_s=20)
    except TimeoutError:
        raise AssertionError(f"expected {expected}, progress is {_counts(result.progress())}") from None


def test_progress_follows_members_through_their_states(
    mageflow_app: Celery,
    mageflow_worker: WorkerFactory,
    mageflow_redis: redis.Redis,
    gates: Gates,
) -> None:
    # Given an open swarm of 3 gated members limited to 2, and a fourth member added and queued before the start
    gated = _gated(mageflow_app, gates.client)
    mageflow_worker(concurrency=4)
    s = swarm(tasks=[gated.s(x) for x in "abc"], config=SwarmConfig(max_concurrency=2), app=mageflow_app)
    extra = s.add_task(gated.s("d"))
    result = SwarmResult(s.id, app=mageflow_app)
    assert _counts(result.progress()) == {
        "state": "pending", "total": 4, "registered": 4, "queued": 0,
        "dispatched": 0, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0,
    }  # fmt: skip
    extra.delay()
    p = result.progress()
    assert (p.state, p.registered, p.queued, p.closed, p.max_concurrency) == ("pending", 3, 1, False, 2)

    # When it starts, then two members hold the tokens (received by the worker) and two wait in the queue
    s.apply_async()
    p = _wait_progress(result, running=2)
    assert _counts(p) == {
        "state": "running", "total": 4, "registered": 0, "queued": 2,
        "dispatched": 0, "running": 2, "succeeded": 0, "failed": 0, "cancelled": 0,
    }  # fmt: skip
    first, second = wait_for(lambda: _started(mageflow_redis)[:2] if len(_started(mageflow_redis)) >= 2 else None)
    # (the two admitted members run side by side, so which one starts first is the pool's choice)
    assert {first, second} == {"d", "a"}, "the member queued before the start is admitted first"

    # When one member succeeds, then the next queued member takes its token
    gates(first, "ok")
    p = _wait_progress(result, succeeded=1, running=2)
    assert (p.queued, p.failed) == (1, 0)

    # When one fails, then it is counted failed and the last queued member is admitted
    gates(second, "fail")
    p = _wait_progress(result, failed=1, running=2)
    assert (p.queued, p.succeeded) == (0, 1)

    # When the swarm is closed and the last two succeed, then it succeeded with exact counts and timestamps
    assert s.close_swarm() is True
    for label in set("abcd") - {first, second}:
        gates(label, "ok")
    p = _wait_progress(result, state="succeeded")
    assert _counts(p) == {
        "state": "succeeded", "total": 4, "registered": 0, "queued": 0,
        "dispatched": 0, "running": 0, "succeeded": 3, "failed": 1, "cancelled": 0,
    }  # fmt: skip
    assert p.closed is True
    assert p.created_at is not None and p.finished_at is not None and p.created_at <= p.finished_at
    assert result.ready() and result.successful() and result.state == "SUCCESS"


def test_a_paused_swarm_shows_paused_and_admits_nothing_until_resumed(
    mageflow_app: Celery,
    mageflow_worker: WorkerFactory,
    mageflow_redis: redis.Redis,
    gates: Gates,
) -> None:
    # Given a running swarm of 3 gated members limited to 1
    gated = _gated(mageflow_app, gates.client)
    mageflow_worker(concurrency=4)
    s = swarm(
        tasks=[gated.s(x) for x in "abc"], config=SwarmConfig(max_concurrency=1), is_swarm_closed=True, app=mageflow_app
    )
    result = s.apply_async()
    _wait_progress(result, running=1)

    # When it is paused and its running member finishes
    assert s.pause() is True
    gates("a", "ok")
    p = _wait_progress(result, succeeded=1)

    # Then the state is "paused" and the queued members wait, holding no token
    assert (p.state, p.paused, p.running, p.dispatched, p.queued) == ("paused", True, 0, 0, 2)
    assert result.state == "STARTED"

    # When it is resumed, then the next member is admitted
    assert s.resume() is True
    p = _wait_progress(result, running=1)
    assert (p.state, p.queued) == ("running", 1)
    gates("b", "ok")
    gates("c", "ok")
    assert result.get(timeout=20) == ["a", "b", "c"]


def test_published_members_not_yet_received_are_dispatched_and_become_running_when_a_worker_takes_them(
    mageflow_app: Celery,
    mageflow_worker: WorkerFactory,
    mageflow_redis: redis.Redis,
    gates: Gates,
) -> None:
    # Given a swarm of 3 gated members limited to 2, routed to a queue no worker consumes yet
    gated = _gated(mageflow_app, gates.client)
    s = swarm(
        tasks=[gated.s(x) for x in "abc"],
        config=SwarmConfig(max_concurrency=2),
        is_swarm_closed=True,
        options={"queue": "later"},
        app=mageflow_app,
    )

    # When it starts
    result = s.apply_async()

    # Then two members hold a token as dispatched (published, not received) and one is queued
    p = result.progress()
    assert (p.dispatched, p.running, p.queued) == (2, 0, 1)

    # When a worker consumes that queue, then they are running, and the swarm completes
    mageflow_worker(concurrency=4, queues=["later"])
    _wait_progress(result, running=2, dispatched=0)
    for label in "abc":
        gates(label, "ok")
    assert result.get(timeout=20) == ["a", "b", "c"]


@pytest.mark.parametrize("ending", ["cancelled", "failed"])
def test_members_published_before_the_swarm_ended_are_dropped_at_receipt_and_never_run(
    mageflow_app: Celery,
    mageflow_worker: WorkerFactory,
    mageflow_redis: redis.Redis,
    gates: Gates,
    ending: str,
) -> None:
    # Given a swarm limited to 3 whose gated members go to a queue no worker consumes yet, and whose first
    # member (failing at the threshold of 1) goes to a queue a worker consumes
    gated = _gated(mageflow_app, gates.client)

    @mageflow_app.task(name="t.fail", shared=False)
    def fail() -> None:
        raise ValueError("boom")

    worker = mageflow_worker(concurrency=4, queues=["now"])
    first = fail.s().set(queue="now") if ending == "failed" else gated.s("x").set(queue="later")
    s = swarm(
        tasks=[first, gated.s("a"), gated.s("b"), gated.s("c")],
        config=SwarmConfig(max_concurrency=3, stop_after_n_failures=1),
        is_swarm_closed=True,
        options={"queue": "later"},
        app=mageflow_app,
    )
    result = s.apply_async()

    # When the swarm ends (cancelled, or failed by its first member) while two members are dispatched
    if ending == "cancelled":
        assert s.cancel() is True
    _wait_progress(result, state=ending)

    # Then, once the worker takes the dispatched members, it drops them at receipt (REVOKED), never running them
    replies = mageflow_app.control.add_consumer("later", reply=True, destination=[worker.hostname])
    assert replies and "ok" in next(iter(replies[0].values())), replies
    for index in (1, 2):
        wait_for(lambda index=index: AsyncResult(member_task_id(result.id, index), app=mageflow_app).state == "REVOKED")
    p = _wait_progress(result, dispatched=0)
    assert (p.running, p.queued, p.cancelled) == (0, 0, 3 if ending == "failed" else 4)
    assert _started(mageflow_redis) == []


def test_members_have_deterministic_ids_and_the_swarm_as_parent(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given a member task that returns its own request ids
    @mageflow_app.task(name="t.whoami", shared=False, bind=True)
    def whoami(self: Task) -> list[Any]:
        return [self.request.id, self.request.parent_id, self.request.root_id]

    mageflow_worker(concurrency=2)
    s = swarm(tasks=[whoami.s(), whoami.s()], is_swarm_closed=True, app=mageflow_app)

    # When the swarm runs
    result = s.apply_async()
    ids = result.get(timeout=20)

    # Then member i has id "<swarm id>~i", the swarm as parent and root, and AsyncResult(member id) works
    sid = result.id
    assert ids == [[member_task_id(sid, 0), sid, sid], [member_task_id(sid, 1), sid, sid]]
    assert AsyncResult(member_task_id(sid, 1), app=mageflow_app).get(timeout=5) == [member_task_id(sid, 1), sid, sid]

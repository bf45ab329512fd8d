"""S1: a swarm is a lazy Celery signature; its id (``options['task_id']``) denotes one swarm.

A solo worker runs messages in the order they were published, so a ``barrier`` task sent after an
action has run only once everything the action published has run too.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timedelta, timezone

import pytest
import redis
from celery import Celery, Task, signature
from celery.exceptions import TimeoutError as CeleryTimeoutError

from mageflow_celery import Swarm, SwarmConfig, SwarmNotFoundError, SwarmResult, swarm
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]

RUNS = "test:runs"


def _tasks(app: Celery, client: redis.Redis) -> tuple[Task, Task]:
    @app.task(name="t.run", shared=False)
    def run(label: str) -> str:
        client.rpush(RUNS, label)
        return label

    @app.task(name="t.barrier", shared=False)
    def barrier() -> str:
        return "passed"

    return run, barrier


def _runs(client: redis.Redis) -> list[str]:
    return sorted(x.decode() for x in client.lrange(RUNS, 0, -1))


def _settle(barrier: Task) -> None:
    """Wait until the solo worker ran everything published so far."""
    assert barrier.delay().get(timeout=20) == "passed"


def test_applying_a_swarm_that_has_an_id_again_starts_nothing_and_returns_its_result(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a closed swarm of 3 members that ran to the end
    run, barrier = _tasks(mageflow_app, mageflow_redis)
    mageflow_worker(pool="solo", concurrency=1)
    s = swarm(tasks=[run.s(x) for x in "abc"], is_swarm_closed=True, app=mageflow_app)
    first = s.apply_async()
    assert first.get(timeout=20) == ["a", "b", "c"]

    # When the same signature, and a clone of it, are applied again
    with caplog.at_level(logging.WARNING, logger="mageflow_celery"):
        again = s.apply_async(kwargs={"ignored": True})
        from_clone = s.clone().delay()
    _settle(barrier)

    # Then both return the existing swarm's result, log a WARNING, and no member ran a second time
    assert again.id == from_clone.id == first.id
    assert isinstance(again, SwarmResult)
    assert again.get(timeout=5) == ["a", "b", "c"]
    assert _runs(mageflow_redis) == ["a", "b", "c"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and first.id in r.getMessage()]
    assert len(warnings) == 2, [r.getMessage() for r in caplog.records]


def test_applying_a_running_swarm_again_does_not_restart_it(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an open swarm that started, one member done
    run, barrier = _tasks(mageflow_app, mageflow_redis)
    mageflow_worker(pool="solo", concurrency=1)
    s = swarm(tasks=[run.s("a")], app=mageflow_app)
    result = s.apply_async()
    # (the member's outcome is reported after it ran, by the worker's reporting process)
    wait_for(lambda: result.progress().succeeded == 1, message="member a's outcome")

    # When it is applied again while still running (open)
    with caplog.at_level(logging.WARNING, logger="mageflow_celery"):
        assert s.apply_async().id == result.id
    _settle(barrier)

    # Then it was not restarted: still running, its member ran once, and it finishes when closed
    progress = result.progress()
    assert (progress.state, progress.total, progress.succeeded) == ("running", 1, 1)
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    s.close_swarm()
    assert result.get(timeout=20) == ["a"]
    assert _runs(mageflow_redis) == ["a"]


def test_fresh_gives_a_new_swarm_that_runs_its_members_again(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given a swarm that ran
    run, _ = _tasks(mageflow_app, mageflow_redis)
    mageflow_worker(pool="solo", concurrency=1)
    s = swarm(tasks=[run.s("a"), run.s("b")], is_swarm_closed=True, app=mageflow_app)
    first = s.apply_async()
    assert first.get(timeout=20) == ["a", "b"]

    # When a fresh copy is applied
    fresh = s.fresh()
    second = fresh.apply_async()

    # Then it is a new swarm with its own id, and the members ran again
    assert fresh.id == second.id != first.id
    assert second.get(timeout=20) == ["a", "b"]
    assert _runs(mageflow_redis) == ["a", "a", "b", "b"]


def test_an_unfrozen_swarm_from_json_or_cloned_creates_a_new_swarm_each_time_it_is_applied(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given an unfrozen swarm and its JSON form (as a beat entry stores it)
    run, _ = _tasks(mageflow_app, mageflow_redis)
    mageflow_worker(pool="solo", concurrency=1)
    s = swarm(tasks=[run.s("x")], is_swarm_closed=True, app=mageflow_app)
    payload = json.dumps(s)

    # When the JSON form is loaded and applied twice, and the original is cloned and applied twice
    loaded = [signature(json.loads(payload), app=mageflow_app) for _ in range(2)]
    results = [sig.apply_async() for sig in loaded] + [s.clone().apply_async() for _ in range(2)]

    # Then four distinct swarms ran, each running its member, and the original stays unfrozen
    assert all(isinstance(sig, Swarm) for sig in loaded)
    assert len({r.id for r in results}) == 4
    assert [r.get(timeout=20) for r in results] == [["x"]] * 4
    assert _runs(mageflow_redis) == ["x"] * 4
    assert s.id is None


def test_the_first_stateful_call_creates_the_swarm_under_its_frozen_id_and_nothing_runs_before_the_start(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given a frozen swarm: its id is known, but no state exists yet
    run, barrier = _tasks(mageflow_app, mageflow_redis)
    mageflow_worker(pool="solo", concurrency=1)
    s = swarm(tasks=[run.s("a")], config=SwarmConfig(max_concurrency=1), app=mageflow_app)
    result = s.freeze()
    with pytest.raises(SwarmNotFoundError):
        result.progress()

    # When a member is added and queued before the swarm is started
    member = s.add_task(run.s("b"))
    member.delay()
    _settle(barrier)

    # Then the swarm exists under the frozen id, pending, and nothing ran yet
    progress = SwarmResult(s.id, app=mageflow_app).progress()
    assert (progress.state, progress.total, progress.registered, progress.queued) == ("pending", 2, 1, 1)
    assert _runs(mageflow_redis) == []

    # When it is started and closed, then both members run and the results are in member (add) order
    assert s.apply_async().id == result.id
    s.close_swarm()
    assert result.get(timeout=20) == ["a", "b"]


# -- unknown ids, timeouts and delayed starts (D6, S10) -----------------------------------------------


def test_get_on_an_unknown_or_expired_id_raises_swarm_not_found_at_once(
    mageflow_app: Celery, mageflow_redis: redis.Redis
) -> None:
    # Given an id no swarm has, and a swarm whose keys expired
    s = swarm(tasks=["t.never"], is_swarm_closed=True, app=mageflow_app)
    s.freeze()
    s.close_swarm()  # creates it
    for key in mageflow_redis.scan_iter(match=f"mageflow:swarm:{{{s.id}}}:*"):
        mageflow_redis.delete(key)

    # Then get() on either raises SwarmNotFoundError instead of waiting (state reads PENDING, as Celery's)
    for swarm_id in ("no-such-swarm", s.id):
        result = SwarmResult(swarm_id, app=mageflow_app)
        assert result.state == "PENDING"
        with pytest.raises(SwarmNotFoundError):
            result.get(timeout=60)


def test_get_with_a_timeout_on_an_unfinished_swarm_raises_celerys_timeout_error(mageflow_app: Celery) -> None:
    # Given a started swarm whose member no worker consumes
    result = swarm(tasks=["t.never"], is_swarm_closed=True, app=mageflow_app).apply_async()

    # Then get(timeout=...) raises celery.exceptions.TimeoutError once the timeout passed
    with pytest.raises(CeleryTimeoutError):
        result.get(timeout=0.3)


def test_a_frozen_handle_of_a_swarm_not_created_yet_waits_for_it_as_a_later_chain_step_would(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given the handle freeze() returns before the swarm exists (as for a swarm later in a chain)
    run, _ = _tasks(mageflow_app, mageflow_redis)
    mageflow_worker(concurrency=2)
    s = swarm(tasks=[run.s("late")], is_swarm_closed=True, app=mageflow_app)
    handle = s.freeze()
    starter = threading.Timer(0.3, s.apply_async)

    # When it is started a little later, then get() on the handle waited for it and returns its result
    starter.start()
    try:
        assert handle.get(timeout=20) == ["late"]
    finally:
        starter.join()


@pytest.mark.parametrize("when", ["countdown", "eta"])
def test_a_swarm_applied_with_countdown_or_eta_is_created_now_and_starts_then(
    when: str, mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given a swarm applied with a countdown (or an eta) of 1.5 s and a run kwarg
    @mageflow_app.task(name="t.tagged", shared=False)
    def tagged(label: str, tag: str = "") -> str:
        return f"{label}:{tag}"

    mageflow_worker(concurrency=2)
    s = swarm(tasks=[tagged.s("x")], is_swarm_closed=True, app=mageflow_app)
    delay = {"countdown": 1.5} if when == "countdown" else {"eta": datetime.now(timezone.utc) + timedelta(seconds=1.5)}
    result = s.apply_async(kwargs={"tag": "t"}, **delay)

    # Then it exists at once, pending: nothing runs before the start
    assert result.progress().state == "pending"
    # And it starts after the delay (its recorded start is 1.5 s after its creation, on the Redis clock)
    # and finishes with its run kwargs applied
    assert result.get(timeout=20) == ["x:t"]
    meta = mageflow_redis.hmget(f"mageflow:swarm:{{{result.id}}}:meta", ["created_at", "started_at"])
    assert float(meta[1]) - float(meta[0]) >= 1.4

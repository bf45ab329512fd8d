"""R5 bad input: every refused call raises the documented error and writes nothing to the state Redis.

"Nothing written" is checked on the content of every ``mageflow:*`` key (the broker's and the result
backend's keys live in the same Redis and are left out).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from pydantic import ValidationError

from mageflow_celery import (
    MageflowError,
    NotSerializableError,
    SwarmClosedError,
    SwarmConfig,
    SwarmNotFoundError,
    SwarmResult,
    TooManyTasksError,
    install,
    swarm,
)
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.testing import redis_snapshot, wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def state(client: redis.Redis) -> dict[bytes, Any]:
    """Content of every state key (TTLs left out; the reaper's lock left out)."""
    return redis_snapshot(client, "mageflow:*")


@pytest.fixture
def unchanged(mageflow_redis: redis.Redis) -> Callable[[type[BaseException], Callable[[], Any]], BaseException]:
    """``unchanged(Error, call)``: ``call()`` raises ``Error`` and the state Redis is exactly as before."""

    def check(error: type[BaseException], call: Callable[[], Any]) -> BaseException:
        before = state(mageflow_redis)
        with pytest.raises(error) as info:
            call()
        assert state(mageflow_redis) == before
        return info.value

    return check


class Tasks:
    def __init__(self, app: Celery) -> None:
        @app.task(name="t.square", shared=False)
        def square(x: int) -> int:
            return x * x

        @app.task(name="t.fail", shared=False)
        def fail() -> None:
            raise ValueError("boom")

        @app.task(name="t.collect", shared=False)
        def collect(*args: Any) -> None:
            return None

        self.square, self.fail, self.collect = square, fail, collect


@pytest.fixture
def tasks(mageflow_app: Celery) -> Iterator[Tasks]:
    yield Tasks(mageflow_app)


# -- refused before anything exists ------------------------------------------------------------------


def test_invalid_config_values_are_refused_before_anything_is_written(
    mageflow_app: Celery, tasks: Tasks, unchanged: Any
) -> None:
    # Given invalid config values, when a swarm is built, then ValidationError and no state
    unchanged(ValidationError, lambda: SwarmConfig(max_concurrency=0))
    unchanged(
        ValidationError, lambda: swarm(tasks=[tasks.square.s(1)], config={"max_concurrency": 0}, app=mageflow_app)
    )
    unchanged(
        ValidationError,
        lambda: swarm(tasks=[tasks.square.s(1)], config={"stop_after_n_failures": -1}, app=mageflow_app),
    )


def test_arguments_the_serializer_cannot_encode_are_refused_and_nothing_is_written(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, tasks: Tasks, unchanged: Any
) -> None:
    # Given members, callbacks, bound kwargs or run kwargs holding something JSON cannot encode
    square, collect = tasks.square, tasks.collect
    mageflow_worker(concurrency=2)
    good = swarm(tasks=[square.s(2)], is_swarm_closed=True, app=mageflow_app)

    # When the swarm is built or applied, then NotSerializableError (a TypeError) and no state
    error = unchanged(NotSerializableError, lambda: swarm(tasks=[square.s(object())], app=mageflow_app))
    assert isinstance(error, TypeError)
    unchanged(
        NotSerializableError,
        lambda: swarm(tasks=[square.s(1)], success_callbacks=[collect.s(object())], app=mageflow_app).apply_async(),
    )
    unchanged(NotSerializableError, lambda: swarm(tasks=[square.s(1)], app=mageflow_app, x=object()).apply_async())
    unchanged(NotSerializableError, lambda: good.apply_async(kwargs={"when": object()}))

    # And the swarm refused at apply is whole afterwards: applied with good kwargs, it runs
    assert good.apply_async().get(timeout=20) == [4]


def test_adding_members_the_serializer_cannot_encode_changes_nothing(
    mageflow_app: Celery, tasks: Tasks, unchanged: Any
) -> None:
    # Given a started open swarm and a registered member
    s = swarm(tasks=[tasks.square.s(1)], app=mageflow_app)
    s.apply_async()
    member = s.add_task(tasks.square.s())

    # When a member or run kwargs cannot be encoded, then NotSerializableError and nothing changed
    unchanged(NotSerializableError, lambda: s.add_task(tasks.square.s(object())))
    unchanged(NotSerializableError, lambda: s.run_in_swarm(tasks.square.s(), kwargs={"x": object()}))
    unchanged(NotSerializableError, lambda: member.delay(x=object()))

    # And the registered member is still registered (it can run)
    member.delay(3)
    assert SwarmResult(s.id, app=mageflow_app).progress().registered == 0


def test_members_that_are_no_task_signature_or_canvas_are_refused_and_nothing_is_written(
    mageflow_app: Celery, tasks: Tasks, unchanged: Any
) -> None:
    # Given a swarm not created yet and a started one
    fresh = swarm(app=mageflow_app)
    started = swarm(app=mageflow_app)
    started.apply_async()

    # When something that is neither a task, a signature, a chain, a swarm, a group nor a chord is added,
    # then MageflowError and no state (not even the fresh swarm's)
    for bad in (42, object(), None, 3.5):
        unchanged(MageflowError, lambda bad=bad: fresh.add_task(bad))
        unchanged(MageflowError, lambda bad=bad: started.run_in_swarm(bad))
        unchanged(MageflowError, lambda bad=bad: started.run_in_swarm([tasks.square.s(1), bad]))


def test_unknown_task_names_are_refused_before_anything_is_written_with_strict_task_names(
    mageflow_redis_url: str, mageflow_redis: redis.Redis, unchanged: Any
) -> None:
    # Given an app installed with strict_task_names
    app = Celery("strict", set_as_current=False, broker=mageflow_redis_url, backend=mageflow_redis_url)
    install(app, redis_url=mageflow_redis_url, strict_task_names=True)
    s = swarm(app=app)
    s.apply_async()

    # When a member or a callback names a task the app does not know, then MageflowError and no state
    unchanged(MageflowError, lambda: swarm(tasks=["no.such.task"], app=app))
    unchanged(MageflowError, lambda: swarm(success_callbacks=["no.such.task"], app=app))
    unchanged(MageflowError, lambda: s.add_task("no.such.task"))
    app.close()


# -- unknown ids ---------------------------------------------------------------------------------------


def test_calls_on_an_unknown_swarm_id_raise_swarm_not_found_and_write_nothing(
    mageflow_app: Celery, unchanged: Any
) -> None:
    # Given an id no swarm has
    result = SwarmResult("no-such-swarm", app=mageflow_app)

    # When it is inspected or acted on, then SwarmNotFoundError (also a KeyError) and no state
    for call in (result.progress, result.pause, result.resume, result.cancel, result.close_swarm, result.revoke):
        error = unchanged(SwarmNotFoundError, call)
        assert isinstance(error, KeyError)

    # And, like Celery's AsyncResult, its state is PENDING
    assert result.state == "PENDING" and not result.ready()


# -- wrong state ---------------------------------------------------------------------------------------


def _closed(app: Celery, tasks: Tasks) -> Any:
    s = swarm(tasks=[tasks.square.s(1)], app=app)
    s.apply_async()
    s.add_task(tasks.square.s(2))  # registered, never run: keeps the closed swarm running
    s.close_swarm()
    return s


def _created_closed(app: Celery, tasks: Tasks) -> Any:
    s = swarm(tasks=[tasks.square.s(1)], is_swarm_closed=True, app=app)
    assert s.close_swarm() is False  # the first stateful call creates it, already closed
    return s


def _succeeded(app: Celery, tasks: Tasks) -> Any:
    s = swarm(tasks=[tasks.square.s(1)], is_swarm_closed=True, app=app)
    s.apply_async().get(timeout=20)
    return s


def _failed(app: Celery, tasks: Tasks) -> Any:
    s = swarm(tasks=[tasks.fail.s()], config=SwarmConfig(stop_after_n_failures=1), app=app)
    result = s.apply_async()
    wait_for(lambda: result.ready())
    return s


def _cancelled(app: Celery, tasks: Tasks) -> Any:
    s = swarm(tasks=[tasks.square.s(1)], app=app)
    s.add_task(tasks.square.s(2))
    s.cancel()
    return s


@pytest.mark.parametrize("make", [_closed, _created_closed, _succeeded, _failed, _cancelled])
def test_adding_to_a_closed_or_finished_swarm_raises_swarm_closed_and_writes_nothing(
    mageflow_app: Celery,
    mageflow_worker: WorkerFactory,
    mageflow_redis: redis.Redis,
    tasks: Tasks,
    unchanged: Any,
    make: Callable[[Celery, Tasks], Any],
) -> None:
    # Given a swarm that is closed, created closed, succeeded, failed or cancelled (and settled)
    mageflow_worker(concurrency=2)
    s = make(mageflow_app, tasks)
    store = runtime_for(mageflow_app).store

    def settled() -> bool:
        meta = store.meta(s.id)
        finished = meta.get("state") in (b"succeeded", b"failed", b"cancelled")
        # a finished swarm also leaves the index of unfinished swarms (which then may vanish) before it settles
        indexed = mageflow_redis.zscore("mageflow:swarms", s.id) is not None
        return (
            meta.get("fin") in (b"", b"done")
            and meta["running"] == meta["dispatched"] == b"0"
            and not (finished and indexed)
        )

    wait_for(settled, message="no member in flight and no finalizer at work")

    # When a member is added or run in it, then SwarmClosedError and nothing changed
    unchanged(SwarmClosedError, lambda: s.add_task(tasks.square.s(3)))
    unchanged(SwarmClosedError, lambda: s.run_in_swarm(tasks.square.s(3)))


def test_adding_beyond_max_task_allowed_raises_too_many_tasks_and_writes_nothing(
    mageflow_app: Celery, tasks: Tasks, unchanged: Any
) -> None:
    # Given a swarm that holds max_task_allowed members, and one more allowed than given
    full = swarm(tasks=[tasks.square.s(1)], config=SwarmConfig(max_task_allowed=1), app=mageflow_app)
    full.apply_async()
    roomy = swarm(config=SwarmConfig(max_task_allowed=1), app=mageflow_app)
    roomy.add_task(tasks.square.s(1))

    # When one more is added, then TooManyTasksError (a SwarmClosedError) and nothing changed
    for s in (full, roomy):
        error = unchanged(TooManyTasksError, lambda s=s: s.add_task(tasks.square.s(2)))
        assert isinstance(error, SwarmClosedError)
        unchanged(TooManyTasksError, lambda s=s: s.run_in_swarm(tasks.square.s(2)))


def test_running_a_member_twice_raises_and_writes_nothing(mageflow_app: Celery, tasks: Tasks, unchanged: Any) -> None:
    # Given a queued member of a swarm not started yet
    s = swarm(app=mageflow_app)
    member = s.add_task(tasks.square.s(2))
    member.delay()

    # When it is run again, then MageflowError and nothing changed
    unchanged(MageflowError, member.delay)
    unchanged(MageflowError, lambda: member.apply_async(kwargs={"x": 3}))


# -- one signature where a list is expected, callbacks and kwargs that cannot be encoded (D6, R5) -----------


@pytest.mark.parametrize("field", ["tasks", "success_callbacks", "error_callbacks"])
def test_one_signature_task_or_name_where_a_list_is_expected_raises_type_error(
    field: str, mageflow_app: Celery, tasks: Tasks, unchanged: Any
) -> None:
    # Given one signature, one task and one task name passed where swarm() expects a list
    for single in (tasks.square.s(2), tasks.square, "t.square"):
        # Then swarm() raises TypeError saying so, and nothing is written
        error = unchanged(TypeError, lambda single=single: swarm(app=mageflow_app, **{field: single}))
        assert f"swarm({field}=...) takes a list" in str(error)


def test_a_callback_or_bound_kwarg_the_serializer_cannot_encode_is_refused_at_swarm_and_add_writes_nothing(
    mageflow_app: Celery, tasks: Tasks, unchanged: Any
) -> None:
    # Given callbacks and bound kwargs that the JSON serializer cannot encode
    # Then swarm() refuses them at once, so no add_task can create state for a swarm that cannot start
    unchanged(
        NotSerializableError, lambda: swarm(tasks=[tasks.square.s(1)], success_callbacks=[tasks.collect.s(object())])
    )
    unchanged(NotSerializableError, lambda: swarm(tasks=[tasks.square.s(1)], error_callbacks=[tasks.collect.s({1j})]))
    unchanged(NotSerializableError, lambda: swarm(tasks=[tasks.square.s(1)], app=mageflow_app, when=object()))

"""S6 success and S7 failure threshold: callbacks published once, with the results or a failure summary.

Callbacks record each call in Redis. ``settle_swarm`` sends a barrier task after the swarm's finalizer
released its claim (every callback is published by then); on a worker with free slots, messages
published before the barrier start before it, so a duplicate callback would be recorded by then, and the
tests compare the whole list of calls.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery, Task
from celery.result import AsyncResult

from mageflow_celery import ReturnValue, SwarmConfig, SwarmFailedError, SwarmResult, swarm
from mageflow_celery.keys import member_task_id
from mageflow_celery.testing import settle_swarm, wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]

CALLS = "test:callback-calls"
STARTED = "test:started"
FINISHED = "test:finished"


class Tasks:
    """The tasks of these tests, defined on the test's app."""

    def __init__(self, app: Celery, client: redis.Redis) -> None:
        self.client = client
        #: Members block on gates through this client: its socket timeout is longer than the BLPOP timeout.
        self.gate_client = gate_client = redis.Redis.from_url(app.conf.broker_url, socket_timeout=30)

        @app.task(name="t.value", shared=False)
        def value(x: Any) -> Any:
            client.rpush(STARTED, json.dumps(x))
            client.rpush(FINISHED, json.dumps(x))
            return x

        @app.task(name="t.fail", shared=False)
        def fail(label: Any, message: str = "boom") -> None:
            client.rpush(STARTED, json.dumps(label))
            raise ValueError(message)

        @app.task(name="t.gated", shared=False)
        def gated(label: str) -> str:
            client.rpush(STARTED, json.dumps(label))
            popped = gate_client.blpop([f"test:gate:{label}"], timeout=20)
            client.rpush(FINISHED, json.dumps(label))
            if popped is None or popped[1] == b"fail":
                raise ValueError(f"{label} failed")
            return label

        @app.task(name="t.callback", shared=False, bind=True)
        def callback(self: Task, *args: Any, **kwargs: Any) -> None:
            client.rpush(CALLS, json.dumps({"id": self.request.id, "args": args, "kwargs": kwargs}))

        @app.task(name="t.rv_callback", shared=False, bind=True)
        def rv_callback(self: Task, tag: str, results: ReturnValue[list[int]]) -> None:
            client.rpush(CALLS, json.dumps({"id": self.request.id, "args": [tag], "kwargs": {"results": results}}))

        self.value, self.fail, self.gated, self.callback = value, fail, gated, callback
        self.rv_callback = rv_callback

    def calls(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.client.lrange(CALLS, 0, -1)]

    def started(self) -> list[Any]:
        return [json.loads(raw) for raw in self.client.lrange(STARTED, 0, -1)]

    def finished(self) -> list[Any]:
        return [json.loads(raw) for raw in self.client.lrange(FINISHED, 0, -1)]


@pytest.fixture
def tasks(mageflow_app: Celery, mageflow_redis: redis.Redis) -> Iterator[Tasks]:
    t = Tasks(mageflow_app, mageflow_redis)
    yield t
    for label in "abcdefgh":  # never leave a gated member blocked
        mageflow_redis.rpush(f"test:gate:{label}", "ok")
    t.gate_client.close()


def _settled_calls(app: Celery, tasks: Tasks, swarm_id: str) -> list[dict[str, Any]]:
    """Every callback call once the swarm's finalizer is done and the worker ran all it published: a
    duplicate would be among them (compare the whole list, never "at least n")."""
    settle_swarm(swarm_id, app)
    return tasks.calls()


# -- S6 success ------------------------------------------------------------------------------------------


def test_success_callbacks_run_once_with_the_succeeded_results_in_member_order(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, tasks: Tasks, mageflow_redis: redis.Redis
) -> None:
    # Given a swarm of gated members, members added after the start, and three success callbacks: with an
    # own arg, immutable (.si()), and bare; and an error callback
    mageflow_worker(concurrency=8)
    s = swarm(
        tasks=[tasks.gated.s(label) for label in "abc"],
        success_callbacks=[tasks.callback.s("own"), tasks.callback.si("immutable"), tasks.callback.s()],
        error_callbacks=[tasks.callback.s("error")],
        config=SwarmConfig(max_concurrency=8),
        app=mageflow_app,
    )
    result = s.apply_async()
    s.add_task(tasks.gated.s("d")).delay()
    s.run_in_swarm(tasks.gated.s("e"))
    s.close_swarm()
    wait_for(lambda: sorted(tasks.started()) == list("abcde"), message="all five members running")

    # When they finish in reverse member order, one at a time
    for label in "edcba":
        mageflow_redis.rpush(f"test:gate:{label}", "ok")
        wait_for(lambda label=label: label in tasks.finished(), message=f"member {label} to finish")
    assert tasks.finished() == list("edcba")
    assert result.get(timeout=20) == list("abcde")

    # Then each success callback ran exactly once, with its deterministic id: the result list (in member
    # order) prepended to its args, nothing extra for the immutable one; the error callback never ran
    sid = result.id
    calls = sorted(_settled_calls(mageflow_app, tasks, sid), key=lambda c: c["id"])
    assert calls == [
        {"id": f"{sid}~s0", "args": [list("abcde"), "own"], "kwargs": {}},
        {"id": f"{sid}~s1", "args": ["immutable"], "kwargs": {}},
        {"id": f"{sid}~s2", "args": [list("abcde")], "kwargs": {}},
    ]
    assert AsyncResult(f"{sid}~e0", app=mageflow_app).state == "PENDING"


def test_an_empty_closed_swarm_succeeds_and_its_callbacks_receive_an_empty_list(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, tasks: Tasks
) -> None:
    # Given a closed swarm without members
    mageflow_worker(concurrency=2)
    s = swarm(tasks=[], success_callbacks=[tasks.callback.s()], is_swarm_closed=True, app=mageflow_app)

    # When it starts
    result = s.apply_async()

    # Then it succeeds at once and its callback receives []
    assert result.get(timeout=20) == []
    assert _settled_calls(mageflow_app, tasks, result.id) == [{"id": f"{result.id}~s0", "args": [[]], "kwargs": {}}]


@pytest.mark.parametrize(("mode", "expected"), [("succeeded", [0, 2]), ("aligned", [0, None, 2, None])])
def test_without_a_threshold_a_swarm_with_failures_succeeds_with_results_of_the_succeeded_or_aligned(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, tasks: Tasks, mode: str, expected: list[Any]
) -> None:
    # Given a closed swarm with failing members at indices 1 and 3, and no failure threshold
    mageflow_worker(concurrency=4)
    s = swarm(
        tasks=[tasks.value.s(0), tasks.fail.s(1), tasks.value.s(2), tasks.fail.s(3)],
        success_callbacks=[tasks.callback.s()],
        error_callbacks=[tasks.callback.s("error")],
        config=SwarmConfig(results=mode),  # type: ignore[arg-type]
        is_swarm_closed=True,
        app=mageflow_app,
    )

    # When it finishes
    result = s.apply_async()

    # Then it succeeded, and the success callback got the results as the mode says
    assert result.get(timeout=20) == expected
    calls = _settled_calls(mageflow_app, tasks, result.id)
    assert calls == [{"id": f"{result.id}~s0", "args": [expected], "kwargs": {}}]
    p = result.progress()
    assert (p.state, p.succeeded, p.failed) == ("succeeded", 2, 2)


def test_a_member_whose_task_the_worker_does_not_know_counts_as_failed(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, tasks: Tasks
) -> None:
    # Given a closed swarm with a member naming a task no worker has
    mageflow_worker(concurrency=2)
    s = swarm(tasks=[tasks.value.s(1), "no.such.task"], is_swarm_closed=True, app=mageflow_app)

    # When it runs, then it finishes with that member failed
    result = s.apply_async()
    assert result.get(timeout=20) == [1]
    p = result.progress()
    assert (p.succeeded, p.failed) == (1, 1)


# -- S7 failure threshold ------------------------------------------------------------------------------


def test_reaching_the_failure_threshold_fails_an_open_swarm_at_once_and_cancels_what_did_not_start(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, tasks: Tasks, mageflow_redis: redis.Redis
) -> None:
    # Given an open swarm failing at 2 failures, limited to 2, with 5 gated members and one registered member
    mageflow_worker(concurrency=4)
    s = swarm(
        tasks=[tasks.gated.s(label) for label in "abcde"],
        success_callbacks=[tasks.callback.s("success")],
        error_callbacks=[tasks.callback.s(), tasks.callback.si("immutable")],
        config=SwarmConfig(max_concurrency=2, stop_after_n_failures=2),
        app=mageflow_app,
    )
    result = s.apply_async()
    s.add_task(tasks.value.s("registered"))
    wait_for(lambda: result.progress().running == 2)

    # When the first member fails, the next one starts, and the second member fails
    mageflow_redis.rpush("test:gate:a", "fail")
    wait_for(lambda: result.progress().running == 2 and result.progress().failed == 1)
    mageflow_redis.rpush("test:gate:b", "fail")

    # Then the swarm failed at once, though open: the queued and registered members were cancelled
    with pytest.raises(SwarmFailedError) as info:
        result.get(timeout=20)
    p = result.progress()
    assert (p.state, p.closed, p.failed, p.cancelled, p.queued, p.registered) == ("failed", False, 2, 3, 0, 0)
    assert result.state == "FAILURE" and result.failed()

    # And the error callbacks ran once with the summary prepended (nothing for .si()); success never ran
    mageflow_redis.rpush("test:gate:c", "ok")  # the running member finishes
    wait_for(lambda: result.progress().running == 0)
    sid = result.id
    calls = sorted(_settled_calls(mageflow_app, tasks, sid), key=lambda c: c["id"])
    assert [c["id"] for c in calls] == [f"{sid}~e0", f"{sid}~e1"]
    assert calls[1]["args"] == ["immutable"]
    [summary] = calls[0]["args"]
    assert summary["swarm_id"] == sid
    assert (summary["total"], summary["failed"], summary["cancelled"], summary["succeeded"]) == (6, 2, 3, 0)
    assert (summary["running"], summary["queued"], summary["registered"]) == (1, 0, 0)
    assert summary["truncated"] is False
    assert [(f["task_id"], f["index"], f["exc_type"], f["message"]) for f in summary["failures"]] == [
        (member_task_id(sid, 0), 0, "ValueError", "a failed"),
        (member_task_id(sid, 1), 1, "ValueError", "b failed"),
    ]
    assert info.value.summary["failures"] == summary["failures"]
    assert info.value.summary["swarm_id"] == sid

    # And the cancelled members never started
    assert sorted(tasks.started()) == ["a", "b", "c"]
    assert AsyncResult(f"{sid}~s0", app=mageflow_app).state == "PENDING"
    assert result.progress().succeeded == 1, "the member running at the failure finished and was counted"


def test_with_revoke_on_failure_running_members_are_stopped_when_the_swarm_fails(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, tasks: Tasks, mageflow_redis: redis.Redis
) -> None:
    # Given, on a prefork worker, a swarm failing at its first failure with revoke_on_failure, two members running
    mageflow_worker(pool="prefork", concurrency=2)
    s = swarm(
        tasks=[tasks.gated.s("a"), tasks.gated.s("b")],
        config=SwarmConfig(max_concurrency=2, stop_after_n_failures=1, revoke_on_failure=True),
        is_swarm_closed=True,
        app=mageflow_app,
    )
    result = s.apply_async()
    wait_for(lambda: sorted(tasks.started()) == ["a", "b"])

    # When one of them fails
    mageflow_redis.rpush("test:gate:b", "fail")

    # Then the swarm failed and the other one was revoked while running (long before its gate times out),
    # releasing its token
    with pytest.raises(SwarmFailedError):
        result.get(timeout=20)
    wait_for(lambda: AsyncResult(member_task_id(result.id, 0), app=mageflow_app).state == "REVOKED", timeout_s=10)
    p = wait_for(lambda: (p := result.progress()).running == 0 and p, timeout_s=10)
    assert (p.state, p.succeeded, p.failed + p.cancelled) == ("failed", 0, 2)


def test_the_failure_summary_keeps_at_most_summary_max_failures_with_messages_cut_to_1_kib(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, tasks: Tasks
) -> None:
    # Given a closed swarm failing at 3 failures, keeping 2, whose failing members raise long messages
    mageflow_worker(concurrency=4)
    s = swarm(
        tasks=[tasks.fail.s(i, message="x" * 5000) for i in range(3)] + [tasks.value.s(9)],
        error_callbacks=[tasks.callback.s()],
        config=SwarmConfig(max_concurrency=1, stop_after_n_failures=3, summary_max_failures=2),
        is_swarm_closed=True,
        app=mageflow_app,
    )

    # When it runs
    result = s.apply_async()
    with pytest.raises(SwarmFailedError) as info:
        result.get(timeout=20)

    # Then the summary counts every failure but lists 2, says it is truncated, and cuts messages to 1 KiB
    [call] = _settled_calls(mageflow_app, tasks, result.id)
    [summary] = call["args"]
    assert (summary["failed"], summary["cancelled"], summary["truncated"]) == (3, 1, True)
    assert [f["index"] for f in summary["failures"]] == [0, 1]
    assert all(len(f["message"]) == 1024 for f in summary["failures"])
    assert info.value.summary == summary


def test_swarm_failed_error_rebuilds_from_its_args_as_result_backends_do(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, tasks: Tasks
) -> None:
    # Given a swarm that failed
    mageflow_worker(concurrency=2)
    s = swarm(
        tasks=[tasks.fail.s(0)],
        config=SwarmConfig(stop_after_n_failures=1),
        is_swarm_closed=True,
        app=mageflow_app,
    )
    result = s.apply_async()
    with pytest.raises(SwarmFailedError) as info:
        result.get(timeout=20)

    # When the error is rebuilt from its args (as a result backend does), or read by id from another handle
    rebuilt = type(info.value)(*info.value.args)

    # Then it carries the same summary
    assert rebuilt.summary == info.value.summary
    assert rebuilt.summary["failed"] == 1
    with pytest.raises(SwarmFailedError):
        SwarmResult(result.id, app=mageflow_app).get(timeout=5)
    assert SwarmResult(result.id, app=mageflow_app).get(timeout=5, propagate=False)["failed"] == 1


def test_a_callback_with_a_return_value_parameter_receives_the_results_there(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, tasks: Tasks
) -> None:
    # Given a success callback whose parameter `results` is annotated ReturnValue[list[int]]
    mageflow_worker(concurrency=2)
    s = swarm(
        tasks=[tasks.value.s(1), tasks.value.s(2)],
        success_callbacks=[tasks.rv_callback.s("tag")],
        is_swarm_closed=True,
        app=mageflow_app,
    )

    # When the swarm succeeds, then the list went into that parameter, not in front of the args
    result = s.apply_async()
    assert result.get(timeout=20) == [1, 2]
    calls = _settled_calls(mageflow_app, tasks, result.id)
    assert calls == [{"id": f"{result.id}~s0", "args": ["tag"], "kwargs": {"results": [1, 2]}}]


def test_get_refuses_to_block_inside_a_task_like_async_result_get(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, tasks: Tasks
) -> None:
    # Given a finished swarm, and a task that waits for it, on a prefork worker (whose children forbid
    # blocking joins; the in-process threads worker allows them for tests)
    @mageflow_app.task(name="t.waiter", shared=False)
    def waiter(swarm_id: str) -> str:
        try:
            SwarmResult(swarm_id, app=mageflow_app).get(timeout=1)
        except RuntimeError as exc:
            return "refused" if "Never call result.get() within a task" in str(exc) else f"other: {exc}"
        return "blocked"

    mageflow_worker(pool="prefork", concurrency=1)
    result = swarm(tasks=[tasks.value.s(1)], is_swarm_closed=True, app=mageflow_app).apply_async()
    assert result.get(timeout=20) == [1]

    # When the task calls get(), then it is refused (RuntimeError), as Celery refuses AsyncResult.get()
    assert waiter.delay(result.id).get(timeout=20) == "refused"


def test_callbacks_given_as_task_names_and_task_objects_are_called(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, tasks: Tasks
) -> None:
    # Given success callbacks given as a task name and as a task object
    mageflow_worker(concurrency=2)
    s = swarm(
        tasks=[tasks.value.s(5)],
        success_callbacks=["t.callback", tasks.callback],
        is_swarm_closed=True,
        app=mageflow_app,
    )

    # When the swarm succeeds, then both received the result list
    result = s.apply_async()
    assert result.get(timeout=20) == [5]
    calls = sorted(_settled_calls(mageflow_app, tasks, result.id), key=lambda c: c["id"])
    assert [c["args"] for c in calls] == [[[5]], [[5]]]

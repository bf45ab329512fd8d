"""S9 cancel against a real Redis and embedded workers (threads, and prefork for terminate)."""

from __future__ import annotations

import os

import pytest
from celery import states
from celery.result import AsyncResult
from celery.worker import state as worker_state
from opskit import Ops

from mageflow_celery import (
    SwarmCancelledError,
    SwarmClosedError,
    SwarmConfig,
    SwarmNotFoundError,
    SwarmResult,
    swarm,
)
from mageflow_celery.keys import callback_task_id, member_task_id
from mageflow_celery.testing import process_running, wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def test_cancel_never_runs_queued_members_lets_running_ones_finish_and_runs_no_callback(
    ops: Ops, mageflow_worker: WorkerFactory
) -> None:
    # Given an open swarm (limit 2) with two running members, two queued ones and one registered one
    mageflow_worker(concurrency=4)
    s = swarm(
        tasks=[ops.gated.s(i) for i in range(4)],
        success_callbacks=[ops.callback.s()],
        error_callbacks=[ops.errback.s()],
        config=SwarmConfig(max_concurrency=2),
        app=ops.app,
    )
    res = s.apply_async()
    registered = s.add_task(ops.gated.s(4))
    ops.wait_started(0, 1)

    # When it is cancelled (without terminate)
    assert res.cancel() is True
    assert res.cancel() is False  # idempotent
    for index in (0, 1):  # the running members were revoked (the worker flagged their ids)
        wait_for(lambda i=index: member_task_id(res.id, i) in worker_state.revoked, message=f"revoke of member {index}")

    # Then queued and registered members are cancelled at once; the running ones still hold their token
    p = res.progress()
    assert (p.state, p.cancelled, p.queued, p.registered, p.running) == ("cancelled", 3, 0, 0, 2)
    assert p.finished_at is not None
    assert res.state == states.REVOKED and res.ready() and not res.successful()
    with pytest.raises(SwarmCancelledError):
        res.get(timeout=5)

    # And nothing can be added or run any more, and lifecycle calls change nothing
    with pytest.raises(SwarmClosedError):
        s.add_task(ops.gated.s(5))
    with pytest.raises(SwarmClosedError):
        s.run_in_swarm(ops.gated.s(6))
    with pytest.raises(SwarmClosedError):
        registered.delay()
    assert (res.pause(), res.resume(), res.close_swarm()) == (False, False, False)

    # When the running members are released
    ops.open_all()
    wait_for(lambda: res.progress().running == 0, message="the running members to report")

    # Then they finished (revoke without terminate lets an executing member finish), nothing else ran
    p = res.progress()
    assert (p.succeeded, p.cancelled, p.done, p.total) == (2, 3, 5, 5)
    ops.roundtrip()
    assert sorted(ops.started()) == [0, 1] and sorted(ops.ended()) == [0, 1]
    assert "callback" not in ops.events() and "errback" not in ops.events()
    for cb_id in (callback_task_id(res.id, "s", 0), callback_task_id(res.id, "e", 0)):
        assert AsyncResult(cb_id, app=ops.app).state == states.PENDING
    with pytest.raises(SwarmCancelledError):
        res.get(timeout=5)


def test_cancel_drops_a_dispatched_member_that_a_worker_receives_later(
    ops: Ops, mageflow_worker: WorkerFactory
) -> None:
    # Given a started swarm whose admitted members no worker has received yet (no worker is running)
    s = swarm(tasks=[ops.gated.s(i) for i in range(3)], config=SwarmConfig(max_concurrency=2), app=ops.app)
    res = s.apply_async()
    assert res.progress().dispatched == 2

    # When it is cancelled and a worker then starts
    assert res.cancel() is True
    mageflow_worker(concurrency=2)

    # Then the dispatched members are dropped (REVOKED) and never run
    wait_for(lambda: res.progress().dispatched == 0, message="the dispatched members to be dropped")
    p = res.progress()
    assert (p.state, p.cancelled, p.running, p.succeeded, p.failed) == ("cancelled", 3, 0, 0, 0)
    ops.roundtrip()
    assert ops.started() == []
    assert AsyncResult(member_task_id(res.id, 0), app=ops.app).state == states.REVOKED


def test_cancel_with_terminate_kills_an_executing_member_on_a_prefork_worker(
    ops: Ops, mageflow_worker: WorkerFactory
) -> None:
    # Given a swarm (limit 1) whose first member executes in a prefork child
    mageflow_worker(pool="prefork", concurrency=2)
    s = swarm(
        tasks=[ops.gated.s(i) for i in range(3)],
        success_callbacks=[ops.callback.s()],
        config=SwarmConfig(max_concurrency=1),
        is_swarm_closed=True,
        app=ops.app,
    )
    res = s.apply_async()
    pid = wait_for(lambda: ops.pid(0), message="member 0 to start in a child")
    assert pid != os.getpid()

    # When the swarm is cancelled with terminate=True
    assert res.cancel(terminate=True) is True

    # Then the child executing member 0 is killed and the member is recorded cancelled (REVOKED)
    wait_for(lambda: not process_running(pid), timeout_s=20, message=f"child {pid} to be terminated")
    wait_for(lambda: res.progress().running == 0, message="member 0 to be reported")
    p = res.progress()
    assert (p.state, p.cancelled, p.succeeded, p.failed, p.done) == ("cancelled", 3, 0, 0, 3)
    assert AsyncResult(member_task_id(res.id, 0), app=ops.app).state == states.REVOKED
    ops.open_all()
    ops.roundtrip()
    assert ops.started() == [0] and ops.ended() == []
    assert "callback" not in ops.events()
    with pytest.raises(SwarmCancelledError):
        res.get(timeout=5)


@pytest.mark.parametrize("how", ["cancel(terminate=True)", "revoke_on_failure"])
def test_terminating_a_chain_member_kills_the_step_that_is_executing_and_later_steps_never_run(
    how: str, ops: Ops, mageflow_worker: WorkerFactory
) -> None:
    # Given a chain member whose first step executes in a prefork child (its second step waits for it),
    # and a second member that fails on demand
    mageflow_worker(pool="prefork", concurrency=2)
    chained = ops.gated.s(0) | ops.gated.si(9)
    s = swarm(
        tasks=[chained, ops.gated.s(1, fail=True)],
        config=SwarmConfig(max_concurrency=2, stop_after_n_failures=1, revoke_on_failure=True),
        is_swarm_closed=True,
        app=ops.app,
    )
    res = s.apply_async()
    pid = wait_for(lambda: ops.pid(0), message="the chain's first step to start in a child")
    ops.wait_started(1)

    # When the swarm is cancelled with terminate=True, or fails with revoke_on_failure
    if how == "revoke_on_failure":
        ops.open(1)
    else:
        assert res.cancel(terminate=True) is True

    # Then the child executing the chain's running step is killed, and its later step never runs
    wait_for(lambda: not process_running(pid), timeout_s=20, message=f"child {pid} to be terminated")
    wait_for(lambda: res.progress().running + res.progress().dispatched == 0, message="the members to end")
    ops.open_all()
    ops.roundtrip()
    assert 9 not in ops.started() and 0 not in ops.ended()
    assert res.progress().state == ("failed" if how == "revoke_on_failure" else "cancelled")


def test_cancel_with_terminate_reaches_running_members_of_nested_swarms(
    ops: Ops, mageflow_worker: WorkerFactory
) -> None:
    # Given an outer swarm whose nested swarm's member executes in a prefork child
    mageflow_worker(pool="prefork", concurrency=2)
    nested = swarm(tasks=[ops.gated.s(0), ops.gated.s(1)], config={"max_concurrency": 1}, is_swarm_closed=True)
    res = swarm(tasks=[nested], is_swarm_closed=True, app=ops.app).apply_async()
    pid = wait_for(lambda: ops.pid(0), message="the nested member to start in a child")

    # When the outer swarm is cancelled with terminate=True
    assert res.cancel(terminate=True) is True

    # Then the child running the nested member is killed, the nested swarm is cancelled, its other member
    # never runs
    wait_for(lambda: not process_running(pid), timeout_s=20, message=f"child {pid} to be terminated")
    child = SwarmResult(member_task_id(res.id, 0), app=ops.app)
    wait_for(lambda: child.progress().state == "cancelled", message="the nested swarm to be cancelled")
    ops.open_all()
    ops.roundtrip()
    assert ops.started() == [0] and ops.ended() == []
    assert res.progress().state == "cancelled"


def test_lifecycle_calls_return_whether_they_changed_something(ops: Ops) -> None:
    # Given a created, not started swarm
    s = swarm(tasks=[ops.gated.s(0)], app=ops.app)
    res = SwarmResult(s.freeze().id, app=ops.app)
    s.add_task(ops.gated.s(1))

    # Then each call changes the state once, and a second identical call returns False
    assert (s.pause(), s.pause()) == (True, False)
    assert res.progress().paused is True
    assert (s.resume(), s.resume()) == (True, False)
    assert res.progress().paused is False
    assert (s.close_swarm(), s.close_swarm()) == (True, False)
    assert res.progress().closed is True
    assert (s.cancel(), s.cancel()) == (True, False)
    p = res.progress()
    assert (p.state, p.cancelled, p.registered) == ("cancelled", 2, 0)
    assert (s.pause(), s.resume(), s.close_swarm(), res.revoke()) == (False, False, False, False)


def test_lifecycle_calls_on_an_unknown_id_raise_swarm_not_found(ops: Ops) -> None:
    res = SwarmResult("no-such-swarm", app=ops.app)
    for call in (res.pause, res.resume, res.cancel, res.close_swarm, res.progress):
        with pytest.raises(SwarmNotFoundError):
            call()
    assert res.state == states.PENDING  # like AsyncResult for an unknown id

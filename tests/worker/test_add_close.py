"""S5 add and close: growing a running swarm, ``max_task_allowed``, closing, and members run once."""

from __future__ import annotations

import pytest
from celery import Celery, Task

from mageflow_celery import (
    MageflowError,
    SwarmClosedError,
    SwarmConfig,
    SwarmResult,
    TooManyTasksError,
    swarm,
)
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def _square(app: Celery) -> Task:
    @app.task(name="t.square", shared=False)
    def square(x: int) -> int:
        return x * x

    return square


def test_members_added_while_the_swarm_runs_are_run_and_their_results_kept_in_add_order(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given a running open swarm with one member
    square = _square(mageflow_app)
    mageflow_worker(concurrency=4)
    s = swarm(tasks=[square.s(1)], config=SwarmConfig(max_concurrency=2), app=mageflow_app)
    result = s.apply_async()

    # When members are added (queued by their handle, or at once) and the swarm is closed
    for x in (2, 3):
        s.add_task(square.s(x)).delay()
    s.run_in_swarm(square.s(4))
    s.close_swarm()

    # Then every member ran, and the results are in add order
    assert result.get(timeout=20) == [1, 4, 9, 16]
    assert result.progress().total == 4


def test_reaching_max_task_allowed_closes_the_swarm_and_adding_beyond_raises_too_many_tasks(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given a started open swarm of 2 members allowing 3
    square = _square(mageflow_app)
    mageflow_worker(concurrency=4)
    s = swarm(tasks=[square.s(1), square.s(2)], config=SwarmConfig(max_task_allowed=3), app=mageflow_app)
    result = s.apply_async()
    assert result.progress().closed is False

    # When a third member is added
    third = s.add_task(square.s(3))

    # Then the swarm is closed, and a fourth add (registered or run at once) raises TooManyTasksError
    assert result.progress().closed is True
    with pytest.raises(TooManyTasksError):
        s.add_task(square.s(4))
    with pytest.raises(TooManyTasksError):
        s.run_in_swarm(square.s(4))

    # And the third member, added before the close, may still run; then the swarm finishes on its own
    third.delay()
    assert result.get(timeout=20) == [1, 4, 9]
    assert result.progress().total == 3


def test_a_swarm_given_max_task_allowed_tasks_is_closed_from_the_start(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given a swarm of exactly max_task_allowed members, not explicitly closed
    square = _square(mageflow_app)
    mageflow_worker(concurrency=4)
    s = swarm(tasks=[square.s(1), square.s(2)], config=SwarmConfig(max_task_allowed=2), app=mageflow_app)

    # When it starts, then it is closed, refuses adds, and finishes without close_swarm()
    result = s.apply_async()
    with pytest.raises(TooManyTasksError):
        s.add_task(square.s(3))
    assert result.get(timeout=20) == [1, 4]


def test_is_swarm_closed_creates_a_closed_swarm(mageflow_app: Celery, mageflow_worker: WorkerFactory) -> None:
    # Given a swarm created closed
    square = _square(mageflow_app)
    mageflow_worker(concurrency=4)
    s = swarm(tasks=[square.s(1), square.s(2)], is_swarm_closed=True, app=mageflow_app)

    # When it starts, then it is closed, refuses adds, and finishes once its members did
    result = s.apply_async()
    assert result.progress().closed is True
    with pytest.raises(SwarmClosedError):
        s.add_task(square.s(3))
    with pytest.raises(SwarmClosedError):
        s.run_in_swarm(square.s(3))
    assert result.get(timeout=20) == [1, 4]
    assert s.close_swarm() is False


def test_closing_returns_true_once(mageflow_app: Celery, mageflow_worker: WorkerFactory) -> None:
    # Given a started open swarm with a member that ran
    square = _square(mageflow_app)
    mageflow_worker(concurrency=2)
    s = swarm(tasks=[square.s(3)], app=mageflow_app)
    result = s.apply_async()
    wait_for(lambda: result.progress().succeeded == 1)

    # When it is closed twice (by the signature, then by id)
    # Then only the first call changed something, and the swarm finished
    assert s.close_swarm() is True
    assert SwarmResult(s.id, app=mageflow_app).close_swarm() is False
    assert result.get(timeout=20) == [9]


def test_running_a_member_twice_raises(mageflow_app: Celery, mageflow_worker: WorkerFactory) -> None:
    # Given a started swarm with a member added and run, and one added with run_in_swarm
    square = _square(mageflow_app)
    mageflow_worker(concurrency=2)
    s = swarm(app=mageflow_app)
    result = s.apply_async()
    member = s.add_task(square.s(2))
    member.delay()
    at_once = s.run_in_swarm(square.s(3))

    # When either is run again, then MageflowError is raised and each ran once
    with pytest.raises(MageflowError):
        member.delay()
    with pytest.raises(MageflowError):
        at_once.apply_async()
    s.close_swarm()
    assert result.get(timeout=20) == [4, 9]
    assert result.progress().total == 2


def test_a_registered_member_that_never_runs_keeps_a_closed_swarm_from_finishing(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given a started swarm with one member, one more registered (not run), then closed
    square = _square(mageflow_app)
    mageflow_worker(concurrency=2)
    s = swarm(tasks=[square.s(1)], app=mageflow_app)
    result = s.apply_async()
    waiting = s.add_task(square.s(2))
    assert s.close_swarm() is True

    # When the first member finished
    p = wait_for(lambda: (p := result.progress()).succeeded == 1 and p)

    # Then the swarm is still running, closed, and shows the member it waits for as registered
    assert (p.state, p.closed, p.registered, p.queued, p.running, p.dispatched) == ("running", True, 1, 0, 0, 0)
    assert not result.ready()

    # When the registered member is run (allowed after the close: it was added before), the swarm finishes
    waiting.delay()
    assert result.get(timeout=20) == [1, 4]

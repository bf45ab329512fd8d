"""N5: a swarm created inside a task without an explicit id gets an id derived from the task's id and the
order of creation, so a retried or redelivered task continues the swarm it created instead of starting
another (MageFlow's durable-retry cache, for Celery)."""

from __future__ import annotations

import pytest
from faultkit import Faults, finish, quiesce

from mageflow_celery.engine.runtime import runtime_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def _all_swarm_ids(app: object) -> list[str]:
    """Every swarm the index knows, unfinished or finished."""
    store = runtime_for(app).store  # type: ignore[arg-type]
    return [sid for finished in (False, True) for sid, _ in store.indexed(["state"], finished=finished)]


def _created(faults: Faults, task_id: str) -> list[str]:
    return [x.decode() for x in faults.probe.lrange(f"faults:created:{task_id}", 0, -1)]


def test_a_task_that_creates_a_swarm_and_retries_twice_creates_exactly_one_swarm(faults: Faults) -> None:
    # Given a task that creates and starts a swarm, then retries (twice) before returning
    app = faults.app()
    faults.worker("r", concurrency=2)

    # When it runs to its end
    result = app.signature("faults.create_then_retry").apply_async()
    swarm_id = result.get(timeout=60)

    # Then its three attempts created the same swarm: one swarm exists, its member ran once
    assert _created(faults, result.id) == [swarm_id] * 3
    finish(faults, app, swarm_id)
    quiesce(app, faults.probe)
    assert faults.starts(swarm_id) == [0]
    assert _all_swarm_ids(app) == [swarm_id]


def test_an_acks_late_task_killed_after_creating_a_swarm_is_redelivered_and_continues_the_same_swarm(
    faults: Faults,
) -> None:
    # Given an acks_late task (reject_on_worker_lost) that creates and starts a swarm, then its pool
    # process dies the first time
    app = faults.app()
    faults.worker("k", concurrency=2)

    # When the broker redelivers it and it runs again to its end
    result = app.signature("faults.create_then_die").apply_async()
    swarm_id = result.get(timeout=60)

    # Then both runs created the same swarm, which finished with its member run once
    assert _created(faults, result.id) == [swarm_id, swarm_id]
    finish(faults, app, swarm_id)
    quiesce(app, faults.probe)
    assert faults.starts(swarm_id) == [0]
    assert _all_swarm_ids(app) == [swarm_id]

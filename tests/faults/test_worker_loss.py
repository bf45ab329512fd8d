"""R3: worker loss. Real prefork workers in subprocesses; pool children and whole workers are SIGKILLed.

Each test checks that every member is counted exactly once, that the callbacks run exactly once, and
that the concurrency limit holds: for the tokens (sampled in Redis) and for the executions the tasks
recorded themselves.
"""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery
from faultkit import RECOVERY, Faults, TokenSampler, assert_counted_once, finish, quiesce

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.testing import max_overlap, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def work(app: Celery, **kwargs: Any) -> Any:
    return app.signature("faults.work", kwargs=kwargs)


def run(faults: Faults, app: Celery, members: list[Any], limit: int, timeout_s: float = 60.0, **config: Any) -> str:
    """Run a closed swarm with a success callback to its end while sampling its tokens; return its id."""
    s = swarm(
        tasks=members,
        success_callbacks=[app.signature("faults.callback")],
        config=SwarmConfig(max_concurrency=limit, **config),
        is_swarm_closed=True,
        app=app,
    )
    swarm_id = s.freeze().id
    with TokenSampler(faults.probe, runtime_for(app).store.keys(swarm_id).tokens) as tokens:
        s.apply_async()
        finish(faults, app, swarm_id, timeout_s=timeout_s)
    assert 0 < tokens.peak <= limit
    return swarm_id


def test_a_pool_child_killed_mid_member_with_early_ack_counts_as_failed(faults: Faults) -> None:
    # Given a prefork worker (default early ack) and a swarm whose member 2 kills its pool process
    app = faults.app()
    faults.worker("a", concurrency=2)
    members = [work(app, hold_s=0.05, die="always" if i == 2 else "") for i in range(6)]
    # When the swarm runs
    swarm_id = run(faults, app, members, limit=2, **RECOVERY)
    # Then member 2 is failed with WorkerLostError (reported by the worker's main process), the rest succeed
    quiesce(app, faults.probe)
    assert_counted_once(app, swarm_id, 6, {0, 1, 3, 4, 5}, failed=1)
    errors = runtime_for(app).store.errors(swarm_id)
    assert b"WorkerLostError" in errors[2]
    assert faults.starts(swarm_id).count(2) == 1, "an early-acked member is not run again"
    assert [cb["value"] for cb in faults.ran_callbacks(app, swarm_id)] == [[0, 1, 3, 4, 5]]
    assert max_overlap(faults.executions(swarm_id)) <= 2


def test_b_a_pool_child_killed_with_acks_late_and_reject_on_worker_lost_reruns_and_counts_once(
    faults: Faults,
) -> None:
    # Given a prefork worker with acks_late + reject_on_worker_lost; member 2 kills its pool process once
    app = faults.app()
    faults.worker("b", concurrency=2, task_acks_late=True, task_reject_on_worker_lost=True)
    members = [work(app, hold_s=0.05, die="once" if i == 2 else "") for i in range(6)]
    # When the swarm runs
    swarm_id = run(faults, app, members, limit=2, **RECOVERY)
    # Then member 2 ran again (the broker redelivered it) and every member is counted once, as succeeded
    quiesce(app, faults.probe)
    assert_counted_once(app, swarm_id, 6, set(range(6)))
    assert faults.starts(swarm_id).count(2) == 2
    assert [cb["value"] for cb in faults.ran_callbacks(app, swarm_id)] == [list(range(6))]
    assert max_overlap(faults.executions(swarm_id)) <= 2


@pytest.mark.slow
def test_c_a_whole_worker_killed_mid_swarm_is_recovered_by_another_workers_reaper(faults: Faults) -> None:
    # Given a worker (its own process group) running a swarm whose members wait at a gate
    app = faults.app()
    first = faults.worker("c1", concurrency=2, worker_prefetch_multiplier=1)
    members = [work(app, gate=True) for _ in range(8)]
    s = swarm(
        tasks=members,
        success_callbacks=[app.signature("faults.callback")],
        config=SwarmConfig(max_concurrency=4, lease_s=2, dispatch_timeout_s=2),
        is_swarm_closed=True,
        app=app,
    )
    swarm_id = s.freeze().id
    with TokenSampler(faults.probe, runtime_for(app).store.keys(swarm_id).tokens) as tokens:
        s.apply_async()
        wait_for(lambda: len(faults.starts(swarm_id)) == 2, timeout_s=30, message="two running members")
        # When the whole worker dies (no signal at all), and a second worker starts
        faults.kill(first)
        lost = set(faults.starts(swarm_id))
        faults.open_gate(swarm_id)
        faults.worker("c2", concurrency=2)
        # Then the second worker's reaper re-publishes the lost members and the swarm completes
        finish(faults, app, swarm_id, timeout_s=60)
    quiesce(app, faults.probe, unacked=False)  # the dead worker's prefetched messages wait for the visibility timeout
    assert_counted_once(app, swarm_id, 8, set(range(8)))
    starts = faults.starts(swarm_id)
    assert all(starts.count(i) == 2 for i in lost), starts
    assert sorted(i for i, _, _ in faults.executions(swarm_id)) == list(range(8))
    assert [cb["value"] for cb in faults.ran_callbacks(app, swarm_id)] == [list(range(8))]
    assert 0 < tokens.peak <= 4
    assert max_overlap(faults.executions(swarm_id)) <= 4

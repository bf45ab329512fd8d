"""N1 under faults: R1–R4 and D5 hold for nested members (real workers, a real Redis).

A nested swarm is a member of its parent: it holds one parent token until its result task (a real Celery
task with the member's id) carries its outcome back. These tests kill the worker running it, deliver that
outcome twice, and lose its finalization or its result task.
"""

from __future__ import annotations

import pytest
from celery import Celery
from faultkit import Faults, assert_counted_once, finish, quiesce

from mageflow_celery import SwarmConfig, SwarmResult, swarm
from mageflow_celery.engine.finalize import finalize
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.keys import member_task_id
from mageflow_celery.testing import wait_for
from mageflow_celery.worker.reaper import ReapReport, reap_once

pytestmark = [pytest.mark.redis, pytest.mark.worker]

FAST = {"lease_s": 2, "dispatch_timeout_s": 2}


def work(app: Celery, **kwargs: object) -> object:
    return app.signature("faults.work", kwargs=kwargs)


def outer_with_nested(app: Celery, n_inner: int, inner_limit: int = 2, **member_kwargs: object) -> object:
    """An outer swarm (with a success callback) of a nested swarm of ``n_inner`` members and a plain member."""
    nested = swarm(
        tasks=[work(app, **member_kwargs) for _ in range(n_inner)],
        config=SwarmConfig(max_concurrency=inner_limit, **FAST),
        is_swarm_closed=True,
        app=app,
    )
    return swarm(
        tasks=[nested, work(app)],
        success_callbacks=[app.signature("faults.callback")],
        config=SwarmConfig(max_concurrency=2, **FAST),
        is_swarm_closed=True,
        app=app,
    )


def test_a_worker_killed_while_a_nested_swarm_runs_is_recovered_and_everything_counts_once(faults: Faults) -> None:
    # Given a worker running the members of a nested swarm, waiting at a gate
    app = faults.app()
    first = faults.worker("n1", concurrency=2, worker_prefetch_multiplier=1)
    outer = outer_with_nested(app, 4, gate=True)
    outer_id = outer.freeze().id
    inner_id = member_task_id(outer_id, 0)
    outer.apply_async()
    wait_for(lambda: len(faults.starts(inner_id)) >= 1, timeout_s=30, message="a nested member to start")

    # When the whole worker dies (no signal at all), and another worker starts
    faults.kill(first)
    faults.open_gate(inner_id)
    faults.open_gate(outer_id)
    faults.worker("n2", concurrency=2)

    # Then the nested swarm completes (its lost members re-run, each counted once), and so does the parent,
    # whose callback runs once with the nested swarm's result list in the nested member's place
    finish(faults, app, outer_id, timeout_s=90)
    quiesce(app, faults.probe, unacked=False)
    assert_counted_once(app, inner_id, 4, {0, 1, 2, 3})
    assert [cb["value"] for cb in faults.ran_callbacks(app, outer_id)] == [[[0, 1, 2, 3], 1]]
    assert SwarmResult(outer_id, app=app).progress().succeeded == 2


def test_the_outcome_of_a_nested_member_delivered_twice_counts_once(faults: Faults) -> None:
    # Given an outer swarm whose nested member finished and whose callback ran
    app = faults.app()
    faults.worker("d", concurrency=2)
    outer = outer_with_nested(app, 2)
    outer_id = outer.apply_async().id
    inner_id = member_task_id(outer_id, 0)
    finish(faults, app, outer_id)

    # When the nested swarm's outcome is published once more (a re-run finalization racing a late one)
    finalize(runtime_for(app), inner_id, "s")
    quiesce(app, faults.probe)

    # Then the second copy of its result task was discarded at the start gate: nothing counted twice,
    # the parent's callback ran once
    store = runtime_for(app).store
    assert int(store.meta(outer_id)["dups"]) >= 1
    assert SwarmResult(outer_id, app=app).progress().succeeded == 2
    assert [cb["value"] for cb in faults.ran_callbacks(app, outer_id)] == [[[0, 1], 1]]


def _crash_after_the_decision(app: Celery, inner_id: str) -> None:
    """Report the nested swarm's only member by hand and win its finalization decision, then 'crash'."""
    store = runtime_for(app).store
    wait_for(lambda: store.member_states(inner_id) == {0: "d"}, message="the nested member to be admitted")
    tr = store.report(inner_id, [(0, "s", b"0")], want_ctx=False)
    assert tr.fin == "s"


def test_a_nested_swarm_whose_finalizer_died_is_finalized_by_the_reaper_and_its_parent_finishes(
    faults: Faults,
) -> None:
    # Given a nested swarm whose elected finalizer died between its decision and publishing its outcome
    app = faults.app(mageflow_finalize_claim_s=1)
    outer = outer_with_nested(app, 1)
    outer_id = outer.apply_async().id
    inner_id = member_task_id(outer_id, 0)
    _crash_after_the_decision(app, inner_id)

    # When a worker starts (its reaper takes the stale claim over)
    faults.worker("f", concurrency=2, mageflow_finalize_claim_s=1)

    # Then the nested swarm's outcome reaches the parent, which finishes with its callback once
    finish(faults, app, outer_id, timeout_s=60)
    quiesce(app, faults.probe)
    assert [cb["value"] for cb in faults.ran_callbacks(app, outer_id)] == [[[0], 1]]


def test_a_nested_swarm_whose_result_task_was_lost_is_finalized_again_by_the_parents_reaper(faults: Faults) -> None:
    # Given a nested swarm that finished and published its outcome, whose message was then lost
    app = faults.app()
    outer = outer_with_nested(app, 1)
    outer_id = outer.apply_async().id
    inner_id = member_task_id(outer_id, 0)
    _crash_after_the_decision(app, inner_id)
    finalize(runtime_for(app), inner_id, "s")
    faults.probe.delete("celery")  # the result task, and the plain member, are lost

    # When the parent's reaper looks after the lease (the nested member still holds the parent's token)
    total = ReapReport()

    def republished() -> bool:
        report = reap_once(app)
        total.republished += report.republished
        return bool(faults.probe.llen("celery")) and total.republished >= 1

    wait_for(republished, timeout_s=20, interval_s=0.3, message="the reaper to act")
    faults.worker("r", concurrency=2)

    # Then the parent finishes, the nested member counted once, its callback once
    finish(faults, app, outer_id, timeout_s=60)
    quiesce(app, faults.probe)
    assert SwarmResult(outer_id, app=app).progress().succeeded == 2
    assert [cb["value"] for cb in faults.ran_callbacks(app, outer_id)] == [[[0], 1]]

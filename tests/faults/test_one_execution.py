"""D5: at most one execution of a member at a time, on real workers and a real Redis.

A copy of a member received while another copy holds a live lease never runs beside it; re-publishing
(dispatch timeout, lost worker) never starts a second copy that runs while the first still runs; chain
steps, retries (also with ``ignore_result=True``) and ``Task.replace()`` keep the member's lease across
the broker, however long the next message waits there.
"""

from __future__ import annotations

import pytest
from faultkit import Faults, assert_counted_once, finish, quiesce

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.keys import FINAL_STEP
from mageflow_celery.testing import wait_for
from mageflow_celery.worker.reaper import ReapReport, reap_once

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def _looked_at_twice(faults: Faults, app: object, swarm_id: str, index: int = 0) -> bool:
    """The reaper moved the member's deadline at least twice past its last dispatch: it looked at it after
    the lease would have expired, more than once, and left it alone."""
    store = runtime_for(app).store  # type: ignore[arg-type]
    keys = store.keys(swarm_id)
    owner = store.owner(swarm_id, index)
    score = faults.probe.zscore(keys.tokens, str(index))
    return owner is not None and owner.t0 > 0 and score is not None and score >= owner.t0 + 2.5


def test_copies_republished_after_the_dispatch_timeout_run_once(faults: Faults) -> None:
    # Given two admitted members that wait in the broker longer than their dispatch timeout (no worker yet),
    # so the reaper publishes each a second time
    app = faults.app()
    s = swarm(
        tasks=[app.signature("faults.work") for _ in range(2)],
        success_callbacks=[app.signature("faults.callback")],
        config=SwarmConfig(max_concurrency=2, dispatch_timeout_s=1),
        is_swarm_closed=True,
        app=app,
    )
    swarm_id = s.apply_async().id
    total = ReapReport()

    def republished() -> bool:
        total.republished += reap_once(app).republished
        return total.republished >= 2

    wait_for(republished, timeout_s=15, interval_s=0.2, message="the reaper to re-publish both members")
    assert faults.probe.llen("celery") == 4
    # When a worker finally consumes the four messages (its own reaper off: it would re-publish the members
    # again if it looked before the worker took them, and count more discarded copies)
    faults.worker("late", concurrency=4, mageflow_reaper=False)
    finish(faults, app, swarm_id)
    quiesce(app, faults.probe)
    # Then each member ran once (the older copies were discarded at the start gate), counted once
    assert sorted(faults.starts(swarm_id)) == [0, 1]
    assert int(runtime_for(app).store.meta(swarm_id)["dups"]) == 2
    assert_counted_once(app, swarm_id, 2, {0, 1})
    assert [cb["value"] for cb in faults.ran_callbacks(app, swarm_id)] == [[0, 1]]


def test_a_chain_member_whose_next_step_waits_longer_than_its_lease_is_not_run_again(faults: Faults) -> None:
    # Given a chain member whose second step goes to a queue no worker consumes yet, with a 1 s lease
    app = faults.app()
    faults.worker("w", concurrency=2, queues="celery")
    member = app.signature("faults.step") | app.signature("faults.step").set(queue="later")
    s = swarm(tasks=[member], config=SwarmConfig(lease_s=1, dispatch_timeout_s=120), is_swarm_closed=True, app=app)
    swarm_id = s.apply_async().id
    # When the first step ran and the second waits in the broker for several leases (the reaper looks at it)
    wait_for(lambda: faults.records("steps", swarm_id) == [(0, 0)], message="step 0")
    wait_for(lambda: _looked_at_twice(faults, app, swarm_id), timeout_s=20, message="two reaper looks")
    # Then the member was handed on to its next step, not re-run from its first step
    assert faults.records("steps", swarm_id) == [(0, 0)]
    assert runtime_for(app).store.member_states(swarm_id) == {0: "d"}
    # And once a worker consumes that queue the member finishes, each step having run once
    faults.worker("later", concurrency=1, queues="later")
    finish(faults, app, swarm_id)
    assert faults.records("steps", swarm_id) == [(0, 0), (0, FINAL_STEP)]
    assert_counted_once(app, swarm_id, 1, {0})


def test_a_retry_with_ignore_result_that_waits_longer_than_its_lease_keeps_its_retry_count(faults: Faults) -> None:
    # Given a member with ignore_result=True (RETRY is never stored) that retries on a queue no worker
    # consumes yet, with a 1 s lease
    app = faults.app()
    faults.worker("w", concurrency=2, queues="celery")
    s = swarm(
        tasks=[app.signature("faults.retry_later")],
        config=SwarmConfig(lease_s=1, dispatch_timeout_s=120),
        is_swarm_closed=True,
        app=app,
    )
    swarm_id = s.apply_async().id
    # When its retry waits in the broker for several leases
    wait_for(lambda: faults.records("attempts", swarm_id) == [(0, 0)], message="the first attempt")
    wait_for(lambda: _looked_at_twice(faults, app, swarm_id), timeout_s=20, message="two reaper looks")
    # Then it was not re-published from scratch (which would run attempt 0 again)
    assert faults.records("attempts", swarm_id) == [(0, 0)]
    # And the retry runs once a worker consumes its queue: attempts 0 and 1, the member counted once
    faults.worker("later", concurrency=1, queues="later")
    finish(faults, app, swarm_id)
    assert faults.records("attempts", swarm_id) == [(0, 0), (0, 1)]
    assert runtime_for(app).store.member_states(swarm_id) == {0: "s"}


def test_a_replacement_that_waits_longer_than_the_lease_carries_the_member_once(faults: Faults) -> None:
    # Given a member replacing itself (Task.replace) with a task on a queue no worker consumes yet
    app = faults.app()
    faults.worker("w", concurrency=2, queues="celery")
    s = swarm(
        tasks=[app.signature("faults.replace_later")],
        success_callbacks=[app.signature("faults.callback")],
        config=SwarmConfig(lease_s=1, dispatch_timeout_s=120),
        is_swarm_closed=True,
        app=app,
    )
    swarm_id = s.apply_async().id
    # When the replacement waits in the broker for several leases
    wait_for(lambda: _looked_at_twice(faults, app, swarm_id), timeout_s=20, message="two reaper looks")
    assert runtime_for(app).store.member_states(swarm_id) == {0: "d"}
    # Then, once consumed, the replacement's result is the member's, counted once, the callback ran once
    faults.worker("later", concurrency=1, queues="later")
    finish(faults, app, swarm_id)
    assert [cb["value"] for cb in faults.ran_callbacks(app, swarm_id)] == [["r"]]

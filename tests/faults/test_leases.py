"""R3: a worker renews the leases of the members it runs, from its main process, so the reaper leaves them alone."""

from __future__ import annotations

import pytest
from faultkit import Faults, assert_counted_once, finish, quiesce

from mageflow_celery import SwarmConfig, SwarmResult, swarm
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.keys import due_key
from mageflow_celery.testing import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_members_running_three_times_longer_than_their_lease_are_never_reaped(faults: Faults, pool: str) -> None:
    # Given a worker whose reaper ticks every 0.5 s, and members that run 3 s with a 1 s lease
    app = faults.app()
    faults.worker(f"lease-{pool}", pool=pool, concurrency=2)
    s = swarm(
        tasks=[app.signature("faults.work", kwargs={"hold_s": 3}) for _ in range(2)],
        success_callbacks=[app.signature("faults.callback")],
        config=SwarmConfig(max_concurrency=2, lease_s=1),
        is_swarm_closed=True,
        app=app,
    )
    swarm_id = s.apply_async().id
    store = runtime_for(app).store
    leases: list[float] = []
    looks: list[float] = []

    def sample() -> bool:
        lease = faults.probe.zscore(store.keys(swarm_id).tokens, "0")
        look = faults.probe.zscore(due_key(store.prefix), swarm_id)
        if lease is not None:
            leases.append(lease)
        if look is not None:
            looks.append(look)
        return SwarmResult(swarm_id, app=app).ready()

    # When they run (sampling member 0's lease deadline and when the reaper will look at the swarm next)
    wait_for(sample, timeout_s=30, interval_s=0.1, message="the swarm to finish")
    finish(faults, app, swarm_id, timeout_s=30)
    quiesce(app, faults.probe)

    # Then the lease deadline moved forward again and again (renewed), and so did the reaper's next look at
    # the swarm (only the reaper moves a due entry later: it looked, found the leases alive, and left them)
    moves = sorted(set(leases))
    assert len(moves) >= 3 and moves[-1] - moves[0] >= 1.5, leases
    assert len(set(looks)) >= 2 and max(looks) > min(looks), looks
    # And the reaper never re-published them
    assert sorted(faults.starts(swarm_id)) == [0, 1]
    assert_counted_once(app, swarm_id, 2, {0, 1})
    assert [cb["value"] for cb in faults.ran_callbacks(app, swarm_id)] == [[0, 1]]

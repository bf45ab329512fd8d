"""R3: a worker renews the leases of the members it runs, from its main process, so the reaper leaves them alone."""

from __future__ import annotations

import pytest
from faultkit import Faults, assert_counted_once, finish, quiesce

from mageflow_celery import SwarmConfig, swarm

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
    # When they run
    finish(faults, app, swarm_id, timeout_s=30)
    quiesce(app, faults.probe)
    # Then the worker kept renewing their leases: the reaper never re-published them
    assert sorted(faults.starts(swarm_id)) == [0, 1]
    assert_counted_once(app, swarm_id, 2, {0, 1})
    assert [cb["value"] for cb in faults.callbacks(swarm_id)] == [[0, 1]]

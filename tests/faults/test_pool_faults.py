"""F1, F5 under faults: a pool's limit across two worker processes, a process dying between two steps of the
pool protocol (docs/pools.md), a whole worker killed, and pools on a 3-master Redis Cluster."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from celery import Celery
from faultkit import Faults, assert_counted_once, finish, quiesce

from mageflow_celery import SwarmConfig, set_pool_limit, swarm
from mageflow_celery.client.pools import get_pool
from mageflow_celery.engine.flow import GRANT_MAX_AGE_S
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.keys import PoolKeys
from mageflow_celery.testing import RedisCluster, max_overlap, wait_for
from mageflow_celery.worker.reaper import Reaper
from mageflow_celery.worker.reconcile import ReapReport, reconcile_pools

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def pooled(app: Celery, pool: str, n: int, limit: int = 3, **kwargs: Any) -> Any:
    return swarm(
        tasks=[app.signature("faults.work", kwargs=kwargs) for _ in range(n)],
        success_callbacks=[app.signature("faults.callback")],
        config=SwarmConfig(pool=pool, max_concurrency=limit, lease_s=2, dispatch_timeout_s=2),
        is_swarm_closed=True,
        app=app,
    )


def _run_three_swarms(faults: Faults, app: Celery, pool: str) -> list[str]:
    """Three swarms of 4 members (0.15 s each) on ``pool`` (limit 2), run to their end."""
    set_pool_limit(app, pool, 2)
    ids = [pooled(app, pool, 4, hold_s=0.15).apply_async().id for _ in range(3)]
    for swarm_id in ids:
        finish(faults, app, swarm_id, timeout_s=60)
    quiesce(app, faults.probe)
    return ids


def test_a_pools_limit_holds_across_two_worker_processes_and_every_token_comes_back(faults: Faults) -> None:
    # Given two worker processes (prefork, 3 children each) and three swarms of 4 on a pool of 2
    app = faults.app()
    faults.worker("w1", concurrency=3)
    faults.worker("w2", concurrency=3)

    # When they run
    ids = _run_three_swarms(faults, app, "shared")

    # Then at most 2 members executed at once over all swarms and workers, and 2 did; each counted once
    executions = [e for swarm_id in ids for e in faults.executions(swarm_id)]
    assert len(executions) == 12 and max_overlap(executions) == 2
    for swarm_id in ids:
        assert_counted_once(app, swarm_id, 4, {0, 1, 2, 3})
    wait_for(lambda: get_pool(app, "shared").in_use == 0, message="every token back")
    info = get_pool(app, "shared")
    assert (info.in_use, info.waiting, info.holders) == (0, [], {})


def _holders(r: redis.Redis, prefix: str, pool: str) -> dict[bytes, bytes]:
    return r.hgetall(PoolKeys(prefix, pool).all()[1])


@pytest.mark.parametrize(
    "crash", ["after the pool granted, before the swarm admitted", "after a member ended, before its grant went back"]
)
def test_a_process_dying_between_two_protocol_steps_leaks_no_token_after_reconciliation(
    faults: Faults, crash: str
) -> None:
    # Given a pool of 1: swarm S holds its token (member 0 admitted), swarm T waits for it (no worker runs)
    app = faults.app()
    rt = runtime_for(app)
    store = rt.store
    set_pool_limit(app, "one", 1)
    s_id = pooled(app, "one", 1).apply_async().id
    t_id = pooled(app, "one", 1).apply_async().id
    assert get_pool(app, "one").waiting == [(t_id, 1)]

    # When S's member ends and the process dies between two steps of the protocol
    tr = store.report(s_id, [(0, "s", b"0")], want_ctx=False)
    assert len(tr.flow.released) == 1
    if crash.startswith("after the pool granted"):
        settled = store.pool_settle("one", s_id, 0, 1, tr.flow.released)  # the pool gives T the token ...
        assert list(settled.grants) == [t_id]  # ... and the process dies before T admits with it
    # (otherwise: it dies before giving the grant back at all)

    # Then the token is held by nobody: T cannot start; the pool shows 1 in use
    assert get_pool(app, "one").in_use == 1
    assert store.member_states(t_id) == {}
    # And the reaper's reconciliation frees it, T gets it and starts: nothing leaked, nothing granted twice
    report = ReapReport()
    reconcile_pools(rt, 0.0, report)
    assert report.pool_freed == 1
    assert store.member_states(t_id) == {0: "d"}
    holders = _holders(faults.probe, store.prefix, "one")
    assert len(holders) == 1 and next(iter(holders.values())).decode().startswith(t_id)
    # And a second reconciliation frees nothing (T's member holds its grant)
    again = ReapReport()
    reconcile_pools(rt, 0.0, again)
    assert again.pool_freed == 0


def test_a_process_stalled_past_the_grace_between_grant_and_admission_cannot_exceed_the_limit(
    faults: Faults,
) -> None:
    # Given a pool of 1 held by swarm S, and swarm T (2 members) waiting for it
    app = faults.app()
    rt = runtime_for(app)
    store = rt.store
    set_pool_limit(app, "stall", 1)
    s_id = pooled(app, "stall", 1).apply_async().id
    t_id = pooled(app, "stall", 2).apply_async().id
    # When S's member ends, the pool grants T the token, and the process stalls before T admits with it
    tr = store.report(s_id, [(0, "s", b"0")], want_ctx=False)
    stalled = store.pool_settle("stall", s_id, 0, 1, tr.flow.released)
    assert list(stalled.grants) == [t_id]
    # And meanwhile (past the grace) the reaper frees that token as lost and T gets a new one: member 0 runs
    reconcile_pools(rt, 0.0, ReapReport())
    assert store.member_states(t_id) == {0: "d"}

    # Then when the stalled process wakes (its grant now older than a swarm accepts), T admits nothing more
    late = store.grant(t_id, stalled.grants[t_id], stalled.granted_at - GRANT_MAX_AGE_S - 1, GRANT_MAX_AGE_S, False)
    assert late.admitted == [] and late.flow.released == stalled.grants[t_id]
    assert store.member_states(t_id) == {0: "d"}
    # And giving the stale grant back leaves the one real holder in place
    store.pool_settle("stall", t_id, late.flow.pool_want, 1, late.flow.released)
    assert get_pool(app, "stall").holders == {t_id: 1}


def test_a_swarm_whose_demand_never_reached_its_pool_is_found_by_the_sweep(faults: Faults) -> None:
    # Given a pool of 1 held by swarm S, and swarm T whose process died after admitting nothing and before
    # telling the pool it waits (T's demand is unknown to the pool)
    app = faults.app()
    rt = runtime_for(app)
    set_pool_limit(app, "lost", 1)
    s_id = pooled(app, "lost", 1).apply_async().id
    t_id = pooled(app, "lost", 1).apply_async().id
    rt.store.pool_settle("lost", t_id, 0, 1, [])  # as if T never said it waits
    tr = rt.store.report(s_id, [(0, "s", b"0")], want_ctx=False)
    rt.store.pool_settle("lost", s_id, 0, 1, tr.flow.released)  # S's token comes back: nobody waits
    assert get_pool(app, "lost").in_use == 0 and rt.store.member_states(t_id) == {}

    # When the reaper sweeps, then T states its demand again, gets the token and admits its member
    Reaper(rt).sweep()
    assert rt.store.member_states(t_id) == {0: "d"}
    assert get_pool(app, "lost").in_use == 1


def test_a_whole_worker_killed_mid_pooled_swarm_is_recovered_and_the_pool_drains(faults: Faults) -> None:
    # Given a worker running pooled members that wait at a gate
    app = faults.app()
    set_pool_limit(app, "kill", 2)
    first = faults.worker("k1", concurrency=2, worker_prefetch_multiplier=1)
    s = pooled(app, "kill", 5, gate=True)
    swarm_id = s.apply_async().id
    wait_for(lambda: len(faults.starts(swarm_id)) == 2, timeout_s=30, message="two members running")

    # When the whole worker dies and another starts
    faults.kill(first)
    faults.open_gate(swarm_id)
    faults.worker("k2", concurrency=2)

    # Then the swarm completes (lost members re-run with the pool tokens they held) and the pool drains
    finish(faults, app, swarm_id, timeout_s=60)
    quiesce(app, faults.probe, unacked=False)
    assert_counted_once(app, swarm_id, 5, set(range(5)))
    assert max_overlap(faults.executions(swarm_id)) <= 2
    wait_for(lambda: get_pool(app, "kill").in_use == 0, message="every token back")


def test_pools_work_with_the_state_on_a_redis_cluster(faults: Faults, cluster: RedisCluster) -> None:
    # Given the swarm state on a 3-master Redis Cluster and a worker
    faults.state = cluster.url
    app = faults.app()
    store = runtime_for(app).store
    assert isinstance(store.client, redis.cluster.RedisCluster)
    faults.worker("c", concurrency=4)

    # When three swarms run on a pool of 2
    ids = _run_three_swarms(faults, app, "clustered")

    # Then the limit held across them, each is counted once, and the pool's keys share one slot
    executions = [e for swarm_id in ids for e in faults.executions(swarm_id)]
    assert max_overlap(executions) == 2
    for swarm_id in ids:
        assert_counted_once(app, swarm_id, 4, {0, 1, 2, 3})
    assert len({store.client.keyslot(key) for key in PoolKeys(store.prefix, "clustered").all()}) == 1
    wait_for(lambda: get_pool(app, "clustered").in_use == 0, message="every token back")

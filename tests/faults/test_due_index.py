"""P5: the reaper's cost follows the work that is due. It asks the due index what is due instead of reading
every swarm; a swarm whose index entry was lost (its client died between admitting and indexing) is found
by the sweep, a page of the index of unfinished swarms per tick."""

from __future__ import annotations

import pytest
from celery import Celery
from faultkit import Faults

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.keys import FINAL_STEP, due_key
from mageflow_celery.testing import wait_for
from mageflow_celery.worker.reaper import Reaper

pytestmark = [pytest.mark.redis]


def idle_swarms(app: Celery, n: int, first: int = 0) -> None:
    """Started, open swarms ``idle-<first>`` .. ``idle-<n - 1>`` holding no token (as an app that starts a swarm
    per user would have), indexed in that order."""
    store = runtime_for(app).store
    codec = runtime_for(app).task_codec
    template = swarm(config=SwarmConfig(), app=app)
    meta = template._meta(runtime_for(app))
    ctx = codec.dumps({"args": [], "kwargs": {}, "options": {}, "root_id": "x"})
    definition = codec.dumps({"success": [], "error": [], "canvas": {}, "root_id": "x"})
    for start in range(first, n, 1000):
        pipe = store.client.pipeline(transaction=False)
        for i in range(start, min(n, start + 1000)):
            sid = f"idle-{i}"
            keys = store.keys(sid).all()
            store._scripts["create"](keys=keys, args=[len(meta), *[x for kv in meta.items() for x in kv]], client=pipe)
            store._scripts["start"](keys=keys, args=[ctx, definition, 0], client=pipe)
            pipe.zadd(f"{store.prefix}:swarms", {sid: i})
        pipe.execute()


@pytest.mark.slow
def test_a_tick_looks_only_at_the_due_swarm_among_50000_idle_ones(faults: Faults) -> None:
    # Given 50,000 idle open swarms, and one swarm whose received member's lease expired (its worker died)
    app = faults.app()
    idle_swarms(app, 50_000)
    lost = swarm(tasks=[app.signature("faults.work")], config=SwarmConfig(lease_s=1), is_swarm_closed=True, app=app)
    lost_id = lost.apply_async().id
    store = runtime_for(app).store
    assert store.receive(lost_id, 0, FINAL_STEP, "dead-worker") == "ok"
    reaper = Reaper(runtime_for(app))

    # When the reaper ticks until the lease is due
    report = wait_for(lambda: reaper.tick() or None, timeout_s=15, interval_s=0.2, message="the due member")

    # Then it looked at that one swarm only, re-published its lost member, and the idle ones are not indexed
    assert report.swarms == 1 and report.requeued == 1
    assert store.client.zcard(due_key(store.prefix)) == 1


def test_a_swarm_whose_due_entry_was_lost_is_found_by_the_sweep(faults: Faults) -> None:
    # Given a received member whose lease will expire, and its swarm's due entry lost
    app = faults.app()
    s = swarm(tasks=[app.signature("faults.work")], config=SwarmConfig(lease_s=1), is_swarm_closed=True, app=app)
    swarm_id = s.apply_async().id
    store = runtime_for(app).store
    assert store.receive(swarm_id, 0, FINAL_STEP, "dead-worker") == "ok"
    store.client.zrem(due_key(store.prefix), swarm_id)
    reaper = Reaper(runtime_for(app))
    assert reaper.tick().swarms == 0

    # When the sweep runs (one page per tick), then the swarm is indexed, and the next ticks reap it
    assert reaper.sweep() == 1
    report = wait_for(lambda: reaper.tick() or None, timeout_s=15, interval_s=0.2, message="the lost member")
    assert report.requeued == 1


def test_the_sweep_reads_every_swarm_once_per_cycle_while_others_leave_and_join_the_index(faults: Faults) -> None:
    # Given 600 swarms holding a token whose due entries were lost (3 sweep pages of 200)
    app = faults.app()
    idle_swarms(app, 600)
    store = runtime_for(app).store
    pipe = store.client.pipeline(transaction=False)
    for i in range(600):
        pipe.hset(store.keys(f"idle-{i}").meta, "running", 1)
    pipe.execute()
    reaper = Reaper(runtime_for(app))
    due = due_key(store.prefix)

    # When the first page is swept, then 100 of the swarms it found finish (they leave the index) and 50 new
    # swarms join it, before the next pages
    assert reaper.sweep() == 200
    found_first = [m.decode() for m in store.client.zrange(due, 0, -1)]
    finished = found_first[:100]
    store.client.zrem(f"{store.prefix}:swarms", *finished)
    store.client.zrem(due, *finished)
    idle_swarms(app, 650, first=600)

    # Then the two pages left of the cycle index every swarm that was there all along: none is skipped
    # because entries before its position moved
    reaper.sweep()
    reaper.sweep()
    stayed = {f"idle-{i}" for i in range(600)} - set(finished)
    missing = [sid for sid in stayed if store.client.zscore(due, sid) is None]
    assert missing == []

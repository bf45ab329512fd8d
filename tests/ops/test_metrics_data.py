"""O2 data: ``metrics_snapshot`` counts swarms and members from the scripts' own counters (unfinished swarms
live, finished ones folded into the key prefix's stats once), never by reading members."""

from __future__ import annotations

import pytest
import redis
from celery import Celery

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.ops.inspect import metrics_snapshot
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory
from mageflow_celery.worker.reaper import reap_once

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def test_the_snapshot_counts_finished_and_unfinished_swarms_and_their_members(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given a finished swarm (2 succeeded, 1 failed) and an unfinished one (1 queued, 1 dispatched nowhere)
    @mageflow_app.task(name="x.ok", shared=False)
    def ok(x: int) -> int:
        if x < 0:
            raise ValueError(x)
        return x

    mageflow_worker(concurrency=2)
    done = swarm(tasks=[ok.s(1), ok.s(-1), ok.s(2)], is_swarm_closed=True, app=mageflow_app).apply_async()
    assert done.get(timeout=20) == [1, 2]
    wait_for(lambda: metrics_snapshot(mageflow_app).swarms_finished_total["succeeded"] == 1)
    waiting = swarm(tasks=[ok.s(3).set(queue="nowhere"), ok.s(4)], config=SwarmConfig(max_concurrency=1))
    waiting.apply_async()

    # When the snapshot is read
    snap = metrics_snapshot(mageflow_app)

    # Then the finished swarm is folded into the totals once, and the unfinished one counted live
    assert snap.swarms == {"pending": 0, "running": 1, "paused": 0}
    assert snap.swarms_finished_total == {"succeeded": 1, "failed": 0, "cancelled": 0}
    assert snap.members == {"registered": 0, "queued": 1, "dispatched": 1, "running": 0}
    assert snap.members_admitted_total == 4
    assert snap.members_finished_total == {"succeeded": 2, "failed": 1, "cancelled": 0}
    # And every received member's hand-off latency is in the histogram (cumulative, +Inf holds all 3)
    assert snap.handoff_buckets[-1] == (float("inf"), 3)
    assert [c for _, c in snap.handoff_buckets] == sorted(c for _, c in snap.handoff_buckets)
    assert snap.handoff_sum >= 0
    # And a reaper pass that did something is counted; finalizing again folds nothing twice
    assert runtime_for(mageflow_app).store.finalized(done.id) == "noop"
    runtime_for(mageflow_app).store.unpublished(waiting.id, [0])
    assert reap_once(mageflow_app).republished == 1
    snap = metrics_snapshot(mageflow_app)
    assert snap.reaper_actions_total == {"republished": 1}
    assert snap.swarms_finished_total["succeeded"] == 1

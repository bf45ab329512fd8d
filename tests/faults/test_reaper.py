"""R2, R3: the reaper, driven directly (``reap_once``) against a real Redis, with no worker running.

Members are put in the state a vanished worker leaves behind (received, lease expired) by calling the
receive script the worker hook calls; the result backend is written as a finished task would.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from celery import Celery, states
from faultkit import Faults

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.keys import FINAL_STEP, callback_task_id, member_task_id
from mageflow_celery.testing import wait_for
from mageflow_celery.worker.reaper import ReapReport, reap_once

pytestmark = [pytest.mark.redis]


def queued_ids(r: redis.Redis) -> list[str]:
    """Task ids of the messages waiting in the Redis broker's default queue, oldest first."""
    return [json.loads(m)["headers"]["id"] for m in reversed(r.lrange("celery", 0, -1))]


def started(app: Celery, n: int, received: bool = True, **config: Any) -> str:
    """A started swarm of ``n`` members, all admitted; ``received``: taken by a worker that then vanished."""
    cfg = SwarmConfig(max_concurrency=n, **config)
    s = swarm(tasks=[app.signature("faults.work") for _ in range(n)], config=cfg, is_swarm_closed=True, app=app)
    swarm_id = s.apply_async().id
    if received:
        for i in range(n):
            assert runtime_for(app).store.receive(swarm_id, i, FINAL_STEP, f"delivery-{i}") == "ok"
    return swarm_id


def reap_until(app: Celery, done: Any, timeout_s: float = 10.0) -> ReapReport:
    """Run reaper ticks until ``done(total report)`` holds; return the summed report."""
    total = ReapReport()

    def tick() -> bool:
        report = reap_once(app)
        for name in vars(total):
            setattr(total, name, getattr(total, name) + getattr(report, name))
        return bool(done(total))

    wait_for(tick, timeout_s=timeout_s, interval_s=0.1, message="the reaper")
    return total


def test_expired_leases_are_reconciled_from_the_result_backend_first(faults: Faults) -> None:
    # Given six received members whose worker vanished, and what the result backend says of each
    app = faults.app()
    swarm_id = started(app, 6, lease_s=1)
    tid = [member_task_id(swarm_id, i) for i in range(6)]
    app.backend.mark_as_done(tid[0], 10)
    app.backend.mark_as_failure(tid[1], ValueError("bad input"))
    app.backend.mark_as_revoked(tid[2], "revoked")
    app.backend.mark_as_retry(tid[3], KeyError("again"))
    app.backend.store_result(tid[5], None, states.STARTED)
    store = runtime_for(app).store
    # When the leases expire and the reaper runs
    report = reap_until(app, lambda t: t.recovered == 3 and t.requeued == 2 and t.waiting >= 1)
    # Then SUCCESS / FAILURE / REVOKED are applied, RETRY waits with a new lease, PENDING / STARTED are re-published
    assert store.member_states(swarm_id) == {0: "s", 1: "f", 2: "f", 3: "r", 4: "d", 5: "d"}
    assert report.lost_failed == 0
    assert store.results(swarm_id) == {0: b"10"}
    errors = {i: json.loads(e)["exc_type"] for i, e in store.errors(swarm_id).items()}
    assert errors == {1: "ValueError", 2: "TaskRevokedError"}
    assert queued_ids(faults.probe).count(tid[4]) == 2 and queued_ids(faults.probe).count(tid[5]) == 2
    tokens = dict(faults.probe.zrange(store.keys(swarm_id).tokens, 0, -1, withscores=True))
    assert tokens[b"3"] > faults.probe.time()[0], "a RETRY member's lease is extended"
    meta = store.meta(swarm_id)
    assert (meta["succeeded"], meta["failed"], meta["running"], meta["dispatched"]) == (b"1", b"2", b"1", b"2")


def test_a_lost_member_fails_with_on_lost_fail(faults: Faults) -> None:
    # Given a received member with on_lost="fail" whose worker vanished before storing anything
    app = faults.app()
    swarm_id = started(app, 2, lease_s=1, on_lost="fail")
    app.backend.mark_as_done(member_task_id(swarm_id, 1), 1)
    # When the reaper handles the expired leases
    report = reap_until(app, lambda t: t.lost_failed == 1 and t.recovered == 1)
    # Then it failed with a WorkerLostError record, and the swarm finished (nothing re-published)
    store = runtime_for(app).store
    assert store.member_states(swarm_id) == {0: "f", 1: "s"}
    assert json.loads(store.errors(swarm_id)[0])["exc_type"] == "WorkerLostError"
    assert report.requeued == 0
    assert store.meta(swarm_id)["state"] == b"succeeded"


def test_an_acks_late_member_waits_for_the_broker_to_redeliver_it(faults: Faults) -> None:
    # Given a received acks_late member whose worker vanished, and a broker visibility timeout of 1 hour
    app = faults.app(task_acks_late=True, broker_transport_options={"visibility_timeout": 3600})
    swarm_id = started(app, 1, lease_s=1)
    # When its lease expires
    report = reap_until(app, lambda t: t.waiting >= 1)
    # Then the reaper leaves it to the broker's redelivery: still running, not re-published
    assert report.requeued == 0
    assert runtime_for(app).store.member_states(swarm_id) == {0: "r"}
    assert queued_ids(faults.probe) == [member_task_id(swarm_id, 0)]
    # And once the visibility timeout is known to have passed (here: no timeout), on_lost applies
    app.conf.broker_transport_options = {"visibility_timeout": 0}
    reap_until(app, lambda t: t.requeued == 1)
    assert queued_ids(faults.probe) == [member_task_id(swarm_id, 0)] * 2


def test_a_dispatched_member_nobody_received_is_republished_with_the_same_id(faults: Faults) -> None:
    # Given two admitted members no worker receives (their messages were lost), dispatch timeout 1 s
    app = faults.app()
    swarm_id = started(app, 2, received=False, dispatch_timeout_s=1)
    app.backend.mark_as_done(member_task_id(swarm_id, 1), 1)
    faults.probe.delete("celery")
    # When the dispatch deadline passes
    report = reap_until(app, lambda t: t.republished == 1 and t.recovered == 1)
    # Then the member with no stored outcome is published again under its own id; the other is applied
    assert queued_ids(faults.probe) == [member_task_id(swarm_id, 0)]
    assert runtime_for(app).store.member_states(swarm_id) == {0: "d", 1: "s"}
    assert report.requeued == 0


def test_a_stale_finalization_claim_is_published_again_with_the_same_callback_ids(faults: Faults) -> None:
    # Given a finished swarm whose elected finalizer died before publishing the callbacks
    app = faults.app(mageflow_finalize_claim_s=1)
    s = swarm(
        tasks=[app.signature("faults.work")],
        success_callbacks=[app.signature("faults.callback")],
        config=SwarmConfig(max_concurrency=1),
        is_swarm_closed=True,
        app=app,
    )
    swarm_id = s.apply_async().id
    store = runtime_for(app).store
    tr = store.report(swarm_id, [(0, "s", b"0")], want_ctx=False)
    assert tr.fin == "s"  # this caller won the decision ... and "crashes" here
    faults.probe.delete("celery")
    # When the claim is older than the claim period
    report = reap_until(app, lambda t: t.finalized == 1)
    # Then the callback is published once, with its deterministic id, and the claim is released
    assert queued_ids(faults.probe) == [callback_task_id(swarm_id, "s", 0)]
    assert store.meta(swarm_id)["fin"] == b"done"
    assert report.finalized == 1
    assert not reap_once(app), "a released claim is never re-run"


def test_a_member_that_finishes_after_being_republished_is_counted_once(faults: Faults) -> None:
    # Given a lost member the reaper re-published
    app = faults.app()
    swarm_id = started(app, 1, lease_s=1)
    reap_until(app, lambda t: t.requeued == 1)
    store = runtime_for(app).store
    # When the original execution reports late, and then the re-published copy reports too
    first = store.report(swarm_id, [(0, "s", b"0")], want_ctx=False)
    second = store.report(swarm_id, [(0, "s", b"0")], want_ctx=False)
    # Then only the first report counts, and only it decided the finalization
    assert (first.fin, first.extra, second.fin, second.extra) == ("s", [1], "", [0])
    meta = store.meta(swarm_id)
    assert (meta["succeeded"], meta["dispatched"], meta["running"]) == (b"1", b"0", b"0")


def test_one_reaper_at_a_time_holds_the_lock(faults: Faults) -> None:
    # Given two workers' reaper locks on the same key prefix
    app = faults.app()
    store = runtime_for(app).store
    first, second = store.reaper_lock(5.0), store.reaper_lock(5.0)
    # When both try to hold it
    assert first.hold() is True
    assert second.hold() is False
    assert first.hold() is True, "the holder extends it"
    # Then the other gets it once the holder releases it
    first.release()
    assert second.hold() is True
    second.release()

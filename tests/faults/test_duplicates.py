"""R1, R2: duplicate deliveries and duplicate reports change nothing; one finalization when members finish together."""

from __future__ import annotations

import json
import threading

import pytest
from faultkit import Faults, TokenSampler, assert_counted_once, finish, quiesce

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.keys import callback_task_id
from mageflow_celery.testing import wait_for
from mageflow_celery.worker.parts import reporter

pytestmark = [pytest.mark.redis]

#: Broker options that make kombu's Redis transport redeliver an unacknowledged message after ~1 s.
SHORT_VISIBILITY = {"visibility_timeout": 1, "unacked_restore_interval": 1, "unacked_restore_throttle": 1}


@pytest.mark.worker
@pytest.mark.slow
def test_d_a_member_delivered_twice_by_the_broker_runs_once_and_is_counted_once(faults: Faults) -> None:
    # Given acks_late members that run longer than the broker's visibility timeout (it redelivers them)
    app = faults.app()
    faults.worker("d", concurrency=4, task_acks_late=True, broker_transport_options=SHORT_VISIBILITY)
    s = swarm(
        tasks=[app.signature("faults.work", kwargs={"hold_s": 2.5}) for _ in range(3)],
        success_callbacks=[app.signature("faults.callback")],
        config=SwarmConfig(max_concurrency=3),
        is_swarm_closed=True,
        app=app,
    )
    swarm_id = s.freeze().id
    # When the swarm runs
    with TokenSampler(faults.probe, runtime_for(app).store.keys(swarm_id).tokens) as tokens:
        s.apply_async()
        finish(faults, app, swarm_id, timeout_s=60)
    quiesce(app, faults.probe)
    # Then the broker really delivered some member twice, but the start gate discarded the second copy
    # while the first held its lease (D5): each member executed once, is counted once, the callback ran once
    assert int(runtime_for(app).store.meta(swarm_id)["dups"]) >= 1, "the broker redelivered nothing"
    assert sorted(faults.starts(swarm_id)) == [0, 1, 2]
    assert_counted_once(app, swarm_id, 3, {0, 1, 2})
    assert [cb["value"] for cb in faults.ran_callbacks(app, swarm_id)] == [[0, 1, 2]]
    assert 0 < tokens.peak <= 3


def test_d_the_same_outcome_reported_twice_through_the_hooks_path_counts_once(faults: Faults) -> None:
    # Given a started swarm of four admitted members (no worker: outcomes are reported by hand)
    app = faults.app()
    s = swarm(
        tasks=[app.signature("faults.work") for _ in range(4)],
        success_callbacks=[app.signature("faults.callback")],
        config=SwarmConfig(max_concurrency=4),
        is_swarm_closed=True,
        app=app,
    )
    swarm_id = s.apply_async().id
    rt = runtime_for(app)
    faults.probe.delete("celery")
    # When every outcome is submitted twice, from two threads at once, as duplicate signals would
    barrier = threading.Barrier(2)

    def report_all() -> None:
        barrier.wait()
        for i in range(4):
            reporter(rt).submit(swarm_id, i, "s", i)
            reporter(rt).submit(swarm_id, i, "s", i)

    threads = [threading.Thread(target=report_all) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reporter(rt).flush(timeout_s=10)
    # Then each member counts once, and the success callback was published once
    assert_counted_once(app, swarm_id, 4, {0, 1, 2, 3})
    queued = [json.loads(m)["headers"]["id"] for m in faults.probe.lrange("celery", 0, -1)]
    assert queued == [callback_task_id(swarm_id, "s", 0)]


@pytest.mark.worker
def test_e_members_finishing_at_the_same_instant_on_two_processes_finalize_once(faults: Faults) -> None:
    # Given a prefork worker with two pool processes, and swarms of two members released by one gate
    app = faults.app()
    faults.worker("e", concurrency=2)
    swarm_ids = []
    for _ in range(10):
        callbacks = [app.signature("faults.callback"), app.signature("faults.callback", kwargs={"kind": "2"})]
        s = swarm(
            tasks=[app.signature("faults.work", kwargs={"gate": True}) for _ in range(2)],
            success_callbacks=callbacks,
            config=SwarmConfig(max_concurrency=2),
            is_swarm_closed=True,
            app=app,
        )
        swarm_id = s.apply_async().id
        wait_for(lambda sid=swarm_id: len(faults.starts(sid)) == 2, timeout_s=30, message="both members running")
        # When both finish at the same instant (each pool process reports on its own)
        faults.open_gate(swarm_id)
        finish(faults, app, swarm_id, timeout_s=30)
        swarm_ids.append(swarm_id)
    quiesce(app, faults.probe)
    # Then every swarm was finalized once: each callback ran exactly once
    for swarm_id in swarm_ids:
        assert_counted_once(app, swarm_id, 2, {0, 1})
        assert sorted(cb["kind"] for cb in faults.ran_callbacks(app, swarm_id, 2)) == ["2", "success"]

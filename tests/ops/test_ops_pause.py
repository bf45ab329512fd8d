"""S9 pause / resume against a real Redis and an embedded worker."""

from __future__ import annotations

import pytest
from celery import Celery
from celery.bin.base import CLIContext
from celery.contrib.testing.worker import start_worker
from click.testing import CliRunner, Result
from opskit import Ops

from mageflow_celery import SwarmConfig, SwarmResult, swarm
from mageflow_celery.ops.cli import swarm as swarm_cli
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def test_pause_holds_admission_and_resume_refills_up_to_the_limit_at_once(
    ops: Ops, mageflow_worker: WorkerFactory
) -> None:
    # Given a closed swarm of 6 gated members, limit 2, whose first two members are running
    mageflow_worker(concurrency=4)
    s = swarm(
        tasks=[ops.gated.s(i) for i in range(6)],
        config=SwarmConfig(max_concurrency=2),
        is_swarm_closed=True,
        task_name="paused-batch",
        app=ops.app,
    )
    res = s.apply_async()
    ops.wait_started(0, 1)
    assert sorted(ops.started()) == [0, 1]

    # When it is paused and the running members then finish
    ops.mark("paused")
    assert res.pause() is True
    assert res.pause() is False  # idempotent
    p = res.progress()
    assert (p.state, p.paused, p.running, p.queued) == ("paused", True, 2, 4)
    ops.open(0, 1)
    wait_for(lambda: res.progress().succeeded == 2, message="the running members to finish")

    # Then no member was admitted: the freed tokens stay free and nothing started after the pause
    p = res.progress()
    assert (p.state, p.dispatched, p.running, p.queued, p.succeeded) == ("paused", 0, 0, 4, 2)
    ops.roundtrip()  # the worker is consuming: anything admitted would have been received by now
    assert res.progress().running + res.progress().dispatched == 0
    assert [e for e in ops.between("paused") if e.startswith("start:")] == []

    # When it is resumed, the limit is refilled by the resume call itself (not by a later report)
    ops.mark("resumed")
    assert res.resume() is True
    p = res.progress()
    assert p.dispatched + p.running == 2
    assert (p.state, p.paused, p.queued) == ("running", False, 2)
    assert res.resume() is False  # idempotent

    # Then members start again only after the resume, and the swarm completes in member order
    wait_for(lambda: len(ops.started()) == 4, message="two more members started")
    assert [e for e in ops.between("paused", "resumed") if e.startswith("start:")] == []
    ops.open_all()
    assert res.get(timeout=20) == [0, 10, 20, 30, 40, 50]
    assert res.pause() is False and res.resume() is False  # finished: nothing to change


def test_pause_survives_a_worker_restart(ops: Ops, mageflow_worker: WorkerFactory) -> None:
    # Given a paused swarm (limit 1) whose running member finished on a worker that was then stopped
    s = swarm(tasks=[ops.gated.s(i) for i in range(3)], config=SwarmConfig(max_concurrency=1), app=ops.app)
    s.close_swarm()
    with start_worker(ops.app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=30):
        res = s.apply_async()
        wait_for(lambda: ops.started() == [0], message="member 0 started")
        assert res.pause() is True
        ops.open(0)
        wait_for(lambda: res.progress().succeeded == 1, message="member 0 reported")
    ops.mark("restarted")

    # When a new worker starts and consumes
    mageflow_worker(concurrency=2)
    ops.roundtrip()

    # Then still nothing is admitted
    p = res.progress()
    assert (p.state, p.paused, p.queued, p.dispatched, p.running) == ("paused", True, 2, 0, 0)
    assert ops.started() == [0]

    # And resuming runs the rest on the new worker
    ops.open_all()
    assert res.resume() is True
    assert res.get(timeout=20) == [0, 10, 20]
    assert ops.between("restarted") == ["start:1", "end:1", "start:2", "end:2"]


def test_a_swarm_paused_before_it_starts_admits_nothing_until_resumed(ops: Ops, mageflow_worker: WorkerFactory) -> None:
    # Given a created but not started swarm that is paused
    mageflow_worker(concurrency=2)
    s = swarm(tasks=[ops.gated.s(i) for i in range(2)], is_swarm_closed=True, app=ops.app)
    res = SwarmResult(s.freeze().id, app=ops.app)
    assert s.pause() is True
    assert res.progress().state == "pending"

    # When it is started
    s.apply_async()

    # Then its members are queued, none admitted
    p = res.progress()
    assert (p.state, p.queued, p.dispatched, p.running) == ("paused", 2, 0, 0)
    ops.roundtrip()
    assert ops.started() == []

    # And resume starts them
    ops.open_all()
    assert res.resume() is True
    assert res.get(timeout=20) == [0, 10]


def run_cli(app: Celery, args: list[str]) -> Result:
    obj = CLIContext(app=app, no_color=True, workdir=None, quiet=False)
    return CliRunner().invoke(swarm_cli, args, obj=obj)


def test_resize_raises_the_limit_at_once_and_lowering_it_lets_running_members_finish(
    ops: Ops, mageflow_worker: WorkerFactory
) -> None:
    # Given a swarm of 6 gated members with limit 1, its first member running
    mageflow_worker(concurrency=6)
    s = swarm(tasks=[ops.gated.s(i) for i in range(6)], config=SwarmConfig(max_concurrency=1), app=ops.app)
    res = s.apply_async()
    ops.wait_started(0)

    # When the limit is raised to 3 (the CLI's resize command), then two more start at once
    result = run_cli(ops.app, ["resize", res.id, "3"])
    assert result.exit_code == 0, result.output
    ops.wait_started(0, 1, 2)
    assert res.progress().max_concurrency == 3

    # When it is lowered to 1 while 3 run, then none is revoked, and no new member starts while 3 hold
    assert res.set_max_concurrency(1) is True
    assert res.set_max_concurrency(1) is False  # no change
    ops.mark("lowered")
    ops.open(0, 1)
    wait_for(lambda: res.progress().running + res.progress().dispatched == 1, message="two to finish")
    ops.roundtrip()
    assert [e for e in ops.between("lowered") if e.startswith("start:")] == []
    # And once the last running one finishes, the next starts (one at a time)
    ops.open(2)
    ops.wait_started(3)
    assert res.progress().running + res.progress().dispatched == 1
    with pytest.raises(ValueError):
        res.set_max_concurrency(0)
    ops.open_all()
    s.close_swarm()
    assert res.get(timeout=20) == [0, 10, 20, 30, 40, 50]

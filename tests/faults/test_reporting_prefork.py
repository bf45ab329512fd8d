"""The reporting process of a prefork worker (docs/operations.md, "Where outcomes are reported"), opted in with
``mageflow_reporting_process=True``: the pool processes hand their outcomes to one process the worker forked
before its pool, which reports them and finalizes; by default each pool process reports from its thread. A
worker subprocess, as deployed."""

from __future__ import annotations

import signal

import pytest
from faultkit import Faults
from faults_app import probe_key

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.testing import process_running, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def _pool_processes(faults: Faults, name: str) -> list[int]:
    app = faults.app()
    stats = wait_for(lambda: app.control.inspect(timeout=2).stats(), message="the worker's stats")
    (found,) = [s for host, s in stats.items() if host.startswith(f"{name}@")]
    return [int(pid) for pid in found["pool"]["processes"]]


@pytest.mark.parametrize("setting", [True, "auto", False])
def test_a_prefork_worker_reports_from_one_process_beside_its_pool(faults: Faults, setting: object) -> None:
    # Given a prefork worker with two pool processes
    proc = faults.worker("rp", pool="prefork", concurrency=2, mageflow_reporting_process=setting)
    pool = _pool_processes(faults, "rp")
    assert len(pool) == 2

    # When a swarm runs on it to the end
    app = faults.app()
    members = [app.signature("faults.value", args=(i,)) for i in range(40)]
    result = swarm(tasks=members, config=SwarmConfig(max_concurrency=4), is_swarm_closed=True, app=app).apply_async()
    assert result.get(timeout=60) == list(range(40))

    # Then the process that finalized it is a child of the worker: with the setting on, not one of its pool
    # processes (the reporting process); by default and with the setting off, one of them (its reporter thread)
    found = wait_for(lambda: faults.probe.get(probe_key("finished_by", result.id)), message="the finalizer's pid")
    pid, ppid = (int(x) for x in found.split())
    assert ppid == proc.pid
    assert (pid in pool) is (setting is not True)

    # And a warm shutdown ends with the reporting process gone on its own (not terminated after a timeout)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert not process_running(pid)
    assert "did not exit" not in faults.log("rp")

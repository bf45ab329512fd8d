"""R3: reconciling lost members needs their stored results, so ``install`` warns when they are not kept."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from celery import Celery
from faultkit import Faults

from mageflow_celery import SwarmConfig, install, swarm
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory
from mageflow_celery.worker.reaper import ReaperStep, reap_once

URL = "redis://127.0.0.1:1/0"  # never contacted: install connects lazily


def installed(caplog: pytest.LogCaptureFixture, **conf: Any) -> tuple[Celery, list[str]]:
    app = Celery("warn", set_as_current=False)
    app.conf.update(conf)
    with caplog.at_level(logging.WARNING, logger="mageflow_celery"):
        install(app, redis_url=URL)
    return app, [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_install_warns_without_a_result_backend(caplog: pytest.LogCaptureFixture) -> None:
    _, warnings = installed(caplog)
    assert len(warnings) == 1 and "no result backend" in warnings[0]


def test_install_warns_when_results_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    _, warnings = installed(caplog, result_backend=URL, task_ignore_result=True)
    assert len(warnings) == 1 and "task_ignore_result" in warnings[0]


def test_install_is_quiet_with_stored_results_and_adds_the_reaper_to_workers(caplog: pytest.LogCaptureFixture) -> None:
    app, warnings = installed(caplog, result_backend=URL)
    assert warnings == []
    assert ReaperStep in app.steps["worker"]


# -- a worker without install(app) (D6) -----------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.worker
def test_members_run_by_a_worker_without_install_are_reconciled_within_the_lease_with_a_warning(
    faults: Faults, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a worker whose project forgot install(app): it runs members, but nothing records or reports them
    app = faults.app()
    faults.worker("bare", concurrency=2, installed=False)
    s = swarm(
        tasks=[app.signature("faults.work") for _ in range(3)],
        success_callbacks=[app.signature("faults.callback")],
        config=SwarmConfig(lease_s=1, dispatch_timeout_s=900),
        is_swarm_closed=True,
        app=app,
    )
    result = s.apply_async()
    wait_for(lambda: len(faults.executions(result.id)) == 3, message="the bare worker to run the members")

    # When a reaper looks (any installed worker runs one; here the test runs its ticks)
    with caplog.at_level(logging.WARNING, logger="mageflow_celery"):
        wait_for(lambda: reap_once(app).recovered and result.ready(), timeout_s=10, interval_s=0.2)

    # Then the members were reconciled from the result backend long before the 900 s dispatch timeout,
    # with a WARNING that names the problem, and the swarm finished with their results
    assert result.get(timeout=5) == [0, 1, 2]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("does not call mageflow_celery.install(app)" in w for w in warnings), warnings


@pytest.mark.redis
@pytest.mark.worker
def test_a_worker_warns_at_start_about_tasks_that_ignore_their_results(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an app that stores results, with one task that sets ignore_result=True of its own
    @mageflow_app.task(name="t.fire_and_forget", shared=False, ignore_result=True)
    def fire_and_forget() -> None:
        return None

    @mageflow_app.task(name="t.kept", shared=False)
    def kept() -> None:
        return None

    # When a worker starts, then it warns once, naming that task only
    with caplog.at_level(logging.WARNING, logger="mageflow_celery"):
        mageflow_worker(concurrency=1)
    warnings = [r.getMessage() for r in caplog.records if "ignore_result=True" in r.getMessage()]
    assert len(warnings) == 1 and "t.fire_and_forget" in warnings[0] and "t.kept" not in warnings[0]

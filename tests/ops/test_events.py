"""O3: swarm transitions are sent as Celery events by the process that made them, and only when events are
on there (the client: ``task_send_sent_event``; a worker: task events, also enabled remotely)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from eventlog import EventLog
from opskit import Ops, define_tasks

from mageflow_celery import SwarmConfig, SwarmResult, install, swarm
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]

HERE = Path(__file__).resolve().parent
COUNT_FIELDS = ("total", "registered", "queued", "dispatched", "running", "succeeded", "failed", "cancelled", "done")


@pytest.fixture
def worker_app(mageflow_celery_config: dict[str, Any], mageflow_redis_url: str) -> Iterator[Celery]:
    """A second app on the same Redis, for the worker: its events switch is its own (per app)."""
    app = Celery("events-worker", set_as_current=False)
    app.conf.update({**mageflow_celery_config, "task_send_sent_event": False})
    install(app, redis_url=mageflow_redis_url)
    yield app
    app.close()


@pytest.fixture
def events(mageflow_app: Celery) -> Iterator[EventLog]:
    log = EventLog(mageflow_app).start()
    yield log
    log.stop()


def _lifecycle(client: Celery, ops: Ops) -> SwarmResult:
    """Start a 3-member open swarm (limit 1), pause it, let member 0 end, resume, close, let it finish."""
    members = [client.signature("ops.gated", args=(i,)) for i in range(3)]
    res = swarm(tasks=members, config=SwarmConfig(max_concurrency=1), task_name="evented", app=client).apply_async()
    ops.wait_started(0)
    assert res.pause() is True
    ops.open(0)
    wait_for(lambda: res.progress().succeeded == 1, message="member 0 to end")
    assert res.resume() is True
    ops.wait_started(1)
    assert res.close_swarm() is True
    ops.open_all()
    assert res.get(timeout=20) == [0, 10, 20]
    return res


@pytest.mark.mageflow(task_send_sent_event=True)
def test_the_client_and_a_worker_with_task_events_send_the_five_swarm_events_with_the_counts(
    mageflow_app: Celery,
    worker_app: Celery,
    mageflow_redis_url: str,
    mageflow_worker: WorkerFactory,
    events: EventLog,
) -> None:
    # Given a client app sending sent-events, and a worker (of its own app) with task events on (-E)
    ops = define_tasks(worker_app, mageflow_redis_url)
    worker = mageflow_worker(app=worker_app, concurrency=2, task_events=True, hostname="evworker@test")

    # When a swarm goes through its whole lifecycle
    try:
        res = _lifecycle(mageflow_app, ops)
    finally:
        ops.open_all()
    wait_for(lambda: events.of("swarm-finished"), message="the swarm-finished event")
    events.sync()

    # Then each transition was sent once, in order, with the swarm's id, name, state and counts
    got = events.of(swarm_id=res.id)
    assert [e["type"] for e in got] == [
        "swarm-started",
        "swarm-paused",
        "swarm-resumed",
        "swarm-closed",
        "swarm-finished",
    ]
    started, paused, resumed, closed, finished = got
    assert all(e["name"] == "evented" for e in got)
    assert (started["state"], started["total"], started["closed"]) == ("running", 3, False)
    assert started["queued"] + started["dispatched"] == 3  # read right after the start
    assert (paused["state"], paused["paused"], paused["succeeded"]) == ("paused", True, 0)
    assert (resumed["state"], resumed["paused"], resumed["succeeded"]) == ("running", False, 1)
    assert (closed["closed"], closed["max_concurrency"]) == (True, 1)
    assert {k: finished[k] for k in ("state", "succeeded", "failed", "done", "total", "queued", "running")} == {
        "state": "succeeded",
        "succeeded": 3,
        "failed": 0,
        "done": 3,
        "total": 3,
        "queued": 0,
        "running": 0,
    }
    assert all(field in e for e in got for field in COUNT_FIELDS)
    # And the client's transitions came from the client, the finish from the worker that made it
    assert finished["hostname"] == worker.hostname == "evworker@test"
    assert "evworker@test" not in {e["hostname"] for e in (started, paused, resumed, closed)}


def test_no_swarm_event_is_sent_when_neither_the_client_nor_the_worker_has_events_on(
    mageflow_app: Celery,
    worker_app: Celery,
    mageflow_redis_url: str,
    mageflow_worker: WorkerFactory,
    events: EventLog,
) -> None:
    # Given a client without sent-events and a worker without task events
    ops = define_tasks(worker_app, mageflow_redis_url)
    mageflow_worker(app=worker_app, concurrency=2)

    # When a swarm goes through its whole lifecycle
    try:
        res = _lifecycle(mageflow_app, ops)
    finally:
        ops.open_all()

    # Then every event sent before the marker was received, and none is a swarm event
    events.sync()
    assert events.of() == []
    assert res.successful()


def test_a_prefork_worker_sends_swarm_events_from_its_pool_processes_once_enabled_remotely(
    mageflow_app: Celery, mageflow_redis: redis.Redis, mageflow_redis_url: str, events: EventLog, tmp_path: Path
) -> None:
    # Given a real `celery worker` (prefork, 2 processes; gossip and heartbeat on, task events off)
    env = {**os.environ, "OPS_CLI_REDIS_URL": mageflow_redis_url, "PYTHONPATH": str(HERE)}
    log = open(tmp_path / "worker.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "ops_cli_app", "worker", "-P", "prefork", "-c", "2", "-l", "WARNING"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: mageflow_app.control.ping(timeout=0.5), timeout_s=60, message="the worker to answer pings")

        def run() -> str:
            noop = mageflow_app.signature("ops_cli.noop")
            res = swarm(tasks=[noop, noop], is_swarm_closed=True, app=mageflow_app).apply_async()
            res.get(timeout=30)
            return res.id

        # When a swarm finishes while task events are off
        quiet = run()
        events.sync()
        # Then no event is sent for it
        assert events.of(swarm_id=quiet) == []

        # When task events are enabled remotely, then swarms finish again
        replies = mageflow_app.control.enable_events(reply=True, timeout=5)
        assert replies and all("ok" in next(iter(r.values())) for r in replies), replies
        ids: list[str] = []

        def evented() -> list[dict[str, Any]]:
            ids.append(run())
            events.sync()
            return [e for e in events.of("swarm-finished") if e["swarm_id"] in ids]

        # Then (within the switch's sync interval) their swarm-finished events come from a pool process
        finished = wait_for(evented, timeout_s=20, interval_s=0, message="a swarm-finished event")
        assert finished[0]["state"] == "succeeded" and finished[0]["succeeded"] == 2
        assert finished[0]["pid"] != proc.pid, "sent by the main process, not a pool process"
        assert finished[0]["hostname"].startswith("celery@")
        assert events.of("swarm-started") == []  # the client has no sent-events on
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()

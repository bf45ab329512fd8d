"""The reporting process (docs/operations.md, "Where outcomes are reported"): a worker whose tasks run in its
main process reports their outcomes from a forked process of its own; with the setting off, or once that
process is gone, from the reporter thread. Real Redis, real in-process workers; the process that finalized
a swarm is told by a ``swarm_finished`` receiver that records its pid in Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.exceptions import ImproperlyConfigured

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.signals import swarm_finished
from mageflow_celery.testing import process_client, process_running, wait_for
from mageflow_celery.testing.plugin import WorkerFactory
from mageflow_celery.worker.parts import reporter
from mageflow_celery.worker.reporting import SEND_NOW_MAX, Outcome, ReportingProcess

pytestmark = [pytest.mark.redis, pytest.mark.worker]

FINISHED_BY = "test:finished_by"


@pytest.fixture
def finisher(mageflow_app: Celery, mageflow_redis_url: str) -> Iterator[redis.Redis]:
    """Record in Redis the pid of the process that finalizes each swarm of ``mageflow_app``."""

    def record(sender: Any = None, app: Any = None, **_: Any) -> None:
        if app is mageflow_app:
            process_client(mageflow_redis_url).rpush(FINISHED_BY, os.getpid())

    swarm_finished.connect(record, weak=False, dispatch_uid="test-reporting-process")
    try:
        yield redis.Redis.from_url(mageflow_redis_url)
    finally:
        swarm_finished.disconnect(dispatch_uid="test-reporting-process")


@pytest.fixture(autouse=True)
def _echo(mageflow_app: Celery) -> None:
    @mageflow_app.task(name="rp.echo", shared=False)
    def echo(i: int) -> int:
        return i


def _run_swarm(app: Celery, n: int = 40) -> None:
    echo = app.tasks["rp.echo"]
    s = swarm(tasks=[echo.s(i) for i in range(n)], config=SwarmConfig(max_concurrency=3), is_swarm_closed=True, app=app)
    assert sorted(s.apply_async().get(timeout=30)) == list(range(n))


def _finished_by(client: redis.Redis) -> int:
    found = wait_for(lambda: client.lrange(FINISHED_BY, 0, -1), message="the swarm_finished receiver")
    assert len(found) == 1
    return int(found[0])


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_a_single_process_worker_reports_from_its_reporting_process(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, finisher: redis.Redis, pool: str
) -> None:
    mageflow_worker(pool=pool, concurrency=2)
    process = reporter(runtime_for(mageflow_app))._process
    assert process is not None and process.alive()
    assert process.pid != os.getpid()

    _run_swarm(mageflow_app)

    assert _finished_by(finisher) == process.pid


@pytest.mark.mageflow(mageflow_reporting_process=False)
def test_with_the_setting_off_the_worker_reports_from_a_thread(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, finisher: redis.Redis
) -> None:
    mageflow_worker(pool="threads", concurrency=2)
    assert reporter(runtime_for(mageflow_app))._process is None

    _run_swarm(mageflow_app)

    assert _finished_by(finisher) == os.getpid()


@pytest.mark.mageflow(mageflow_reporting_process="yes")
def test_a_bad_setting_stops_the_worker_from_starting(mageflow_app: Celery, mageflow_worker: WorkerFactory) -> None:
    with pytest.raises(ImproperlyConfigured, match="mageflow_reporting_process must be 'auto', True or False"):
        mageflow_worker(pool="threads", concurrency=2)


def test_outcomes_go_to_the_thread_once_the_reporting_process_is_gone(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, finisher: redis.Redis
) -> None:
    mageflow_worker(pool="threads", concurrency=2)
    rep = reporter(runtime_for(mageflow_app))
    process = rep._process
    assert process is not None and process.pid is not None
    os.kill(process.pid, 9)
    wait_for(lambda: not process.alive(), message="the reporting process to die")

    _run_swarm(mageflow_app)

    assert _finished_by(finisher) == os.getpid()
    assert rep._process is None


def _held_handler(url: str) -> Callable[[list[Outcome]], None]:
    def handle(batch: list[Outcome]) -> None:  # runs in the reporting process; holds until the test says go
        r = process_client(url)
        r.set("test:holding", 1)
        deadline = time.monotonic() + 20
        while not r.exists("test:go") and time.monotonic() < deadline:
            time.sleep(0.01)
        r.rpush("test:reported", *[index for _, index, _, _ in batch])

    return handle


def test_closing_and_joining_waits_until_every_outcome_sent_before_was_reported(mageflow_redis_url: str) -> None:
    client = redis.Redis.from_url(mageflow_redis_url)
    process = ReportingProcess(_held_handler(mageflow_redis_url), batch_max=7)
    for i in range(50):
        assert process.send([("s1", i, "s", b"null")]) == "sent"
    assert not process.drained(timeout_s=0.2)  # held by the handler
    client.set("test:go", 1)
    process.close()
    process.join()

    assert [int(x) for x in client.lrange("test:reported", 0, -1)] == list(range(50))
    assert not process.alive()
    assert process.send([("s1", 50, "s", b"null")]) == "gone"


def test_on_sigterm_the_reporting_process_reports_what_the_pipe_holds_then_exits(mageflow_redis_url: str) -> None:
    client = redis.Redis.from_url(mageflow_redis_url)
    process = ReportingProcess(_held_handler(mageflow_redis_url), batch_max=3)
    for i in range(10):
        assert process.send([("s1", i, "s", b"null")]) == "sent"
    assert process.pid is not None
    wait_for(lambda: client.exists("test:holding"), message="the first batch")  # its signal handlers are set
    os.kill(process.pid, signal.SIGINT)  # ignored: Ctrl-C reaches the whole group, the worker stops it
    os.kill(process.pid, signal.SIGTERM)
    client.set("test:go", 1)

    wait_for(lambda: not process.alive(), message="the reporting process to exit on SIGTERM")
    assert [int(x) for x in client.lrange("test:reported", 0, -1)] == list(range(10))
    process.close()
    process.join()


def test_the_reporting_process_exits_when_its_worker_exits(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys\n"
        "from mageflow_celery.worker.reporting import ReportingProcess\n"
        "p = ReportingProcess(lambda batch: None, batch_max=10)\n"
        "print(p.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True)
    pid = int(out.stdout.split()[0])

    # (an exited orphan may stay a zombie: nothing in this container is sure to reap it)
    wait_for(lambda: not process_running(pid), timeout_s=10, message="the orphaned reporting process to exit")


def test_send_now_writes_only_what_cannot_block_and_loses_nothing(mageflow_redis_url: str) -> None:
    """A task's thread writes its outcome itself only when that cannot block; what it could not write is left
    to the caller (the reporter thread's queue), and everything written is reported exactly once."""
    client = redis.Redis.from_url(mageflow_redis_url)
    process = ReportingProcess(_held_handler(mageflow_redis_url), batch_max=1000)
    assert not process.send_now([("s1", -1, "s", b"x" * (SEND_NOW_MAX + 1))])  # too big for one atomic write
    written: list[int] = []
    for i in range(100_000):  # the handler holds its first batch: the pipe fills up
        if not process.send_now([("s1", i, "s", b"null")]):
            break
        written.append(i)
    assert 0 < len(written) < 100_000  # the full pipe was noticed instead of blocking
    assert not process.drained(timeout_s=0.1)
    client.set("test:go", 1)
    process.close()
    process.join()

    assert [int(x) for x in client.lrange("test:reported", 0, -1)] == written
    assert not process.send_now([("s1", 0, "s", b"null")])  # closed: nothing written, no error

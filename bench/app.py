"""The Celery app the benchmark's workers run (``celery -A bench.app worker``) and its client uses.

Configured from the environment, which :mod:`bench.run` sets for itself and for the worker
subprocesses: ``BENCH_BROKER_URL`` (broker and result backend) and ``BENCH_STATE_URL`` (the swarm
state, a separate Redis server so its commands can be counted apart).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from celery import Celery

from mageflow_celery import install

BROKER_ENV = "BENCH_BROKER_URL"
STATE_ENV = "BENCH_STATE_URL"


def _url(name: str) -> str:
    url = os.environ.get(name)
    if not url:
        raise RuntimeError(f"{name} is not set; run the benchmark with `python -m bench.run`")
    return url


app = Celery("bench", set_as_current=False)
app.conf.update(
    broker_url=_url(BROKER_ENV),
    result_backend=_url(BROKER_ENV),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    # For paired A/Bs (bench.ab): BENCH_REPORTING_PROCESS=0 keeps the reporter thread on every pool.
    mageflow_reporting_process={"0": False, "1": True}.get(os.environ.get("BENCH_REPORTING_PROCESS", ""), "auto"),
)
install(app, redis_url=_url(STATE_ENV))


@app.task(name="bench.noop")
def noop(*args: Any, **kwargs: Any) -> None:
    """Does nothing: the cost measured is the framework's."""


@app.task(name="bench.sleep")
def sleep_ms(ms: float = 10.0) -> tuple[str, float, float]:
    """Sleeps ``ms`` milliseconds (an I/O-bound member); returns its pool slot (process and thread),
    start and end times."""
    start = time.time()
    time.sleep(ms / 1000.0)
    return f"{os.getpid()}:{threading.get_ident()}", start, time.time()


@app.task(name="bench.stamp")
def stamp() -> tuple[float, float]:
    """Returns the wall-clock times at which its body started and ended (hand-off latency)."""
    return time.time(), time.time()


@app.task(name="bench.collect")
def collect(results: list[Any]) -> int:
    """A chord callback: counts its results."""
    return len(results)

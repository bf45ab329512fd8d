"""Helpers for the operability tests: members gated on Redis keys the test controls.

A gated member records ``start:<i>`` in an event list when it starts, waits until the test opens its
gate (``ops:gate:<i>``) or every gate (``ops:gate:all``), records ``end:<i>`` and returns ``10 * i``
(or raises ``ValueError`` when asked to fail). The test writes its own markers into the same list, so
"nothing started while paused" is read from the order of events in Redis, never from clocks.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery, Task

from mageflow_celery.testing import wait_for

EVENTS = "ops:events"
PIDS = "ops:pids"
GATE_ALL = "ops:gate:all"
#: A gated member gives up after this long, so a broken test never hangs a worker for good.
GATE_DEADLINE_S = 60.0


@dataclass
class Ops:
    """The test's handle on the gated tasks and the event list."""

    app: Celery
    r: redis.Redis
    gated: Task
    callback: Task
    errback: Task
    ping: Task

    def events(self) -> list[str]:
        return [e.decode() for e in self.r.lrange(EVENTS, 0, -1)]

    def started(self) -> list[int]:
        return [int(e.split(":")[1]) for e in self.events() if e.startswith("start:")]

    def ended(self) -> list[int]:
        return [int(e.split(":")[1]) for e in self.events() if e.startswith("end:")]

    def mark(self, label: str) -> None:
        self.r.rpush(EVENTS, label)

    def between(self, first: str, last: str | None = None) -> list[str]:
        """Events after marker ``first`` (and before marker ``last``)."""
        events = self.events()
        start = events.index(first) + 1
        return events[start : events.index(last)] if last else events[start:]

    def open(self, *indices: int) -> None:
        for i in indices:
            self.r.set(f"ops:gate:{i}", 1)

    def open_all(self) -> None:
        self.r.set(GATE_ALL, 1)

    def pid(self, index: int) -> int | None:
        raw = self.r.hget(PIDS, str(index))
        return int(raw) if raw else None

    def wait_started(self, *indices: int) -> None:
        """Wait until the members ``indices`` are executing (they record ``start:<i>`` first thing)."""
        wait_for(lambda: set(indices) <= set(self.started()), message=f"members {indices} to start")

    def roundtrip(self) -> None:
        """Run a plain task through the worker (proves it consumes, and drains what was sent before)."""
        assert self.ping.delay().get(timeout=20) == "pong"


def _gate(r: redis.Redis, index: int) -> None:
    deadline = time.monotonic() + GATE_DEADLINE_S
    while not r.exists(f"ops:gate:{index}", GATE_ALL):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {index} never opened")
        time.sleep(0.005)


def define_tasks(app: Celery, url: str) -> Ops:
    """Register the gated member, callbacks and a ping task on ``app`` (before any worker starts).

    Each task run opens its own client, so closing the test's client never breaks a running member.
    """

    @app.task(name="ops.gated", shared=False)
    def gated(i: int, fail: bool = False, **_: Any) -> int:
        with redis.Redis.from_url(url) as r:
            r.rpush(EVENTS, f"start:{i}")
            r.hset(PIDS, str(i), os.getpid())
            _gate(r, i)
            r.rpush(EVENTS, f"end:{i}")
        if fail:
            raise ValueError(f"member {i} failed on purpose")
        return 10 * i

    def record(label: str) -> None:
        with redis.Redis.from_url(url) as r:
            r.rpush(EVENTS, label)

    @app.task(name="ops.callback", shared=False)
    def callback(results: Any, *_: Any, **__: Any) -> None:
        record("callback")

    @app.task(name="ops.errback", shared=False)
    def errback(summary: Any, *_: Any, **__: Any) -> None:
        record("errback")

    @app.task(name="ops.ping", shared=False)
    def ping() -> str:
        return "pong"

    return Ops(app, redis.Redis.from_url(url), gated, callback, errback, ping)

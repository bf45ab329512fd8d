"""Helpers for testing code that uses mageflow_celery.

The pytest fixtures live in :mod:`mageflow_celery.testing.plugin`, which pytest loads by itself once
the package is installed (``pytest11`` entry point ``mageflow``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import redis
from celery import Celery

from ..client.result import SwarmResult
from ..engine.runtime import runtime_for
from ._redis import RedisCluster, RedisServer, find_free_port
from ._redis_sentinel import RedisSentinel
from ._redis_tls import RedisTLSServer, TLSFiles
from .recorder import RecordedSwarm, SwarmRecorder

__all__ = [
    # recording swarms without Redis (N6)
    "RecordedSwarm",
    "SwarmRecorder",
    # waiting
    "wait_for",
    "wait_for_swarm",
    "settle_swarm",
    # checking
    "max_overlap",
    "PeakSampler",
    "process_client",
    "process_running",
    "redis_snapshot",
    # throwaway Redis
    "RedisCluster",
    "RedisSentinel",
    "RedisServer",
    "RedisTLSServer",
    "TLSFiles",
    "find_free_port",
]

T = TypeVar("T")

_process_clients: dict[tuple[int, str], redis.Redis] = {}


def process_client(url: str) -> redis.Redis:
    """A Redis client for ``url``, one per process: tasks that record what they do use it, and a prefork
    pool process gets its own after the fork instead of sharing its parent's connections.

    Example:
        >>> @app.task  # doctest: +SKIP
        ... def work(i):
        ...     process_client(app.conf.broker_url).rpush("test:ran", i)
    """
    key = (os.getpid(), url)
    client = _process_clients.get(key)
    if client is None:
        client = _process_clients[key] = redis.Redis.from_url(url)
    return client


def wait_for(
    predicate: Callable[[], T],
    timeout_s: float = 10.0,
    interval_s: float = 0.05,
    *,
    message: str | None = None,
) -> T:
    """Call ``predicate`` every ``interval_s`` seconds until it returns a truthy value, and return it.

    Args:
        predicate: Condition to poll; it is called at least once.
        timeout_s: Seconds before giving up.
        interval_s: Seconds between two calls.
        message: What is awaited, for the error; defaults to the predicate's name.

    Returns:
        The first truthy value returned by ``predicate``.

    Raises:
        TimeoutError: ``predicate`` was still falsy after ``timeout_s`` seconds.

    Example:
        >>> wait_for(lambda: result.ready(), timeout_s=5, message="the result")  # doctest: +SKIP
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__qualname__", repr(predicate))
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what} (last value: {value!r})")
        time.sleep(interval_s)


def wait_for_swarm(swarm_id: str, app: Celery, timeout_s: float = 30.0) -> SwarmResult:
    """Wait until the swarm ``swarm_id`` is finished (whatever its outcome) and return its result.

    Args:
        swarm_id: Id of the swarm.
        app: The Celery app the swarm runs on (``install`` was called on it).
        timeout_s: Seconds before giving up.

    Returns:
        The :class:`~mageflow_celery.SwarmResult`, ready: ``.get()`` returns or raises at once.

    Raises:
        TimeoutError: The swarm was not finished after ``timeout_s`` seconds.

    Example:
        >>> result = wait_for_swarm(swarm_id, mageflow_app, timeout_s=10)  # doctest: +SKIP
        >>> result.get(timeout=1)  # doctest: +SKIP
    """
    result = SwarmResult(swarm_id, app=app)
    wait_for(result.ready, timeout_s=timeout_s, message=f"swarm {swarm_id!r} to finish")
    return result


def settle_swarm(swarm_id: str, app: Celery, timeout_s: float = 20.0) -> None:
    """Wait until a finished swarm's finalizer has published everything (its callbacks, its result task) and
    a worker has started all of it: then a test can assert that a callback ran *exactly* once.

    It waits for the finalization claim to be released, then sends a barrier (Celery's built-in
    ``celery.accumulate``) and waits for its result: on a worker consuming the default queue with a free
    slot, messages published before the barrier start before it, so a duplicate would have run by then.
    Links of the swarm itself run after its result task: wait for the first call, then settle.

    Raises:
        TimeoutError: the swarm was not finalized, or the barrier did not run, within ``timeout_s``.

    Example:
        >>> settle_swarm(result.id, mageflow_app)  # doctest: +SKIP
        >>> assert recorded_calls() == [[1, 2, 3]]  # exactly one call  # doctest: +SKIP
    """
    store = runtime_for(app).store
    wait_for(
        lambda: store.meta(swarm_id).get("fin") == b"done",
        timeout_s=timeout_s,
        message=f"swarm {swarm_id!r}'s finalizer to release its claim",
    )
    barrier = app.tasks["celery.accumulate"].delay("settled", index=0)
    if barrier.get(timeout=timeout_s) != "settled":
        raise TimeoutError(f"the barrier after swarm {swarm_id!r} did not come back")


def max_overlap(intervals: Iterable[tuple[Any, float, float]]) -> int:
    """The most ``(label, start, end)`` intervals open at one instant (an end at t closes before a start at t).

    Record each member's start and end (e.g. in a Redis list) and assert
    ``1 < max_overlap(intervals) <= max_concurrency`` to check a limit is kept and used.
    """
    items = list(intervals)
    events = sorted([(start, 1) for _, start, _ in items] + [(end, -1) for _, _, end in items])
    open_now = peak = 0
    for _, delta in events:
        open_now += delta
        peak = max(peak, open_now)
    return peak


def process_running(pid: int) -> bool:
    """Whether process ``pid`` runs: it exists and has not exited (a zombie, exited and waiting to be reaped,
    does not run). Reads ``/proc`` where there is one.

    Example:
        >>> wait_for(lambda: not process_running(worker_pid), message="the worker to exit")  # doctest: +SKIP
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # the state field, after the command name
    except FileNotFoundError:
        return False
    except OSError:  # no /proc on this platform
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


class PeakSampler:
    """Calls ``read`` every ``interval_s`` in a thread while the ``with`` block runs and keeps the highest value.

    A sampled peak can miss a short excess between two reads: assert an upper bound with it together with
    a lower one (the limit was reached), or use :func:`max_overlap` on recorded intervals for exactness.

    Example:
        >>> with PeakSampler(lambda: get_pool(app, "api").in_use) as usage:  # doctest: +SKIP
        ...     result = my_swarm.apply_async().get()
        >>> assert usage.samples > 0 and usage.peak <= 4  # doctest: +SKIP
    """

    def __init__(self, read: Callable[[], int], interval_s: float = 0.005) -> None:
        self.peak = 0
        #: Reads made so far.
        self.samples = 0
        self._read, self._interval_s = read, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mageflow-peak-sampler", daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.peak = max(self.peak, self._read())
            self.samples += 1


def redis_snapshot(client: redis.Redis, match: str = "mageflow:*") -> dict[bytes, Any]:
    """The content of every key matching ``match``, by type (TTLs left out): compare two to prove
    that a call wrote nothing. The reaper's lock (``<prefix>:reaper``) is left out: a running worker's
    reaper takes and renews it on its own timer, whatever the call under test does."""
    out: dict[bytes, Any] = {}
    for key in sorted(client.scan_iter(match=match)):
        if key.endswith(b":reaper"):
            continue
        kind = client.type(key)
        if kind == b"hash":
            out[key] = client.hgetall(key)
        elif kind == b"list":
            out[key] = client.lrange(key, 0, -1)
        elif kind == b"zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = client.dump(key)
    return out

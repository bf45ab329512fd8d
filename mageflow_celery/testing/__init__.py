"""Helpers for testing code that uses mageflow_celery.

The pytest fixtures live in :mod:`mageflow_celery.testing.plugin`, which pytest loads by itself once
the package is installed (``pytest11`` entry point ``mageflow``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ._redis import RedisCluster, RedisServer, find_free_port

if TYPE_CHECKING:
    from celery import Celery

    from mageflow_celery import SwarmResult

__all__ = [
    # waiting
    "wait_for",
    "wait_for_swarm",
    # throwaway Redis
    "RedisCluster",
    "RedisServer",
    "find_free_port",
]

T = TypeVar("T")


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
    from mageflow_celery import SwarmResult

    result = SwarmResult(swarm_id, app=app)
    wait_for(result.ready, timeout_s=timeout_s, message=f"swarm {swarm_id!r} to finish")
    return result

"""Fixtures of the fault-injection tests (helpers in ``faultkit``, the worker app in ``faults_app``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from faultkit import Faults

from mageflow_celery.testing import RedisCluster
from mageflow_celery.testing.plugin import redis_unavailable


@pytest.fixture
def faults(mageflow_redis_url: str, mageflow_redis: redis.Redis, tmp_path: Path) -> Iterator[Faults]:
    """Client apps and worker subprocesses on the session's Redis (flushed around the test)."""
    kit = Faults(mageflow_redis_url, tmp_path)
    try:
        yield kit
    finally:
        kit.stop_all()


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    """A throwaway 3-master Redis Cluster for the swarm state."""
    try:
        node = RedisCluster().start()
    except RuntimeError as exc:
        redis_unavailable(f"cannot start a Redis Cluster: {exc}")
    try:
        yield node
    finally:
        node.stop()

"""Fixtures of the fault-injection tests (helpers in ``faultkit``, the worker app in ``faults_app``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from faultkit import Faults


@pytest.fixture
def faults(mageflow_redis_url: str, mageflow_redis: redis.Redis, tmp_path: Path) -> Iterator[Faults]:
    """Client apps and worker subprocesses on the session's Redis (flushed around the test)."""
    kit = Faults(mageflow_redis_url, tmp_path)
    try:
        yield kit
    finally:
        kit.stop_all()

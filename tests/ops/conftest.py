"""Fixtures for the operability tests (helpers in ``opskit``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery
from opskit import Ops, define_tasks

from mageflow_celery.testing.plugin import WorkerFactory


@pytest.fixture
def ops(mageflow_app: Celery, mageflow_redis_url: str, mageflow_worker: WorkerFactory) -> Iterator[Ops]:
    """Gated tasks on ``mageflow_app`` (define them before starting a worker). Gates open at teardown."""
    ops = define_tasks(mageflow_app, mageflow_redis_url)
    try:
        yield ops
    finally:
        ops.open_all()
        ops.r.close()

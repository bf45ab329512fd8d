"""The plugin's ``mageflow_app`` and ``mageflow_worker`` fixtures run plain Celery tasks end to end."""

from __future__ import annotations

import pytest
from celery import Celery

from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def test_mageflow_worker_runs_tasks_of_mageflow_app(mageflow_app: Celery, mageflow_worker: WorkerFactory) -> None:
    # Given a task on the test app and a started worker
    @mageflow_app.task(name="tests.add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    worker = mageflow_worker(concurrency=2)

    # When the task is sent, then the worker runs it and the result comes back
    assert worker.app is mageflow_app
    assert add.delay(2, 3).get(timeout=10) == 5


@pytest.mark.mageflow(task_default_queue="elsewhere")
def test_mageflow_marker_configures_the_app_and_its_workers(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given an app whose default queue is overridden by the marker
    @mageflow_app.task(name="tests.echo", shared=False)
    def echo(value: str) -> str:
        return value

    # When a solo worker runs and a task is sent
    worker = mageflow_worker(pool="solo", concurrency=1)
    result = echo.delay("hi")

    # Then the worker consumes the overridden queue and runs the task
    assert [queue.name for queue in worker.consumer.task_consumer.queues] == ["elsewhere"]
    assert result.get(timeout=10) == "hi"

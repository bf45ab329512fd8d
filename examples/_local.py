"""Shared by the examples: run against ``$REDIS_URL``, or a throwaway local Redis and an in-process worker.

With ``REDIS_URL`` set, the examples use that Redis (broker, result backend and swarm state); without it
they start their own ``redis-server`` on a free loopback port. Either way they start an in-process
worker, unless ``EXAMPLES_EXTERNAL_WORKER=1`` says a worker runs elsewhere
(``celery -A examples.<name>.tasks worker``). So one command runs each example end to end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from celery import Celery
from celery.contrib.testing.worker import start_worker

from mageflow_celery import install
from mageflow_celery.testing import RedisServer

#: The Redis URL the examples use when no ``REDIS_URL`` is set (filled in by :func:`local_stack`).
DEFAULT_URL = "redis://127.0.0.1:6379/0"


def make_app(name: str) -> Celery:
    """The example's Celery app, configured from ``REDIS_URL`` (or later by :func:`local_stack`)."""
    url = os.environ.get("REDIS_URL", DEFAULT_URL)
    app = Celery(name, broker=url, backend=url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=3600,
        worker_hijack_root_logger=False,
    )
    return app


@contextmanager
def local_stack(app: Celery, concurrency: int = 4, pool: str = "threads") -> Iterator[str]:
    """Yield a Redis URL with a worker consuming for ``app``; start both locally if ``REDIS_URL`` is unset."""
    with ExitStack() as stack:
        url = os.environ.get("REDIS_URL")
        if not url:
            url = stack.enter_context(RedisServer()).url
            app.conf.update(broker_url=url, result_backend=url)
        install(app, redis_url=url)
        if not os.environ.get("EXAMPLES_EXTERNAL_WORKER"):
            stack.enter_context(
                start_worker(app, pool=pool, concurrency=concurrency, perform_ping_check=False, loglevel="WARNING")
            )
        yield url

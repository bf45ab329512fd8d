"""Shared by the examples: run against ``$REDIS_URL``, or a throwaway local Redis and an in-process worker.

With ``REDIS_URL`` set, the examples use that Redis (broker, result backend and swarm state); without it
they start their own ``redis-server`` on a free loopback port. Either way they start an in-process
worker, unless ``EXAMPLES_EXTERNAL_WORKER=1`` says a worker runs elsewhere
(``celery -A examples.<name>.tasks worker``, started with the same ``REDIS_URL``). So one command runs
each example end to end.

Each example's app is configured and installed when its ``tasks`` module is imported, as a real
project does it (a worker started with ``celery -A`` only imports that module). So ``REDIS_URL`` is
read at import time; without it, the URL of the throwaway server is chosen then (a free port) and
:func:`local_stack` starts the server on it.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import urlsplit

from celery import Celery
from celery.contrib.testing.worker import start_worker

from mageflow_celery import install
from mageflow_celery.testing import RedisServer, find_free_port, wait_for

#: Swarm states (``SwarmProgress.state``) after which nothing changes any more.
FINISHED = ("succeeded", "failed", "cancelled")


@functools.cache
def _throwaway_url() -> str:
    return f"redis://127.0.0.1:{find_free_port()}/0"


def redis_url() -> str:
    """``$REDIS_URL``, else the URL of this process's throwaway server (started by :func:`local_stack`)."""
    return os.environ.get("REDIS_URL") or _throwaway_url()


def make_app(name: str) -> Celery:
    """The example's Celery app on :func:`redis_url`, with mageflow_celery installed."""
    url = redis_url()
    app = Celery(name, broker=url, backend=url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=3600,
        worker_hijack_root_logger=False,
    )
    install(app, redis_url=url)
    return app


@contextmanager
def local_stack(app: Celery, concurrency: int = 4, pool: str = "threads") -> Iterator[str]:
    """Yield the app's Redis URL with a worker consuming for ``app``; start both locally if needed.

    Without ``REDIS_URL``, a throwaway ``redis-server`` runs for the duration of the block; without
    ``EXAMPLES_EXTERNAL_WORKER``, so does an in-process worker.
    """
    with ExitStack() as stack:
        url = redis_url()
        install(app, redis_url=url)  # raises if the app was imported with another REDIS_URL
        external = bool(os.environ.get("EXAMPLES_EXTERNAL_WORKER"))
        if not os.environ.get("REDIS_URL"):
            if external:
                raise RuntimeError("EXAMPLES_EXTERNAL_WORKER needs REDIS_URL: the Redis your worker uses")
            stack.enter_context(RedisServer(port=urlsplit(url).port))
        if not external:
            stack.enter_context(
                start_worker(app, pool=pool, concurrency=concurrency, perform_ping_check=False, loglevel="WARNING")
            )
        yield url


def wait_with_progress(result: Any, timeout_s: float = 60.0, every_s: float = 0.25) -> Any:
    """Print the swarm's progress bar while it runs (a line per change), until it finishes."""
    deadline, last = time.monotonic() + timeout_s, ""
    while True:
        progress = result.progress()
        line = f"{progress.state:<9} {progress.bar()}  running {progress.running + progress.dispatched}"
        if line != last:
            print(line)
            last = line
        if progress.state in FINISHED or time.monotonic() > deadline:
            return progress
        time.sleep(every_s)


def callback_result(app: Celery, swarm_id: str, kind: str = "s", position: int = 0, timeout: float = 30) -> Any:
    """Wait for a swarm callback and return its result: callbacks have deterministic task ids,
    ``<swarm id>~s<position>`` for success callbacks and ``<swarm id>~e<position>`` for error callbacks."""
    return app.AsyncResult(f"{swarm_id}~{kind}{position}").get(timeout=timeout)


def poll_progress(fetch: Callable[[], dict[str, Any]], timeout_s: float = 60) -> dict[str, Any]:
    """Call ``fetch`` (e.g. a GET of a progress endpoint) until the swarm it reports finished; return that."""
    last: dict[str, Any] = {}

    def finished() -> bool:
        last.update(fetch())
        return last["state"] in FINISHED

    wait_for(finished, timeout_s, message="the swarm to finish")
    return last

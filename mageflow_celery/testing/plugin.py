"""pytest plugin: a throwaway Redis, a Celery app with mageflow installed, and embedded workers.

Installed as the ``pytest11`` entry point ``mageflow``, so it is active in any project that installs
mageflow_celery. Every fixture can be redefined in a ``conftest.py``:

================================  ========  ====================================================
fixture                           scope     provides
================================  ========  ====================================================
``mageflow_redis_url``            session   ``$MAGEFLOW_TEST_REDIS_URL``, or a throwaway server
``mageflow_redis``                function  a ``redis.Redis`` client; its db is flushed around the test
``mageflow_celery_config``        function  Celery settings (Redis broker and backend, JSON only)
``mageflow_app``                  function  a fresh Celery app with ``install(app, redis_url=...)``
``mageflow_worker``               function  ``make(app=None, pool="threads", concurrency=4, **kw)``
``swarm_recorder``                function  a :class:`~mageflow_celery.testing.SwarmRecorder`: swarms
                                            are recorded, not run (no Redis, no worker)
================================  ========  ====================================================

The ``@pytest.mark.mageflow(**overrides)`` marker overrides Celery settings for one test.

When Redis cannot be started or reached, tests that need it are skipped, unless the ``CI``
environment variable is set: then they fail.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, NoReturn, Protocol

import pytest
import redis
from celery import Celery
from celery import _state as celery_state
from celery.contrib.testing.worker import start_worker
from celery.worker import WorkController
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..install import install
from ._redis import RedisServer
from .recorder import SwarmRecorder

#: Environment variable naming an existing Redis to test against instead of a throwaway server.
REDIS_URL_ENV = "MAGEFLOW_TEST_REDIS_URL"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``mageflow`` marker."""
    config.addinivalue_line(
        "markers",
        "mageflow(**overrides): override Celery settings of the mageflow_app fixture for a test case",
    )


class WorkerFactory(Protocol):
    """Type of the ``mageflow_worker`` fixture."""

    def __call__(
        self, app: Celery | None = None, pool: str = "threads", concurrency: int = 4, **kwargs: Any
    ) -> WorkController: ...


def in_ci() -> bool:
    """Whether the ``CI`` environment variable is set (to anything but empty, ``0`` or ``false``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def service_unavailable(reason: str) -> NoReturn:
    """Skip the current test because a service it needs (Redis, RabbitMQ, a database) is unavailable, or
    fail it when running in CI, where every service must be there: a test never passes silently.

    Example:
        >>> try:  # doctest: +SKIP
        ...     Connection(amqp_url).ensure_connection(max_retries=1)
        ... except Exception as exc:
        ...     service_unavailable(f"RabbitMQ at {amqp_url} is unreachable: {exc!r}")
    """
    if in_ci():
        pytest.fail(f"{reason} (failing instead of skipping because CI is set)", pytrace=False)
    pytest.skip(reason)


def redis_unavailable(reason: str) -> NoReturn:
    """Skip the current test because Redis is unavailable, or fail it when running in CI."""
    service_unavailable(reason)


def _check_reachable(url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2, retry=Retry(NoBackoff(), 0))
    try:
        client.ping()
    except redis.RedisError as exc:
        redis_unavailable(f"Redis at {url} is unreachable: {exc}")
    finally:
        client.close()


@pytest.fixture(scope="session")
def mageflow_redis_url() -> Iterator[str]:
    """URL of the Redis used by the tests (broker, result backend and swarm state).

    ``$MAGEFLOW_TEST_REDIS_URL`` when set, otherwise a ``redis-server`` started on a free loopback
    port for the session. Redefine this fixture to use another server.
    """
    url = os.environ.get(REDIS_URL_ENV)
    if url:
        _check_reachable(url)
        yield url
        return
    server = RedisServer()
    try:
        server.start()
    except (RuntimeError, OSError) as exc:
        redis_unavailable(f"cannot start a Redis server for the tests: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def mageflow_redis(mageflow_redis_url: str) -> Iterator[redis.Redis]:
    """A client on ``mageflow_redis_url``; its database is flushed before and after the test.

    Only the URL's database is flushed (``FLUSHDB``), so pointing ``$MAGEFLOW_TEST_REDIS_URL`` at a
    spare database of a shared server is safe. Redefine this fixture to change the client.
    """
    client = redis.Redis.from_url(mageflow_redis_url)
    client.flushdb()
    try:
        yield client
    finally:
        try:
            client.flushdb()
        finally:
            client.close()


def _marker_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("mageflow")
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
def mageflow_celery_config(mageflow_redis_url: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Celery settings of the ``mageflow_app`` fixture, with the test's ``mageflow`` marker applied.

    Redefine this fixture to change the settings of every test, e.g.::

        @pytest.fixture
        def mageflow_celery_config(mageflow_celery_config):
            return {**mageflow_celery_config, "task_acks_late": True}
    """
    config: dict[str, Any] = {
        "broker_url": mageflow_redis_url,
        "result_backend": mageflow_redis_url,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "broker_transport_options": {"visibility_timeout": 3600},
        "worker_hijack_root_logger": False,
        # Celery 5.4-5.6 warn (CPendingDeprecationWarning) at each worker start when this is unset
        "broker_connection_retry_on_startup": True,
        "result_expires": 3600,
    }
    config.update(_marker_overrides(request))
    return config


@pytest.fixture
def mageflow_app(
    mageflow_redis_url: str,
    mageflow_celery_config: dict[str, Any],
    mageflow_redis: redis.Redis,
    request: pytest.FixtureRequest,
) -> Iterator[Celery]:
    """A fresh Celery app configured from ``mageflow_celery_config``, with mageflow installed.

    The Redis database is flushed before and after the test (through ``mageflow_redis``), so no
    message or swarm leaks from one test into the next. The ``mageflow`` marker's overrides are
    applied even when ``mageflow_celery_config`` is redefined. Redefine this fixture to build the
    app differently (e.g. to install mageflow with a ``key_prefix``).
    """
    app = Celery("mageflow-test", set_as_current=False)
    app.conf.update({**mageflow_celery_config, **_marker_overrides(request)})
    install(app, redis_url=mageflow_redis_url)
    try:
        yield app
    finally:
        # Collect unreferenced AsyncResults now: their __del__ unsubscribes from the result backend,
        # which retries for ~20 s once the session's Redis is gone.
        gc.collect()
        app.close()


@contextmanager
def _restoring_current_app() -> Iterator[None]:
    """Undo ``start_worker`` making its app the current and default one."""
    state: Any = celery_state
    default_app, current_app = state.default_app, getattr(state._tls, "current_app", None)
    try:
        yield
    finally:
        state.default_app = default_app
        state._tls.current_app = current_app


@pytest.fixture
def mageflow_worker(mageflow_app: Celery) -> Iterator[WorkerFactory]:
    """Factory starting embedded Celery workers (threads in this process); all are stopped at teardown.

    ``make(app=None, pool="threads", concurrency=4, **kwargs)`` starts a worker consuming for
    ``app`` (default ``mageflow_app``) and returns its ``WorkController`` once it is consuming.
    ``kwargs`` go to :func:`celery.contrib.testing.worker.start_worker` (e.g. ``queues=["q1"]``).
    Redefine this fixture to change how workers start, e.g. another default pool.

    Example:
        >>> def test_runs(mageflow_app, mageflow_worker):  # doctest: +SKIP
        ...     mageflow_worker(concurrency=2)
    """
    with ExitStack() as stack:
        stack.enter_context(_restoring_current_app())

        def make(
            app: Celery | None = None, pool: str = "threads", concurrency: int = 4, **kwargs: Any
        ) -> WorkController:
            options: dict[str, Any] = {
                "perform_ping_check": False,
                "shutdown_timeout": 30,
                "loglevel": "WARNING",
                **kwargs,
            }
            worker = start_worker(app or mageflow_app, pool=pool, concurrency=concurrency, **options)
            return stack.enter_context(worker)

        yield make


@pytest.fixture
def swarm_recorder() -> Iterator[SwarmRecorder]:
    """Record the swarms the code under test starts instead of running them: no Redis, no worker.

    Example:
        >>> def test_nightly_import(swarm_recorder):  # doctest: +SKIP
        ...     start_nightly_import()
        ...     swarm_recorder.assert_swarm_dispatched("import", tasks=["tasks.load"] * 3, kwargs={"day": "mon"})
    """
    with SwarmRecorder() as recorder:
        yield recorder

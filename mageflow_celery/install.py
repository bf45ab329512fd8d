"""The composition root: :func:`install` wires mageflow_celery into a Celery app.

It is the one module that knows every layer (see ``docs/architecture.md``): it creates the app's
runtime (engine), connects the worker's signal receivers, start gate and reaper bootstep (worker), the swarm
events (engine receivers, and the worker's switch telling whether task events are on), and registers
the internal tasks (``mageflow.swarm`` from the client, ``mageflow.swarm_result`` from the engine).
"""

from __future__ import annotations

import logging
import threading
import weakref

from celery import Celery

from .client.starter import register_starter
from .engine import events
from .engine.runtime import create_runtime
from .engine.tasks import register_result_task
from .worker import eventing, gate, hooks, offload, reaper

logger = logging.getLogger("mageflow_celery")
_wired: weakref.WeakSet[Celery] = weakref.WeakSet()
_wire_lock = threading.Lock()


def install(
    app: Celery,
    redis_url: str | None = None,
    *,
    key_prefix: str | None = None,
    strict_task_names: bool = False,
) -> None:
    """Connect mageflow_celery to a Celery app (idempotent).

    Call it where the app is defined, so workers, beat and clients all run it.

    Args:
        app: the Celery app.
        redis_url: the state Redis. Default: ``app.conf.mageflow_redis_url``, else the result backend
            or the broker when it is Redis. A later call without a URL keeps the configured one.
        key_prefix: prefix of every key (default ``app.conf.mageflow_key_prefix`` or ``mageflow``).
        strict_task_names: check member and callback names given as strings against the local app.

    Raises:
        MageflowError: no Redis URL can be found, or a different URL than the installed one is given.

    Example:
        >>> app = Celery("proj", broker="redis://localhost:6379/0")
        >>> install(app)
    """
    runtime, _ = create_runtime(app, redis_url, key_prefix=key_prefix, strict_task_names=strict_task_names)
    with _wire_lock:
        if app in _wired:
            return
        _wired.add(app)
    hooks.connect()
    events.connect()
    register_starter(app)
    register_result_task(app)
    gate.add_to(app)
    reaper.add_to(app)
    offload.add_to(app)
    eventing.add_to(app)
    _warn_without_results(app)
    logger.debug("mageflow_celery installed on %r (%s)", app.main, runtime.settings)


def _warn_without_results(app: Celery) -> None:
    """Reconciling lost members needs their stored results (R3): say so when they are not kept."""
    backend = app.conf.result_backend
    if not backend or str(backend).startswith("disabled"):
        logger.warning(
            "mageflow_celery: app %r has no result backend; the reaper cannot tell whether a member whose "
            "worker was lost finished, so it re-runs or fails it (SwarmConfig.on_lost)",
            app.main,
        )
    elif app.conf.task_ignore_result:
        logger.warning(
            "mageflow_celery: app %r sets task_ignore_result; the reaper cannot tell whether a member whose "
            "worker was lost finished, so it re-runs or fails it (SwarmConfig.on_lost)",
            app.main,
        )

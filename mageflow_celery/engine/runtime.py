"""Per-app runtime: settings, the state store, codecs and the background reporter.

:func:`install` creates it once per Celery app; everything else finds it with :func:`runtime_for`.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from celery import Celery

from .codec import Codec
from .config import MageflowSettings, redact_url, resolve_redis_url
from .errors import MageflowError
from .keys import DEFAULT_PREFIX
from .store import SwarmStore, connect

if TYPE_CHECKING:
    from .lease import LeaseKeeper
    from .reporter import Reporter

logger = logging.getLogger("mageflow_celery")

_ATTR = "_mageflow_runtime"
_install_lock = threading.Lock()
#: Run contexts cached per process (they never change once a swarm started).
_CTX_CACHE_SIZE = 1024
_RUNTIMES: weakref.WeakSet[Runtime] = weakref.WeakSet()


class Runtime:
    """Everything mageflow_celery keeps for one Celery app."""

    def __init__(self, app: Celery, settings: MageflowSettings) -> None:
        self.app = app
        self.settings = settings
        self._store: SwarmStore | None = None
        self._reporter: Reporter | None = None
        self._leases: LeaseKeeper | None = None
        self._lock = threading.Lock()
        self._ctx: OrderedDict[str, Any] = OrderedDict()

    @property
    def store(self) -> SwarmStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = SwarmStore(connect(self.settings.redis_url), self.settings.key_prefix)
        return self._store

    @property
    def task_codec(self) -> Codec:
        return Codec(self.app.conf.task_serializer)

    @property
    def result_codec(self) -> Codec:
        return Codec(self.app.conf.result_serializer)

    @property
    def reporter(self) -> Reporter:
        from .reporter import Reporter

        if self._reporter is None:
            with self._lock:
                if self._reporter is None:
                    self._reporter = Reporter(self)
        return self._reporter

    @property
    def leases(self) -> LeaseKeeper:
        """This process's lease keeper (used in a worker's main process)."""
        from .lease import LeaseKeeper

        if self._leases is None:
            with self._lock:
                if self._leases is None:
                    self._leases = LeaseKeeper(self)
        return self._leases

    def cached_ctx(self, swarm_id: str) -> Any:
        return self._ctx.get(swarm_id)

    def cache_ctx(self, swarm_id: str, ctx: Any) -> None:
        self._ctx[swarm_id] = ctx
        self._ctx.move_to_end(swarm_id)
        while len(self._ctx) > _CTX_CACHE_SIZE:
            self._ctx.popitem(last=False)


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
    with _install_lock:
        existing: Runtime | None = getattr(app, _ATTR, None)
        if existing is not None:
            if redis_url is not None and redis_url != existing.settings.redis_url:
                raise MageflowError(
                    f"app {app.main!r} is already installed with {redact_url(existing.settings.redis_url)}; "
                    f"refusing to switch to {redact_url(redis_url)}"
                )
            return
        url = resolve_redis_url(app.conf, redis_url)
        if not url:
            raise MageflowError(
                "mageflow_celery needs a Redis URL: pass install(app, redis_url=...), set "
                "app.conf.mageflow_redis_url, or use a Redis broker or result backend"
            )
        prefix = key_prefix or app.conf.get("mageflow_key_prefix") or DEFAULT_PREFIX
        runtime = Runtime(app, MageflowSettings(redis_url=url, key_prefix=prefix, strict_task_names=strict_task_names))
        setattr(app, _ATTR, runtime)
        _RUNTIMES.add(runtime)

    from . import hooks, reaper, tasks

    hooks.connect()
    tasks.register(app)
    reaper.add_to(app)
    _warn_without_results(app)
    logger.debug("mageflow_celery installed on %r (%s)", app.main, runtime.settings)


def _after_fork_in_child() -> None:
    """A forked child (a prefork pool process) gets fresh locks and no parent threads.

    A thread of the parent (reporter, lease keeper, reaper) may hold a lock at the moment of the fork;
    the child would wait on it forever.
    """
    for rt in list(_RUNTIMES):
        rt._lock = threading.Lock()
        rt._leases = None
        if rt._reporter is not None:
            rt._reporter.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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


def runtime_for(app: Celery) -> Runtime:
    """The app's runtime, installing with the defaults when :func:`install` was not called yet."""
    runtime: Runtime | None = getattr(app, _ATTR, None)
    if runtime is None:
        install(app)
        runtime = getattr(app, _ATTR)
    return runtime


def installed_runtime(app: Any) -> Runtime | None:
    """The app's runtime if :func:`install` ran for it (hooks use this: they never install)."""
    return getattr(app, _ATTR, None)


def all_runtimes() -> list[Runtime]:
    """Runtimes of every installed app in this process."""
    return list(_RUNTIMES)

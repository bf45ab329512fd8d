"""Per-app runtime: settings, the state store, codecs and a cache of run contexts.

:func:`mageflow_celery.install` creates it (through :func:`create_runtime`) and wires the worker side;
everything else finds it with :func:`runtime_for` / :func:`installed_runtime`. What a worker process
keeps per app (reporter, leases) lives in the worker layer, keyed by this object.

Layer: ``engine`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import OrderedDict
from typing import Any

from celery import Celery

from ..config import MageflowSettings, redact_url, resolve_redis_url, resolve_transport_options
from ..errors import MageflowError
from ..keys import DEFAULT_PREFIX
from ..state.codec import Codec
from ..state.connect import connect
from ..state.store import SwarmStore

logger = logging.getLogger("mageflow_celery")

_ATTR = "_mageflow_runtime"
_create_lock = threading.Lock()
#: Run contexts cached per process (they never change once a swarm started).
_CTX_CACHE_SIZE = 1024
_RUNTIMES: weakref.WeakSet[Runtime] = weakref.WeakSet()


class Runtime:
    """Everything mageflow_celery keeps for one Celery app."""

    def __init__(self, app: Celery, settings: MageflowSettings) -> None:
        self.app = app
        self.settings = settings
        self._store: SwarmStore | None = None
        self._lock = threading.Lock()
        self._ctx: OrderedDict[str, Any] = OrderedDict()

    @property
    def store(self) -> SwarmStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    url = self.settings.redis_url
                    client = connect(url, resolve_transport_options(self.app.conf, url))
                    self._store = SwarmStore(client, self.settings.key_prefix)
        return self._store

    @property
    def task_codec(self) -> Codec:
        """Members, messages and callbacks: the app's ``task_serializer``, decoding ``accept_content``."""
        conf = self.app.conf
        return Codec(conf.task_serializer, conf.accept_content)

    @property
    def result_codec(self) -> Codec:
        """Members' results: ``result_serializer``, decoding ``result_accept_content`` (else ``accept_content``)."""
        conf = self.app.conf
        return Codec(conf.result_serializer, conf.result_accept_content or conf.accept_content)

    def cached_ctx(self, swarm_id: str) -> Any:
        return self._ctx.get(swarm_id)

    def cache_ctx(self, swarm_id: str, ctx: Any) -> None:
        self._ctx[swarm_id] = ctx
        self._ctx.move_to_end(swarm_id)
        while len(self._ctx) > _CTX_CACHE_SIZE:
            self._ctx.popitem(last=False)


def create_runtime(
    app: Celery,
    redis_url: str | None = None,
    *,
    key_prefix: str | None = None,
    strict_task_names: bool = False,
) -> tuple[Runtime, bool]:
    """The app's runtime, created on the first call; ``(runtime, created)``.

    The first call resolves the URL (explicit, else ``mageflow_redis_url``, else a Redis result backend
    or broker). A later call with ``redis_url=None`` keeps it; a different explicit URL raises.

    Raises:
        MageflowError: no Redis URL can be found, or a different URL than the installed one is given.
    """
    with _create_lock:
        existing: Runtime | None = getattr(app, _ATTR, None)
        if existing is not None:
            if redis_url is not None and redis_url != existing.settings.redis_url:
                raise MageflowError(
                    f"app {app.main!r} is already installed with {redact_url(existing.settings.redis_url)}; "
                    f"refusing to switch to {redact_url(redis_url)}"
                )
            return existing, False
        url = resolve_redis_url(app.conf, redis_url)
        if not url:
            raise MageflowError(
                "mageflow_celery needs a Redis URL: pass install(app, redis_url=...), set "
                "app.conf.mageflow_redis_url, or use a Redis broker or result backend"
            )
        prefix = key_prefix or app.conf.get("mageflow_key_prefix") or DEFAULT_PREFIX
        settings = MageflowSettings(redis_url=url, key_prefix=prefix, strict_task_names=strict_task_names)
        runtime = Runtime(app, settings)
        setattr(app, _ATTR, runtime)
        _RUNTIMES.add(runtime)
        return runtime, True


def runtime_for(app: Celery) -> Runtime:
    """The app's runtime, created with the defaults when :func:`mageflow_celery.install` was not called.

    A client needs only the state store; a worker needs ``install(app)`` for its hooks.
    """
    runtime: Runtime | None = getattr(app, _ATTR, None)
    return runtime if runtime is not None else create_runtime(app)[0]


def installed_runtime(app: Any) -> Runtime | None:
    """The app's runtime if one was created (hooks use this: they never create one)."""
    return getattr(app, _ATTR, None)


def all_runtimes() -> list[Runtime]:
    """Runtimes of every app in this process."""
    return list(_RUNTIMES)


def _after_fork_in_child() -> None:
    """A forked child (a prefork pool process) gets fresh locks: a parent thread may have held one."""
    for rt in list(_RUNTIMES):
        rt._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

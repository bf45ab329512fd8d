"""When a worker reports from a process of its own (:mod:`.reporting`): the ``mageflow_reporting_process``
setting, and the bootstep that starts that process with the worker and stops it at shutdown.

Setting ``mageflow_reporting_process``: ``"auto"`` (default: a reporting process for the solo, threads
and gevent pools, whose tasks run in the worker's main process), ``True`` (for any pool but prefork) or
``False`` (always the reporter thread). A prefork worker's tasks run in its pool processes, which report
from a thread each while the main process consumes.

Layer: ``worker`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from typing import Any

from celery import bootsteps
from celery.exceptions import ImproperlyConfigured

from ..engine.runtime import installed_runtime
from . import parts

#: Pools whose tasks run in the worker's main process, for which ``"auto"`` starts a reporting process.
SINGLE_PROCESS_POOLS = frozenset({"celery.concurrency.solo", "celery.concurrency.thread", "celery.concurrency.gevent"})


def wanted(worker: Any) -> bool:
    """Whether ``worker`` reports from a process of its own (``mageflow_reporting_process``).

    Raises:
        ImproperlyConfigured: the setting is not ``"auto"``, ``True`` or ``False``.
    """
    setting = worker.app.conf.get("mageflow_reporting_process", "auto")
    if setting not in ("auto", True, False):
        raise ImproperlyConfigured(f"mageflow_reporting_process must be 'auto', True or False, not {setting!r}")
    module = getattr(getattr(worker, "pool_cls", None), "__module__", "")
    if setting == "auto":
        return module in SINGLE_PROCESS_POOLS
    return bool(setting) and module != "celery.concurrency.prefork"


class OffloadStep(bootsteps.StartStopStep):
    """Worker bootstep: starts the reporting process after the pool, stops it (after it reported) at shutdown."""

    label = "mageflow reporting process"
    requires = ("celery.worker.components:Pool",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.runtime = installed_runtime(parent.app)

    def include_if(self, parent: Any) -> bool:
        return self.runtime is not None and wanted(parent)

    def start(self, parent: Any) -> None:
        if self.runtime is not None:
            parts.reporter(self.runtime).offload()

    def stop(self, parent: Any) -> None:
        if self.runtime is not None:
            parts.reporter(self.runtime).close_offload()

    terminate = stop
    shutdown = stop


def add_to(app: Any) -> None:
    """Add the step to the app's workers (idempotent)."""
    steps = app.steps["worker"]
    if OffloadStep not in steps:
        steps.add(OffloadStep)

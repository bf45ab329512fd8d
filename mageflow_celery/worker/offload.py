"""When a worker reports through a reporting process (:mod:`.reporting`): the ``mageflow_reporting_process``
setting, and the bootstep that starts that process with the worker and stops it at shutdown.

Setting ``mageflow_reporting_process``: ``"auto"`` (default: for the solo, threads and gevent pools, whose
tasks run in the worker's main process, on platforms that fork safely: not Windows or macOS), ``True``
(for any pool: prefork, eventlet and custom ones too) or ``False`` (each process that runs tasks reports
from a thread of its own). On prefork, paired runs measured one reporting process for the whole worker
slower than a reporter thread in each pool process (docs/performance.md), so ``"auto"`` keeps the threads
there.

Layer: ``worker`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import multiprocessing
import sys
from typing import Any

from celery import bootsteps
from celery.exceptions import ImproperlyConfigured

from ..engine.runtime import installed_runtime
from . import eventing, parts

PREFORK = "celery.concurrency.prefork"
#: Pools for which ``"auto"`` starts a reporting process (eventlet is left out: not tested forked).
AUTO_POOLS = frozenset({"celery.concurrency.solo", "celery.concurrency.thread", "celery.concurrency.gevent"})


def can_fork() -> bool:
    """Whether this platform forks safely: not Windows (no fork), not macOS (forking a process whose system
    libraries run threads can crash the child; Python spawns there by default)."""
    return "fork" in multiprocessing.get_all_start_methods() and sys.platform != "darwin"


def _pool_module(worker: Any) -> str:
    return str(getattr(getattr(worker, "pool_cls", None), "__module__", ""))


def wanted(worker: Any) -> bool:
    """Whether ``worker`` reports through a reporting process (``mageflow_reporting_process``).

    Raises:
        ImproperlyConfigured: the setting is not ``"auto"``, ``True`` or ``False``, or it is ``True`` where
            the worker cannot fork safely.
    """
    setting = worker.app.conf.get("mageflow_reporting_process", "auto")
    if setting not in ("auto", True, False):
        raise ImproperlyConfigured(f"mageflow_reporting_process must be 'auto', True or False, not {setting!r}")
    if setting == "auto":
        return _pool_module(worker) in AUTO_POOLS and can_fork()
    if setting and not can_fork():
        raise ImproperlyConfigured(
            f"mageflow_reporting_process=True needs a platform that forks safely, not {sys.platform!r}"
        )
    return bool(setting)


class OffloadStep(bootsteps.StartStopStep):
    """Worker bootstep: forks the reporting process when the worker is built, before any step starts (so the
    prefork pool processes inherit its pipe), and closes it when the worker stops.

    On a single-process pool the stop waits until the process reported everything and exited; tasks that
    end later are reported by the reporter thread. On prefork the pool processes still write to it then
    (this step stops before the pool); it exits once they are gone, and the worker waits for that at
    ``worker_shutdown`` (:func:`~.hooks.on_stopped`)."""

    label = "mageflow reporting process"
    requires = ("celery.worker.components:Pool",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.runtime = installed_runtime(parent.app)
        self.shared = _pool_module(parent) == PREFORK

    def include_if(self, parent: Any) -> bool:
        return self.runtime is not None and wanted(parent)

    def create(self, parent: Any) -> None:
        assert self.runtime is not None  # include_if
        eventing.switch_for(self.runtime, getattr(parent, "hostname", None))  # its byte is shared with the fork
        parts.reporter(self.runtime).offload(shared=self.shared)

    def stop(self, parent: Any) -> None:
        if self.runtime is not None:
            parts.reporter(self.runtime).close_offload(wait=not self.shared)

    terminate = stop


def add_to(app: Any) -> None:
    """Add the step to the app's workers (idempotent)."""
    steps = app.steps["worker"]
    if OffloadStep not in steps:
        steps.add(OffloadStep)

"""What a worker process keeps per installed app: its reporter and its lease keeper.

Keyed by the app's :class:`~mageflow_celery.engine.runtime.Runtime`; created on first use. A forked
child (a prefork pool process) starts with none: the parent's threads and locks are not its own.

Layer: ``worker`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import os
import threading
import weakref

from ..engine.runtime import Runtime
from .lease import LeaseKeeper
from .reporter import Reporter

_lock = threading.Lock()
_reporters: weakref.WeakKeyDictionary[Runtime, Reporter] = weakref.WeakKeyDictionary()
_leases: weakref.WeakKeyDictionary[Runtime, LeaseKeeper] = weakref.WeakKeyDictionary()


def reporter(rt: Runtime) -> Reporter:
    """This process's reporter for the app of ``rt``."""
    found = _reporters.get(rt)
    if found is None:
        with _lock:
            found = _reporters.get(rt)
            if found is None:
                found = _reporters[rt] = Reporter(rt)
    return found


def leases(rt: Runtime) -> LeaseKeeper:
    """This process's lease keeper for the app of ``rt`` (used in a worker's main process)."""
    found = _leases.get(rt)
    if found is None:
        with _lock:
            found = _leases.get(rt)
            if found is None:
                found = _leases[rt] = LeaseKeeper(rt)
    return found


def existing_leases(rt: Runtime) -> LeaseKeeper | None:
    """The lease keeper of ``rt`` if this process made one."""
    return _leases.get(rt)


def flush_reporters(timeout_s: float, join_closed: bool = False) -> None:
    """Wait until every reporter of this process sent what it holds (worker shutdown); with ``join_closed``,
    also until the reporting processes they closed exited (once the pool stopped)."""
    for rep in list(_reporters.values()):
        rep.flush(timeout_s=timeout_s)
        if join_closed:
            rep.join_closed(timeout_s)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    for rep in list(_reporters.values()):
        rep.after_fork()
    _leases.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

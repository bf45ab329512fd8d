"""Worker-side signal receivers. They find a member's swarm from its task id in O(1).

Connected once per process (``dispatch_uid``); each routes by ``sender.app`` to that app's runtime, so
several installed apps in one process never see each other's members. Eager runs are ignored here:
eager swarms are driven inline by :mod:`mageflow_celery.eager`.

Layer: ``worker`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals
from celery.worker import state as worker_state

from ..engine.retry import with_retries
from ..engine.runtime import installed_runtime
from ..engine.summary import error_record
from ..keys import parse_member_task_id
from . import endings, parts

logger = logging.getLogger("mageflow_celery")
_connected = False


def connect() -> None:
    """Connect the receivers (idempotent)."""
    global _connected
    if _connected:
        return
    signals.task_received.connect(on_received, weak=False, dispatch_uid="mageflow_celery.received")
    signals.task_success.connect(on_success, weak=False, dispatch_uid="mageflow_celery.success")
    signals.task_failure.connect(on_failure, weak=False, dispatch_uid="mageflow_celery.failure")
    signals.task_revoked.connect(on_revoked, weak=False, dispatch_uid="mageflow_celery.revoked")
    signals.worker_process_shutdown.connect(on_shutdown, weak=False, dispatch_uid="mageflow_celery.pshutdown")
    signals.worker_shutting_down.connect(on_shutdown, weak=False, dispatch_uid="mageflow_celery.shutdown")
    endings.connect()
    _connected = True


def on_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    """Start gate: take the member's lease, or drop it (REVOKED) when its swarm was cancelled or failed."""
    parsed = parse_member_task_id(getattr(request, "id", None))
    rt = installed_runtime(getattr(sender, "app", None))
    if parsed is None or rt is None:
        return
    swarm_id, index, _final = parsed
    try:
        verdict = with_retries(f"swarm {swarm_id}: receive", rt.store.receive, swarm_id, index)
    except Exception:
        logger.exception("swarm %s: recording receipt of member %d failed; it runs without a lease", swarm_id, index)
        return
    if verdict == "drop":
        worker_state.revoked.add(request.id)
        logger.debug("swarm %s: member %d dropped at receipt (swarm ended)", swarm_id, index)
    else:
        if verdict == "ok":
            parts.leases(rt).track(swarm_id, index, request)
        logger.debug("swarm %s: member %d received (%s)", swarm_id, index, verdict)


def _submit(task: Any, task_id: str | None, kind: str, value: Any, final_only: bool) -> None:
    parsed = parse_member_task_id(task_id)
    if parsed is None:
        return
    request = getattr(task, "request", None)
    if request is not None and getattr(request, "is_eager", False) and getattr(request, "id", None) == task_id:
        return
    rt = installed_runtime(getattr(task, "app", None))
    if rt is None:
        return
    swarm_id, index, final = parsed
    if final_only and not final:
        return
    if kind != "s":
        exc = value if isinstance(value, BaseException) else None
        value = error_record(swarm_id, index, task_id, exc, "TaskRevokedError" if kind == "x" else "")
    parts.reporter(rt).submit(swarm_id, index, kind, value)


def on_success(sender: Any = None, result: Any = None, **_: Any) -> None:
    """A member (or a chain member's last step) succeeded."""
    _submit(sender, getattr(sender.request, "id", None), "s", result, final_only=True)


def on_failure(
    sender: Any = None, task_id: str | None = None, exception: BaseException | None = None, **_: Any
) -> None:
    """Celery gave up on a member: exception, retries exhausted, worker lost, time limit, reject."""
    _submit(sender, task_id, "f", exception, final_only=False)


def on_revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    """A member was revoked (by id, expiry or termination)."""
    _submit(sender, getattr(request, "id", None), "x", None, final_only=False)


def on_shutdown(**_: Any) -> None:
    """Report what is still queued before the process exits."""
    parts.flush_reporters(timeout_s=10.0)

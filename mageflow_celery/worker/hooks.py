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

from ..engine.members import LEASE_HEADER
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
    # Again once the pool stopped: the last tasks' outcomes, and a reporting process the pool processes wrote to.
    signals.worker_shutdown.connect(on_stopped, weak=False, dispatch_uid="mageflow_celery.stopped")
    endings.connect()
    _connected = True


def on_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    """A delivery the start gate (:mod:`.gate`) let through with a lease: keep renewing it while held."""
    rt = installed_runtime(getattr(sender, "app", None))
    token = _lease_token(request)
    if rt is None or not token:
        return
    ref = parse_member_task_id(getattr(request, "id", None))
    if ref is not None:
        parts.leases(rt).track(ref.swarm_id, ref.index, token, request)
        logger.debug("swarm %s: member %d received (step %d)", ref.swarm_id, ref.index, ref.step)


def _lease_token(request: Any) -> str:
    request_dict = getattr(request, "request_dict", None) or {}
    return str(request_dict.get(LEASE_HEADER) or "")


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
    swarm_id, index = parsed.swarm_id, parsed.index
    if final_only and not parsed.final:
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


def on_stopped(**_: Any) -> None:
    """The worker stopped (its pool too): report the last tasks' outcomes, and wait for a reporting process
    the pool processes wrote to until it reported everything and exited."""
    parts.flush_reporters(timeout_s=10.0, join_closed=True)

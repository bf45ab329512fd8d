"""Receivers for the ways a member can end that Celery's success/failure/revoked signals miss (S7, R3).

* an **unknown task name**: the consumer rejects the message without running anything and sends only
  ``task_unknown`` (it stores a ``NotRegistered`` failure): the member fails;
* an **invalid message** (cannot be decoded): ``task_rejected``: the member fails;
* **Ignore**: Celery records nothing. ``Task.replace()`` raises it after publishing the replacement
  with the member's id (or, for a chain, with the id on its last step): the member waits for it,
  holding its token, as a dispatched member (hand-off). A plain ``raise Ignore()`` ends the member:
  with the outcome the task stored itself (``update_state``/``mark_as_done``) when there is one, else
  as revoked (failed).

Layer: ``worker`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import signals, states
from celery._state import get_current_task
from celery.exceptions import NotRegistered

from ..engine.retry import with_retries
from ..engine.runtime import installed_runtime
from ..engine.summary import error_record
from ..keys import parse_member_task_id
from .parts import reporter

logger = logging.getLogger("mageflow_celery")
_handed_off = threading.local()


def connect() -> None:
    """Connect the receivers (idempotent through ``dispatch_uid``)."""
    signals.task_unknown.connect(on_unknown, weak=False, dispatch_uid="mageflow_celery.unknown")
    signals.task_rejected.connect(on_rejected, weak=False, dispatch_uid="mageflow_celery.rejected")
    signals.before_task_publish.connect(on_publish, weak=False, dispatch_uid="mageflow_celery.publish")
    signals.task_postrun.connect(on_postrun, weak=False, dispatch_uid="mageflow_celery.postrun")


def _fail(app: Any, task_id: str | None, exc: BaseException | None, kind: str) -> None:
    parsed = parse_member_task_id(task_id)
    rt = installed_runtime(app)
    if parsed is None or rt is None:
        return
    swarm_id, index, _final = parsed
    reporter(rt).submit(swarm_id, index, "f", error_record(swarm_id, index, task_id, exc, kind))


def on_unknown(sender: Any = None, id: str | None = None, name: str | None = None, **_: Any) -> None:
    """The receiving worker does not know the member's task name: the member failed."""
    _fail(getattr(sender, "app", None), id, NotRegistered(name), "NotRegistered")


def on_rejected(sender: Any = None, message: Any = None, exc: BaseException | None = None, **_: Any) -> None:
    """The consumer rejected a member's message it cannot decode: the member failed."""
    headers = getattr(message, "headers", None) or {}
    _fail(getattr(sender, "app", None), headers.get("id"), exc, "InvalidTaskError")


def on_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Inside a member, note a publish that carries the member on (``Task.replace``, a same-id re-send)."""
    task = get_current_task()
    if not headers or task is None or getattr(task.request, "is_eager", False):
        return
    request = task.request
    current = getattr(request, "id", None)
    if parse_member_task_id(current) is None:
        return
    nesting = int(getattr(request, "replaced_task_nesting", 0) or 0)
    if headers.get("id") == current or int(headers.get("replaced_task_nesting") or 0) > nesting:
        _handed_off.ids = {*getattr(_handed_off, "ids", set()), current}


def on_postrun(
    sender: Any = None, task_id: str | None = None, state: str | None = None, retval: Any = None, **_: Any
) -> None:
    """A member raised Ignore: follow its replacement, or end it."""
    handed: set[str] = getattr(_handed_off, "ids", set())
    handed_off = task_id in handed
    handed.discard(task_id or "")
    if state != states.IGNORED:
        return
    parsed = parse_member_task_id(task_id)
    rt = installed_runtime(getattr(sender, "app", None))
    if parsed is None or rt is None or getattr(sender.request, "is_eager", False):
        return
    swarm_id, index, _final = parsed
    if handed_off:
        try:
            with_retries(f"swarm {swarm_id}: hand-off", rt.store.requeue, swarm_id, [index], "handoff", False)
        except Exception:
            logger.exception("swarm %s: hand-off of member %d failed; the reaper will reconcile it", swarm_id, index)
        return
    status, value = _stored(sender, task_id)
    if status == states.SUCCESS:
        reporter(rt).submit(swarm_id, index, "s", value)
    else:
        exc = value if status == states.FAILURE and isinstance(value, BaseException) else retval
        kind = "f" if status == states.FAILURE else "x"
        reporter(rt).submit(swarm_id, index, kind, error_record(swarm_id, index, task_id, exc))


def _stored(task: Any, task_id: str | None) -> tuple[str, Any]:
    """What the task stored itself before raising Ignore (``PENDING`` when nothing or unreadable)."""
    try:
        meta = task.backend.get_task_meta(task_id)
    except Exception:
        return states.PENDING, None
    return str(meta.get("status", states.PENDING)), meta.get("result")

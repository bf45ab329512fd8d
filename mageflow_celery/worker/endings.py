"""Receivers for the ways a member can end that Celery's success/failure/revoked signals miss (S7, R3).

* an **unknown task name**: the consumer rejects the message without running anything and sends only
  ``task_unknown`` (it stores a ``NotRegistered`` failure): the member fails;
* an **invalid message** (cannot be decoded): ``task_rejected``: the member fails;
* **hand-offs**: a member execution that publishes the message carrying the member on (a chain
  member's next step, ``self.retry()``, ``Task.replace()``) hands its token on *before* that message is
  sent (``before_task_publish``, in the pool process): the member is dispatched again, its lease holder
  lets go, and the successor's receipt takes it (D5);
* **Ignore**: Celery records nothing. After a hand-off (``Task.replace()`` raises Ignore) nothing more
  happens. A plain ``raise Ignore()`` ends the member: with the outcome the task stored itself
  (``update_state``/``mark_as_done``) when there is one, else as revoked (failed).

Layer: ``worker`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import signals, states
from celery._state import get_current_task
from celery.exceptions import NotRegistered

from ..engine.members import LEASE_HEADER
from ..engine.retry import with_retries
from ..engine.runtime import installed_runtime
from ..engine.summary import error_record
from ..keys import FINAL_STEP, MemberRef, parse_member_task_id
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
    swarm_id, index = parsed.swarm_id, parsed.index
    reporter(rt).submit(swarm_id, index, "f", error_record(swarm_id, index, task_id, exc, kind))


def on_unknown(sender: Any = None, id: str | None = None, name: str | None = None, **_: Any) -> None:
    """The receiving worker does not know the member's task name: the member failed."""
    _fail(getattr(sender, "app", None), id, NotRegistered(name), "NotRegistered")


def on_rejected(sender: Any = None, message: Any = None, exc: BaseException | None = None, **_: Any) -> None:
    """The consumer rejected a member's message it cannot decode: the member failed."""
    headers = getattr(message, "headers", None) or {}
    _fail(getattr(sender, "app", None), headers.get("id"), exc, "InvalidTaskError")


def on_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Inside a member, hand its token on to a message that carries the member on (before it is sent)."""
    task = get_current_task()
    if not headers or task is None or getattr(task.request, "is_eager", False):
        return
    request = task.request
    current = getattr(request, "id", None)
    ref = parse_member_task_id(current)
    if ref is None:
        return
    successor = _successor_step(ref, request, headers)
    if successor is None:
        return
    _handed_off.ids = {*getattr(_handed_off, "ids", set()), current}
    token = getattr(request, LEASE_HEADER, None)
    rt = installed_runtime(getattr(task, "app", None))
    if not token or rt is None:
        return
    try:
        with_retries(f"swarm {ref.swarm_id}: hand-off", rt.store.handoff, ref.swarm_id, ref.index, token, successor)
    except Exception:
        logger.exception("swarm %s: hand-off of member %d failed; the reaper reconciles it", ref.swarm_id, ref.index)


def _successor_step(ref: MemberRef, request: Any, headers: dict[str, Any]) -> int | None:
    """The step of the member that the published message carries on, or ``None`` (another task)."""
    published = parse_member_task_id(headers.get("id"))
    same_member = published is not None and (published.swarm_id, published.index) == (ref.swarm_id, ref.index)
    if published is not None and same_member and published.step >= ref.step:
        return published.step  # a chain member's next step, a retry, a replacement with the member's id
    nesting = int(getattr(request, "replaced_task_nesting", 0) or 0)
    if int(headers.get("replaced_task_nesting") or 0) > nesting:
        return FINAL_STEP  # Task.replace() with a canvas: its last task carries the member id
    return None


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
    swarm_id, index = parsed.swarm_id, parsed.index
    if handed_off:
        return  # the message it published carries the member on
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

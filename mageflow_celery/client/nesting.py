"""Where a swarm sits: its id when created inside a task (N5), and its parent when it is a member (N1).

* **Inside an executing task**, a swarm created without an explicit id gets one derived from that
  task's id and the order of creation in the run (1st, 2nd, ... swarm it creates). A retried or
  redelivered task therefore finds the swarms its earlier attempt created and continues them.
* **A nested swarm** (a member of another swarm, or a step of a member that is a chain) has the member's
  task id as its id. When it starts it joins its parent: the parent records it (so pause, resume and
  cancel reach it), it starts paused if the parent is paused, and not at all if the parent ended; when
  a running chain step starts it, that step hands the member's lease on to it (as a published next
  step would, D5).

Layer: ``client`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from celery._state import get_current_task

from ..engine.members import LEASE_HEADER
from ..engine.runtime import Runtime
from ..keys import MemberRef, parse_member_task_id

#: Namespace of the ids derived for swarms created inside a task.
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/mageflow/mageflow-celery/swarm-in-task")
_COUNTER = "_mageflow_swarms_created"


def task_scoped_id() -> str | None:
    """A deterministic id for the next swarm created by the task executing now, or ``None`` outside a task."""
    task = get_current_task()
    request = getattr(task, "request", None)
    task_id = getattr(request, "id", None)
    if request is None or not task_id or getattr(request, "called_directly", True):
        return None
    n = int(getattr(request, _COUNTER, 0))
    setattr(request, _COUNTER, n + 1)
    return str(uuid.uuid5(_NAMESPACE, f"{task_id}/{n}"))


@dataclass(frozen=True, slots=True)
class Parent:
    """The swarm a nested swarm is a member of: where, and whether it may start, paused or not."""

    ref: MemberRef
    start: bool
    paused: bool


def join_parent(rt: Runtime, swarm_id: str) -> Parent | None:
    """Join the parent of a nested swarm (``None`` when ``swarm_id`` is no member id)."""
    ref = parse_member_task_id(swarm_id)
    if ref is None:
        return None
    joined = rt.store.add_child(ref.swarm_id, swarm_id)
    if joined is None or joined[0] in ("cancelled", "failed"):
        return Parent(ref, start=False, paused=False)
    _hand_off_from_running_step(rt, ref)
    return Parent(ref, start=True, paused=joined[1])


def _hand_off_from_running_step(rt: Runtime, ref: MemberRef) -> None:
    """A chain member's running step starts its next step, this swarm: hand the member's lease on."""
    task = get_current_task()
    request = getattr(task, "request", None)
    current = parse_member_task_id(getattr(request, "id", None))
    token = getattr(request, LEASE_HEADER, None)
    if current is None or not token or (current.swarm_id, current.index) != (ref.swarm_id, ref.index):
        return
    if current.step < ref.step:
        rt.store.handoff(ref.swarm_id, ref.index, str(token), ref.step)

"""Reconciliation of one swarm: what the reaper does with its members whose deadline passed (R2, R3, D6, N1).

* a **dispatched** member no worker received within ``dispatch_timeout_s`` is re-published with the
  same task id (unless the result backend already holds its outcome);
* a **running** member whose lease expired (its worker stopped renewing it) is reconciled from the
  result backend first:

  =================================================  ====================================================
  stored state of the member's task id               action
  =================================================  ====================================================
  SUCCESS / FAILURE                                  apply that outcome (the normal report path)
  REVOKED                                            failed
  RETRY                                              still in flight: extend the lease
  PENDING / STARTED, task with ``acks_late``         wait for the broker to redeliver it (visibility
                                                     timeout after the lease expired), then ``on_lost``
  PENDING / STARTED otherwise                        ``on_lost``: ``"retry"`` re-publishes it with the
                                                     same task id; ``"fail"`` fails it (WorkerLostError)
  =================================================  ====================================================

* a finalization claimed and not released within ``FINALIZE_CLAIM_S`` is re-run (same callback ids).

A member that comes back late after being re-published is counted once: its outcome finds it already
recorded (R1).

* a **dispatched** member still waiting after ``lease_s`` is looked up in the result backend: an outcome
  there means a worker without ``install(app)`` ran it (applied, with a WARNING, D6); a nested swarm that
  runs keeps its parent's token (N1);
* a finalization claimed and not released within ``FINALIZE_CLAIM_S`` is re-run (same callback ids).

A member that comes back late after being re-published is counted once: its outcome finds it already
recorded (R1).

Layer: ``worker`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Any

from billiard.exceptions import WorkerLostError
from celery import Celery, states
from celery.backends.base import DisabledBackend

from ..engine.dispatch import follow
from ..engine.finalize import claim_period_s, finalize
from ..engine.flow import apply_grants, wake_pool
from ..engine.runtime import Runtime
from ..engine.summary import error_record
from ..errors import MageflowError
from ..keys import FINAL_STEP, member_task_id, step_task_id
from ..state.records import Expired, Reaped

logger = logging.getLogger("mageflow_celery")

#: Expired members handled per swarm per look.
BATCH = 500
#: After handling expired members, look at the swarm again this soon (their new deadlines are later).
LOOK_AGAIN_S = 1.0
#: Broker visibility timeout assumed when the transport has one and none is configured (kombu's Redis).
DEFAULT_VISIBILITY_TIMEOUT_S = 3600.0
#: Transports that redeliver an unacknowledged message as soon as its consumer's connection closes.
_REDELIVER_AT_ONCE = frozenset({"amqp", "amqps", "pyamqp", "librabbitmq", "memory"})
_WAIT_STATES = frozenset({states.RETRY})
#: What the reaper does with one member: report ``(index, kind, payload)``, ``"requeue"`` it, look again
#: at a new deadline (a float on the state Redis's clock), or ``"wait"`` (look again next tick).
Action = tuple[int, str, Any] | str | float


@dataclass
class ReapReport:
    """What one reaper tick did."""

    #: Swarms looked at.
    swarms: int = 0
    #: Expired members whose outcome was found in the result backend and applied.
    recovered: int = 0
    #: Expired dispatched members re-published.
    republished: int = 0
    #: Lost running members re-published (``on_lost="retry"``).
    requeued: int = 0
    #: Lost running members failed (``on_lost="fail"``).
    lost_failed: int = 0
    #: Expired members of a cancelled or failed swarm, cancelled.
    cancelled: int = 0
    #: Expired members still in flight (RETRY, or waiting for the broker to redeliver them).
    waiting: int = 0
    #: Stale finalization claims re-run.
    finalized: int = 0
    #: Members admitted when a rate's slot came (swarm or pool rates).
    woken: int = 0
    #: Pool tokens whose holder was gone, freed.
    pool_freed: int = 0
    #: Swarms whose handling raised (logged; retried next tick).
    errors: int = 0

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self) if f.name != "swarms")


def redelivery_wait_s(app: Celery) -> float:
    """Seconds after which the broker redelivers an unacknowledged message of a dead worker."""
    scheme = str(app.conf.broker_url or "").split("://", 1)[0].split("+", 1)[0]
    if scheme in _REDELIVER_AT_ONCE:
        return 0.0
    options = app.conf.broker_transport_options or {}
    return float(options.get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT_S))


def wake_pool_at(rt: Runtime, pool: str, report: ReapReport) -> float | None:
    """A pool's rate let its next token out: hand it out; the pool's next slot if swarms still wait."""
    woken = wake_pool(rt, pool)
    for swarm_id, tr in woken:
        report.woken += len(tr.admitted)
        follow(rt, swarm_id, tr)
    view = rt.store.pool_view(pool)
    return view.tat if view.waiting and view.rate_int > 0 else None


def reconcile_pools(rt: Runtime, grace_s: float, report: ReapReport) -> dict[str, set[str]]:
    """Free pool tokens whose holder is gone (F5): a grant no member of its swarm holds, older than
    ``grace_s`` (a process died between the pool's grant and the swarm's admission, or between a member's
    end and giving its grant back; docs/pools.md). A swarm whose grant was lost states its demand again.
    Returns the swarms waiting on each pool."""
    waiting: dict[str, set[str]] = {}
    for pool in rt.store.pool_names():
        view = rt.store.pool_view(pool)
        waiting[pool] = {swarm_id for swarm_id, _ in view.waiting}
        by_swarm: dict[str, list[tuple[str, str]]] = {}
        for grant, value in view.holders.items():
            swarm_id, _, at = value.rpartition("|")
            if view.now - float(at or 0) > grace_s:
                by_swarm.setdefault(swarm_id, []).append((grant, value))
        stale: list[tuple[str, str]] = []
        for swarm_id, held in by_swarm.items():
            owned = rt.store.held_grants(swarm_id) or set()
            stale += [(grant, value) for grant, value in held if grant not in owned]
        if stale:
            settled = rt.store.pool_drop(pool, stale)
            report.pool_freed += settled.dropped
            logger.warning("pool %s: freed %d token(s) whose holder was gone", pool, settled.dropped)
            for swarm_id, tr in apply_grants(rt, pool, settled):
                follow(rt, swarm_id, tr)
            for swarm_id in {value.rpartition("|")[0] for _, value in stale} - waiting[pool]:
                restate_demand(rt, swarm_id, report)
    return waiting


def restate_demand(rt: Runtime, swarm_id: str, report: ReapReport) -> None:
    """Have a pooled swarm tell its pool again what it could admit (its demand was lost with a process)."""
    tr = rt.store.wake(swarm_id, want_ctx=rt.cached_ctx(swarm_id) is None)
    if tr.status == "ok":
        report.woken += len(tr.admitted)
        follow(rt, swarm_id, tr)


class Reconciler:
    """Reconciles the expired members and stale finalizations of one app's swarms, one swarm at a time."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.app = runtime.app

    def reap_swarm(self, swarm_id: str, report: ReapReport) -> float | None:
        """Handle what is due in one swarm; the next time to look at it (``None``: nothing will be due)."""
        reaped = self.rt.store.reap(swarm_id, claim_period_s(self.app), BATCH)
        if reaped is None or reaped.done:
            return None
        if reaped.stale_fin:
            logger.warning("swarm %s: finalization claim is stale; publishing the callbacks again", swarm_id)
            finalize(self.rt, swarm_id, reaped.stale_fin)
            report.finalized += 1
        if reaped.expired:
            self._expired(swarm_id, reaped, report)
        if reaped.rate_ready:  # its rate's slot came: admit the next member (F3)
            tr = self.rt.store.wake(swarm_id, want_ctx=self.rt.cached_ctx(swarm_id) is None)
            report.woken += len(tr.admitted)
            follow(self.rt, swarm_id, tr)
            return tr.flow.wake_at if tr.flow.wake_at is not None else reaped.next_at
        next_at = reaped.next_at
        if reaped.expired or reaped.stale_fin:  # what it just did set new deadlines: look again soon
            soon = reaped.now if len(reaped.expired) >= BATCH else reaped.now + LOOK_AGAIN_S
            next_at = soon if next_at is None else min(next_at, soon)
        return next_at

    def _expired(self, swarm_id: str, reaped: Reaped, report: ReapReport) -> None:
        outcomes: list[tuple[int, str, bytes]] = []
        requeue: list[int] = []
        later: list[tuple[int, str, float]] = []
        unreceived: list[int] = []
        for member in reaped.expired:
            action, ran_unseen = self._decide(swarm_id, member, reaped)
            if ran_unseen:
                unreceived.append(member.index)
            if isinstance(action, tuple):
                outcomes.append(action)
                report.recovered += action[2] is not _LOST
            elif action == "requeue":
                requeue.append(member.index)
            elif isinstance(action, float):
                later.append((member.index, member.mstate, action))
            report.waiting += not isinstance(action, tuple) and action != "requeue"
        if unreceived:
            logger.warning(
                "swarm %s: member(s) %s ran but no worker recorded their receipt: a worker that runs them "
                "does not call mageflow_celery.install(app) (where its Celery app is defined); their outcome "
                "is taken from the result backend",
                swarm_id,
                unreceived,
            )
        report.lost_failed += sum(1 for o in outcomes if o[2] is _LOST)
        self._apply(swarm_id, [(i, k, _lost_record(swarm_id, i) if p is _LOST else p) for i, k, p in outcomes])
        if later:
            self.rt.store.deadlines(swarm_id, later)
        if requeue:
            self._requeue(swarm_id, requeue, {m.index: m.mstate for m in reaped.expired}, report)

    def _requeue(self, swarm_id: str, indices: list[int], mstates: dict[int, str], report: ReapReport) -> None:
        """Re-publish lost members with their own task ids (they keep their tokens), in a new epoch."""
        tr = self.rt.store.requeue(swarm_id, indices, self.rt.cached_ctx(swarm_id) is None)
        report.cancelled += int(tr.extra[0]) if tr.extra else 0
        for member in tr.admitted:
            if mstates.get(member.index) == "r":
                report.requeued += 1
            else:
                report.republished += 1
        if tr.admitted:
            logger.warning("swarm %s: re-publishing member(s) %s", swarm_id, [m.index for m in tr.admitted])
            follow(self.rt, swarm_id, tr)

    def _decide(self, swarm_id: str, member: Expired, reaped: Reaped) -> tuple[Action, bool]:
        """What to do with a member whose deadline passed, and whether it ran without a recorded receipt."""
        task_id = member_task_id(swarm_id, member.index)
        status, value = self._stored(task_id)
        unseen = member.mstate == "d" and status not in (None, states.PENDING)
        if status == states.SUCCESS:
            return (member.index, "s", self.rt.result_codec.dumps(value, "member result")), unseen
        if status == states.FAILURE:
            exc = value if isinstance(value, BaseException) else None
            return (member.index, "f", error_record(swarm_id, member.index, task_id, exc)), unseen
        if status == states.REVOKED:
            return (member.index, "x", error_record(swarm_id, member.index, task_id, None, "TaskRevokedError")), unseen
        if status is None:
            return "wait", False
        if member.mstate == "d":
            return self._dispatched(swarm_id, member, reaped, status), unseen
        return self._running(member, reaped, status), False

    def _dispatched(self, swarm_id: str, member: Expired, reaped: Reaped, status: str) -> Action:
        """A dispatched member no worker received yet (or one that ran on a worker without mageflow, or a
        nested swarm that runs)."""
        owner = member.owner
        if "p" in owner.flags:
            return "requeue"  # its publish failed: re-publish now, not after the dispatch timeout
        if status != states.PENDING:
            return reaped.now + reaped.lease_s  # running unseen (STARTED, RETRY): look again later
        if self._nested_child_waits(swarm_id, member, reaped):
            return reaped.now + reaped.lease_s
        timeout_at = (owner.t0 or member.deadline) + reaped.dispatch_timeout_s
        if reaped.now >= timeout_at:
            return "requeue"
        return min(reaped.now + reaped.lease_s, timeout_at)

    def _nested_child_waits(self, swarm_id: str, member: Expired, reaped: Reaped) -> bool:
        """Whether the member is a nested swarm (or a chain step that is one) that exists: it holds its
        parent's token until its result task comes back (N1). A child that finished long ago whose result
        task never came back is finalized again (same task ids)."""
        store = self.rt.store
        candidates = [member_task_id(swarm_id, member.index)]
        if member.owner.step != FINAL_STEP:
            candidates.insert(0, step_task_id(swarm_id, member.index, member.owner.step))
        for child in candidates:
            row = store.metas([child], ["state", "fin", "finished_at"])[0]
            state = row.get("state", b"").decode()
            if not state:
                continue
            fin = {"succeeded": "s", "failed": "f", "cancelled": "c"}.get(state)
            finished_at = float(row.get("finished_at") or 0)
            if fin and row.get("fin") == b"done" and reaped.now - finished_at > reaped.lease_s:
                logger.warning(
                    "swarm %s: nested swarm %s finished but its outcome never came back; again", swarm_id, child
                )
                finalize(self.rt, child, fin)
            return True
        return False

    def _running(self, member: Expired, reaped: Reaped, status: str) -> Action:
        """A received member whose lease expired: its worker stopped renewing it."""
        dropped_copy = "u" in member.owner.flags  # a copy the broker redelivered was discarded meanwhile
        if status in _WAIT_STATES and not dropped_copy:
            return reaped.now + reaped.lease_s  # retrying: still in flight
        if not dropped_copy and self._acks_late(member) and reaped.now < member.deadline + redelivery_wait_s(self.app):
            return "wait"
        if reaped.on_lost == "fail" and reaped.state == "running":
            return member.index, "f", _LOST
        return "requeue"

    def _stored(self, task_id: str) -> tuple[str | None, Any]:
        """The member's state and value in the result backend; ``(None, None)`` when it cannot tell."""
        backend = self.app.backend
        if isinstance(backend, DisabledBackend):
            return states.PENDING, None
        try:
            meta = backend.get_task_meta(task_id)
        except Exception:
            logger.exception("reaper: reading the result of %s failed", task_id)
            return None, None
        return str(meta.get("status", states.PENDING)), meta.get("result")

    def _acks_late(self, member: Expired) -> bool:
        try:
            sig = self.rt.task_codec.loads(member.sig)
        except MageflowError:
            return bool(self.app.conf.task_acks_late)
        if sig.get("subtask_type") == "chain":
            steps = sig.get("kwargs", {}).get("tasks") or [{}]
            sig = steps[-1]
        task = self.app.tasks.get(sig.get("task", ""))
        return bool(task.acks_late if task is not None else self.app.conf.task_acks_late)

    def _apply(self, swarm_id: str, outcomes: list[tuple[int, str, bytes]]) -> None:
        if not outcomes:
            return
        tr = self.rt.store.report(swarm_id, outcomes, want_ctx=self.rt.cached_ctx(swarm_id) is None)
        if tr.status == "ok":
            follow(self.rt, swarm_id, tr)


class _Lost:
    """Marker payload: the member was lost and ``on_lost="fail"`` fails it."""


_LOST: Any = _Lost()


def _lost_record(swarm_id: str, index: int) -> bytes:
    exc = WorkerLostError("the worker running this member was lost (its lease expired)")
    return error_record(swarm_id, index, member_task_id(swarm_id, index), exc)

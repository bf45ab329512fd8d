"""The start gate: every delivery of a member passes it in the worker's consumer before Celery reserves it.

A consumer bootstep wraps the task strategies Celery built for the worker (the functions that turn a
message into a request). For a member's message it runs ``receive.lua`` first (one round trip, the
one S2 names "receipt"), which answers:

* ``ok``: this delivery holds the member's lease; a fresh lease token is put in the message headers
  (``mageflow_lease``), so the request carries it to ``task_received`` (lease renewal) and into the
  task (hand-offs, see :mod:`.endings`);
* ``drop``: the swarm was cancelled or failed; the member is revoked the way Celery revokes (REVOKED
  stored, ``task_revoked`` sent), never executed;
* ``dup``: another delivery of the same step holds a live lease, the copy is stale (an older publish
  epoch, an earlier chain step) or the member already finished: the message is acknowledged and
  discarded: nothing runs, nothing is stored, no signal is sent (SPEC D5);
* ``ignore`` / ``unknown``: not a tracked member (a copy applied outside its swarm, an expired swarm):
  Celery runs it as usual.

Layer: ``worker`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from celery import bootsteps
from celery.worker import state as worker_state

from ..engine.dispatch import follow
from ..engine.flow import apply_grants
from ..engine.members import EPOCH_HEADER, LEASE_HEADER
from ..engine.retry import with_retries
from ..engine.runtime import Runtime, installed_runtime
from ..keys import MemberRef, parse_member_task_id
from .parts import leases

logger = logging.getLogger("mageflow_celery")
_GATED = "_mageflow_gated"
#: Backoff of a failing receipt call: the consumer waits for it, so it gives up sooner than a report.
RECEIVE_RETRY_DELAYS_S = (0.05, 0.2, 0.5)


def gate(rt: Runtime, ref: MemberRef, headers: dict[str, Any]) -> str:
    """Run the start gate for one delivery whose message headers are ``headers`` (updated in place)."""
    token = uuid.uuid4().hex
    raw_epoch = headers.get(EPOCH_HEADER)
    epoch = int(raw_epoch) if isinstance(raw_epoch, (int, str)) and str(raw_epoch).isdigit() else None
    previous = leases(rt).released_token(ref.swarm_id, ref.index)
    headers.pop(LEASE_HEADER, None)
    try:
        verdict, released, pool = with_retries(
            f"swarm {ref.swarm_id}: receive",
            rt.store.receive_full,
            ref.swarm_id,
            ref.index,
            ref.step,
            token,
            epoch,
            previous,
            delays=RECEIVE_RETRY_DELAYS_S,
        )
    except Exception:
        logger.exception("swarm %s: recording receipt of member %d failed; it runs untracked", ref.swarm_id, ref.index)
        return "error"
    if verdict == "ok":
        headers[LEASE_HEADER] = token
    if released and pool:  # a member dropped at receipt gives its pool token back
        _give_back(rt, pool, released)
    return str(verdict)


def _give_back(rt: Runtime, pool: str, grants: list[str]) -> None:
    try:
        for swarm_id, tr in apply_grants(rt, pool, rt.store.pool_settle(pool, "", 0, 1, grants)):
            follow(rt, swarm_id, tr)
    except Exception:
        logger.exception("pool %s: giving back %d grant(s) failed; the reaper reconciles the pool", pool, len(grants))


def _gated(strategy: Callable[..., Any], rt: Runtime, consumer: Any) -> Callable[..., Any]:
    def handler(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **kwargs: Any) -> Any:
        headers = message.headers
        ref = parse_member_task_id(headers.get("id")) if isinstance(headers, dict) else None
        if ref is not None:
            verdict = gate(rt, ref, headers)
            if verdict == "dup":
                logger.debug("swarm %s: a copy of member %d discarded (D5)", ref.swarm_id, ref.index)
                ack(logger, consumer.connection_errors)
                return None
            if verdict == "drop":
                worker_state.revoked.add(headers["id"])
                logger.debug("swarm %s: member %d dropped at receipt (swarm ended)", ref.swarm_id, ref.index)
        return strategy(message, body, ack, reject, callbacks, **kwargs)

    setattr(handler, _GATED, True)
    return handler


class GateStep(bootsteps.StartStopStep):
    """Consumer bootstep: wraps the consumer's task strategies with the start gate (after they are built)."""

    label = "mageflow start gate"
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, c: Any) -> None:
        rt = installed_runtime(c.app)
        if rt is None:
            return
        for name, strategy in list(c.strategies.items()):
            if not getattr(strategy, _GATED, False):
                c.strategies[name] = _gated(strategy, rt, c)


def add_to(app: Any) -> None:
    """Add the start gate to the app's worker consumers (idempotent)."""
    steps = app.steps["consumer"]
    if GateStep not in steps:
        steps.add(GateStep)

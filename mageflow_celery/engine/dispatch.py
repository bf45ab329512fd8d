"""Acting on a transition: publish the members it admitted and revoke what it asks to revoke.

Whoever performed a transition (a client call, a worker's reporter, the reaper) calls :func:`follow`
with its result; the state in Redis already says what happened, so this only publishes. The eager
driver (:mod:`mageflow_celery.eager`) follows transitions its own way (members run inline).

Layer: ``engine`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.exceptions import OperationalError

from ..keys import member_task_id
from ..state.store import Transition
from .finalize import finalize
from .members import build_member
from .runtime import Runtime
from .summary import error_record

logger = logging.getLogger("mageflow_celery")


def run_context(rt: Runtime, swarm_id: str, tr: Transition) -> Any:
    """The swarm's decoded run context (args, kwargs, default options, root id), cached per process."""
    ctx = rt.cached_ctx(swarm_id)
    if ctx is None:
        raw = tr.ctx if tr.ctx is not None else rt.store.meta_field(swarm_id, "ctx")
        ctx = rt.task_codec.loads(raw) if raw else {"args": [], "kwargs": {}, "options": {}, "root_id": swarm_id}
        rt.cache_ctx(swarm_id, ctx)
    return ctx


def follow(rt: Runtime, swarm_id: str, tr: Transition, terminate: bool = False) -> None:
    """Publish what ``tr`` admitted, revoke what it asks, and finalize when it won the decision."""
    while True:
        failed = publish_members(rt, swarm_id, tr) if tr.admitted else []
        revoke_and_finalize(rt, swarm_id, tr, terminate)
        if not failed:
            return
        # Members whose message could not even be built count as failed (S4); that may admit more.
        tr = rt.store.report(swarm_id, failed, want_ctx=False)


def revoke_and_finalize(rt: Runtime, swarm_id: str, tr: Transition, terminate: bool = False) -> None:
    """Revoke the members ``tr`` lists and publish the callbacks when ``tr`` won the decision."""
    try:
        if tr.revoke and not rt.app.conf.task_always_eager:
            ids = [member_task_id(swarm_id, i) for i in tr.revoke]
            # A failure decision only revokes with ``revoke_on_failure``, which stops executing members too.
            rt.app.control.revoke(ids, terminate=terminate or tr.fin == "f")
    finally:  # finalize even when the broker refused the revoke (the error still reaches the caller)
        if tr.fin:
            finalize(rt, swarm_id, tr.fin)


def publish_members(rt: Runtime, swarm_id: str, tr: Transition) -> list[tuple[int, str, bytes]]:
    """Publish admitted members in one producer session; return failures of members that cannot be sent.

    A broker error leaves the member dispatched: it is re-published after ``dispatch_timeout_s``.
    """
    app = rt.app
    ctx = run_context(rt, swarm_id, tr)
    codec = rt.task_codec
    failed: list[tuple[int, str, bytes]] = []
    with app.producer_or_acquire() as producer:
        transient = (OperationalError, AttributeError, OSError, *producer.connection.connection_errors)
        for index, blob in tr.admitted:
            try:
                member = build_member(app, swarm_id, index, codec.loads(blob), ctx)
                if member.get("subtask_type") == "chain":
                    member.apply_async()
                else:
                    member.apply_async(producer=producer)
            except transient:
                # a broker or connection error (kombu does not wrap every one): the member stays dispatched
                logger.exception("swarm %s: publishing member %d failed; it will be re-published", swarm_id, index)
            except Exception as exc:
                logger.warning("swarm %s: member %d cannot be published: %r", swarm_id, index, exc)
                failed.append((index, "f", error_record(swarm_id, index, None, exc)))
            else:
                logger.debug("swarm %s: member %d dispatched", swarm_id, index)
    return failed

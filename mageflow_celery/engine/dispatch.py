"""Acting on a transition: publish admitted members, revoke, and run the elected finalization.

Whoever performed a transition (a client, a worker's reporter, the reaper) calls :func:`follow` with
its result; the state in Redis already says what happened, so this only publishes.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.canvas import signature
from kombu.exceptions import OperationalError

from .eager import inline_wanted, run_inline
from .keys import callback_task_id, member_task_id
from .members import build_member
from .model import callback_call
from .retry import with_retries
from .runtime import Runtime
from .signals import swarm_finished
from .store import Transition
from .summary import build_summary, error_record

logger = logging.getLogger("mageflow_celery")

#: Result task published with the swarm id when the swarm sits in a canvas (chain, group, chord, link).
RESULT_TASK = "mageflow.swarm_result"
_FIN_STATE = {"s": "succeeded", "f": "failed", "c": "cancelled"}


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
    if tr.admitted and inline_wanted(rt.app):
        for later in [tr, *run_inline(rt, swarm_id, tr)]:
            _revoke_and_finalize(rt, swarm_id, later, terminate)
        return
    while True:
        failed = publish_members(rt, swarm_id, tr) if tr.admitted else []
        _revoke_and_finalize(rt, swarm_id, tr, terminate)
        if not failed:
            return
        # Members whose message could not even be built count as failed (S4); that may admit more.
        tr = rt.store.report(swarm_id, failed, want_ctx=False)


def _revoke_and_finalize(rt: Runtime, swarm_id: str, tr: Transition, terminate: bool) -> None:
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


def ordered_results(rt: Runtime, swarm_id: str, meta: dict[str, bytes]) -> list[Any]:
    """Results in member order: succeeded only, or aligned with ``None`` where a member did not succeed."""
    codec = rt.result_codec
    raw = rt.store.results(swarm_id)
    if meta.get("results_mode", b"succeeded") == b"aligned":
        total = int(float(meta.get("total", b"0")))
        return [codec.loads(raw[i]) if i in raw else None for i in range(total)]
    return [codec.loads(raw[i]) for i in sorted(raw)]


def outcome_value(rt: Runtime, swarm_id: str, fin: str, meta: dict[str, bytes]) -> Any:
    """What the callbacks receive: the result list (success) or the failure summary (failure)."""
    if fin == "s":
        return ordered_results(rt, swarm_id, meta)
    if fin == "f":
        return build_summary(swarm_id, meta, rt.store.errors(swarm_id))
    return None


def finalize(rt: Runtime, swarm_id: str, fin: str) -> None:
    """Publish the callbacks of the decision ``fin`` once (deterministic ids), then release the claim."""
    app = rt.app
    meta = with_retries(f"swarm {swarm_id}: finalize read", rt.store.meta, swarm_id)
    raw_def = meta.get("def")
    definition = rt.task_codec.loads(raw_def) if raw_def else {"success": [], "error": [], "canvas": {}}
    root_id = definition.get("root_id") or swarm_id
    callbacks = definition["success" if fin == "s" else "error"] if fin in ("s", "f") else []
    canvas = definition.get("canvas") or {}
    # Read (and decode) every member's result only when a callback or the canvas receives them.
    value = (
        with_retries(f"swarm {swarm_id}: results read", outcome_value, rt, swarm_id, fin, meta)
        if callbacks or canvas
        else None
    )
    kind = "s" if fin == "s" else "e"
    for position, cb in enumerate(callbacks):
        sig = signature(cb, app=app)
        args, kwargs = callback_call(app, str(sig.task), value)
        sig.apply_async(
            args, kwargs, task_id=callback_task_id(swarm_id, kind, position), parent_id=swarm_id, root_id=root_id
        )
    if canvas:
        publish_result_task(rt, swarm_id, fin, value, canvas)
    # Not the publishing above: a retried publish would run the callbacks twice.
    with_retries(f"swarm {swarm_id}: release claim", rt.store.finalized, swarm_id)
    name = meta.get("name", b"").decode() or None
    logger.info("swarm %s (%s) %s", swarm_id, name, _FIN_STATE[fin])
    swarm_finished.send(sender=swarm_id, app=app, name=name, state=_FIN_STATE[fin])


def publish_result_task(rt: Runtime, swarm_id: str, fin: str, value: Any, canvas: dict[str, Any]) -> None:
    """Let Celery carry the swarm's outcome through its canvas (chain, chord, group, link/link_error).

    Success and failure go through a real task whose id is the swarm id, so Celery's own trace runs
    the next chain step, the chord accounting and the errbacks. A cancelled swarm is marked REVOKED.
    """
    app = rt.app
    if fin == "c":
        from celery.app.task import Context

        request = Context({"id": swarm_id, **canvas, "errbacks": canvas.get("link_error")})
        app.backend.mark_as_revoked(swarm_id, "swarm cancelled", request=request)
        return
    app.signature(RESULT_TASK, kwargs={"outcome": fin, "value": value}).apply_async(task_id=swarm_id, **canvas)

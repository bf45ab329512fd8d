"""Finalization: publish a finished swarm's callbacks once, and carry its outcome through a canvas.

The one caller that won the decision in a script (or the reaper, taking over a stale claim) calls
:func:`finalize`; callbacks get deterministic task ids, so a re-publish after a crash has the same ids.

Layer: ``engine`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
from typing import Any

from celery.app.task import Context
from celery.canvas import signature

from ..config import FINALIZE_CLAIM_S
from ..keys import callback_task_id
from ..signals import swarm_finished
from .model import callback_call
from .retry import with_retries
from .runtime import Runtime
from .summary import build_summary

logger = logging.getLogger("mageflow_celery")

#: Result task published with the swarm id when the swarm sits in a canvas (chain, group, chord, link)
#: or in another swarm.
RESULT_TASK = "mageflow.swarm_result"
#: Canvas flag of a nested swarm: its outcome reaches its parent through the result task, always.
NESTED = "nested"
_FIN_STATE = {"s": "succeeded", "f": "failed", "c": "cancelled"}


def claim_period_s(app: Any) -> float:
    """Seconds a finalization claim may stay unreleased before the reaper re-runs it."""
    return float(app.conf.get("mageflow_finalize_claim_s") or FINALIZE_CLAIM_S)


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
    """Publish the callbacks of the decision ``fin`` once (deterministic ids), then release the claim.

    The swarm goes into the reaper's due index for the claim's deadline first, so a finalizer that dies
    before releasing the claim is taken over (R2).
    """
    app = rt.app
    rt.store.schedule_soon(swarm_id, claim_period_s(app))
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
    released = with_retries(f"swarm {swarm_id}: release claim", rt.store.finalized, swarm_id)
    if released == "ok":  # the one release of the claim: fold the swarm's counters into the stats once
        fold_stats(rt, swarm_id)
    name = meta.get("name", b"").decode() or None
    logger.info("swarm %s (%s) %s", swarm_id, name, _FIN_STATE[fin])
    swarm_finished.send(sender=swarm_id, app=app, name=name, state=_FIN_STATE[fin])


#: Counters of a swarm's meta folded into the key prefix's stats when it finishes (metrics, O2).
STAT_FIELDS = ("admitted", "succeeded", "failed", "cancelled")


def fold_stats(rt: Runtime, swarm_id: str) -> None:
    """Add a finished swarm's counters (members, hand-off latencies) to the key prefix's statistics, and
    move it to the index of finished swarms."""
    try:
        meta = rt.store.meta(swarm_id)
        counts: dict[str, float] = {f"members_{name}": int(float(meta.get(name, b"0"))) for name in STAT_FIELDS}
        counts.update({k: int(v) for k, v in meta.items() if k.startswith("hl:")})
        if "hl_sum" in meta:
            counts["hl_sum"] = float(meta["hl_sum"])
        state = meta.get("state", b"").decode()
        counts[f"swarms_{state}"] = 1
        rt.store.add_stats(counts)
        rt.store.mark_finished(swarm_id, float(meta.get("finished_at", b"0") or 0))
    except Exception:
        logger.warning("swarm %s: could not fold its counters into the metrics", swarm_id, exc_info=True)


def publish_result_task(rt: Runtime, swarm_id: str, fin: str, value: Any, canvas: dict[str, Any]) -> None:
    """Let Celery carry the swarm's outcome through its canvas (chain, chord, group, link/link_error).

    Success and failure go through a real task whose id is the swarm id, so Celery's own trace runs
    the next chain step, the chord accounting and the errbacks. A cancelled swarm is marked REVOKED,
    except a nested swarm (a member of another swarm, N1): its result task raises
    ``SwarmCancelledError``, so its parent counts it as one failed member.
    """
    app = rt.app
    options = {k: v for k, v in canvas.items() if k != NESTED}
    if fin == "c" and not canvas.get(NESTED):
        request = Context({"id": swarm_id, **options, "errbacks": options.get("link_error")})
        app.backend.mark_as_revoked(swarm_id, "swarm cancelled", request=request)
        return
    app.signature(RESULT_TASK, kwargs={"outcome": fin, "value": value}).apply_async(task_id=swarm_id, **options)

"""Acting on a transition: publish the members it admitted and revoke what it asks to revoke.

Whoever performed a transition (a client call, a worker's reporter, the reaper) calls :func:`follow`
with its result; the state in Redis already says what happened, so this only publishes. The eager
driver (:mod:`mageflow_celery.eager`) follows transitions its own way (members run inline).

Layer: ``engine`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from kombu.exceptions import OperationalError

from ..keys import FINAL_STEP, member_task_id, step_task_id
from ..state.records import Revoke, Transition
from .finalize import finalize
from .flow import settle
from .members import build_member
from .producers import batched, batches, reuse_redis_client
from .retry import with_retries
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


def follow(rt: Runtime, swarm_id: str, tr: Transition, terminate: bool = False, producer: Any = None) -> None:
    """Publish what ``tr`` admitted, revoke what it asks, finalize when it won the decision, and settle its
    flow (pool grants, rates), following the transitions of every swarm that got grants in turn.

    ``producer``: a producer the caller holds across calls (the reporter does); by default one is taken
    from the app's producer pool for each publish.

    Raises:
        The broker's error (after Celery's publish retry policy) when admitted members could not be
        published: they stay dispatched, flagged for the reaper to re-publish at its next tick (D6).
    """
    broker_error: BaseException | None = None
    todo = [(swarm_id, tr)]
    while todo:
        sid, current = todo.pop(0)
        published = publish_members(rt, sid, current, producer) if current.admitted else Published()
        broker_error = broker_error or published.error
        if published.unsent:
            with_retries(f"swarm {sid}: flag unpublished", rt.store.unpublished, sid, published.unsent)
            rt.store.schedule_soon(sid, 0.0)  # the reaper re-publishes them at its next look
        revoke_and_finalize(rt, sid, current, terminate if sid == swarm_id else False)
        todo += settle(rt, sid, current)
        if published.failed:
            # Members whose message could not even be built count as failed (S4); that may admit more.
            todo.append((sid, rt.store.report(sid, published.failed, want_ctx=False)))
    if broker_error is not None:
        raise broker_error


def revoke_ids(swarm_id: str, revoke: list[Revoke]) -> list[str]:
    """Task ids to revoke: the member id, or the step of a chain member that holds the token."""
    return [
        member_task_id(swarm_id, r.index) if r.step == FINAL_STEP else step_task_id(swarm_id, r.index, r.step)
        for r in revoke
    ]


def revoke_and_finalize(rt: Runtime, swarm_id: str, tr: Transition, terminate: bool = False) -> None:
    """Revoke the members ``tr`` lists and publish the callbacks when ``tr`` won the decision."""
    try:
        if tr.revoke and not rt.app.conf.task_always_eager:
            # A failure decision only revokes with ``revoke_on_failure``, which stops executing members too.
            rt.app.control.revoke(revoke_ids(swarm_id, tr.revoke), terminate=terminate or tr.fin == "f")
    finally:  # finalize even when the broker refused the revoke (the error still reaches the caller)
        if tr.fin:
            finalize(rt, swarm_id, tr.fin)


@dataclass
class Published:
    """What :func:`publish_members` did: members that cannot be sent at all (failed), members the broker
    refused (unsent, with its error)."""

    failed: list[tuple[int, str, bytes]] = field(default_factory=list)
    unsent: list[int] = field(default_factory=list)
    error: BaseException | None = None


def publish_members(rt: Runtime, swarm_id: str, tr: Transition, producer: Any = None) -> Published:
    """Publish admitted members in one producer session (plain members in one batch where the transport
    supports it), with ``producer`` or one from the app's pool."""
    app = rt.app
    ctx = run_context(rt, swarm_id, tr)
    codec = rt.task_codec
    out = Published()
    with app.producer_or_acquire(producer) as producer:
        reuse_redis_client(producer)
        transient = (OperationalError, AttributeError, OSError, *producer.connection.connection_errors)
        plain: list[tuple[int, Any]] = []
        for admitted in tr.admitted:
            index = admitted.index
            try:
                member = build_member(app, swarm_id, index, codec.loads(admitted.blob), ctx, admitted.epoch)
                if member.get("subtask_type") in ("chain", "swarm"):
                    member.apply_async()  # a chain publishes its first step; a nested swarm starts itself
                else:
                    plain.append((index, member))
                    continue
            except transient as exc:
                _unsent(out, swarm_id, [index], exc)
            except Exception as exc:
                _failed(out, swarm_id, index, exc)
        _publish_plain(out, swarm_id, producer, plain, transient)
    return out


def _publish_plain(
    out: Published,
    swarm_id: str,
    producer: Any,
    plain: list[tuple[int, Any]],
    transient: tuple[type[BaseException], ...],
) -> None:
    """Publish plain members; in a batch, a broker error loses the whole batch (all unsent)."""
    in_batch = len(plain) > 1 and batches(producer)
    left = [index for index, _ in plain]
    try:
        with batched(producer, in_batch):
            for index, member in plain:
                try:
                    member.apply_async(producer=producer)
                except transient:
                    raise
                except Exception as exc:
                    _failed(out, swarm_id, index, exc)
                    left.remove(index)
                else:
                    if not in_batch:
                        left.remove(index)
    except transient as exc:
        _unsent(out, swarm_id, left, exc)
    else:
        logger.debug("swarm %s: %d member(s) dispatched", swarm_id, len(plain))


def _unsent(out: Published, swarm_id: str, indices: list[int], exc: BaseException) -> None:
    """A broker or connection error (kombu does not wrap every one): the members stay dispatched."""
    logger.warning("swarm %s: publishing %s failed (%r); the reaper re-publishes them", swarm_id, indices, exc)
    out.unsent += indices
    out.error = out.error or exc


def _failed(out: Published, swarm_id: str, index: int, exc: BaseException) -> None:
    logger.warning("swarm %s: member %d cannot be published: %r", swarm_id, index, exc)
    out.failed.append((index, "f", error_record(swarm_id, index, None, exc)))

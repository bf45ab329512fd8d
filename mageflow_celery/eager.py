"""The eager driver (``task_always_eager``, ``Swarm.apply``): members run inline, one at a time.

A driver of its own over the same state transitions the worker side uses: it receives each admitted
member through the start gate, runs it in this process, reports its outcome, and goes on with what
that admitted, until nothing is admitted any more. So S2–S8 hold and :class:`SwarmResult` works as
usual; the worker hooks are not involved (they ignore eager requests). A member's exception is counted
as a failure (S7) whatever ``task_eager_propagates`` says. See ``docs/architecture.md``.
"""

from __future__ import annotations

import contextvars
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery
from celery.canvas import Signature, _chain, signature

from .engine.dispatch import revoke_and_finalize, run_context
from .engine.flow import settle
from .engine.members import build_member
from .engine.runtime import Runtime
from .engine.summary import error_record
from .keys import FINAL_STEP
from .state.records import Admitted, Transition

_INLINE: contextvars.ContextVar[bool] = contextvars.ContextVar("mageflow_inline", default=False)


@contextmanager
def inline_members() -> Iterator[None]:
    """Within this block, admitted members run inline (``Swarm.apply``)."""
    token = _INLINE.set(True)
    try:
        yield
    finally:
        _INLINE.reset(token)


def inline_wanted(app: Celery) -> bool:
    """True when members must run inline: eager mode, or inside :meth:`Swarm.apply`."""
    return bool(app.conf.task_always_eager) or _INLINE.get()


def _apply_member(member: Signature[Any]) -> tuple[str, Any]:
    """Run one member inline; ``("s", result)`` or ``("f", exception)``."""
    steps = [signature(t, app=member.app) for t in member.tasks] if isinstance(member, _chain) else [member]
    value: Any = None
    for k, step in enumerate(steps):
        args = (value,) if k else ()
        res = step.clone().apply(args, throw=False)
        if res.failed():
            return "f", res.result
        value = res.result
    return "s", value


def _run_one(rt: Runtime, swarm_id: str, member: Admitted, ctx: Any) -> Transition | None:
    """Receive, run and report one admitted member; ``None`` when the start gate dropped it."""
    index = member.index
    if rt.store.receive(swarm_id, index, FINAL_STEP, uuid.uuid4().hex, member.epoch) != "ok":
        return None  # the swarm ended (failure threshold, cancel) after this member was admitted
    try:
        data = rt.task_codec.loads(member.blob)
        kind, value = _apply_member(build_member(rt.app, swarm_id, index, data, ctx, member.epoch))
    except Exception as build_error:  # the message could not be built (S4): a member failure
        kind, value = "f", build_error
    if kind == "s":
        payload = rt.result_codec.dumps(value, "member result")
    else:
        payload = error_record(swarm_id, index, None, value if isinstance(value, BaseException) else None)
    return rt.store.report(swarm_id, [(index, kind, payload)], want_ctx=False)


def drive(rt: Runtime, swarm_id: str, tr: Transition, terminate: bool = False) -> None:
    """Follow ``tr`` inline: run what it admitted and every member that makes admissible (in this swarm, or in
    swarms its pool grants tokens to), finalizing each swarm that decided."""
    todo: deque[tuple[str, Transition]] = deque([(swarm_id, tr)])
    while todo:
        sid, current = todo.popleft()
        revoke_and_finalize(rt, sid, current, terminate if sid == swarm_id else False)
        todo.extend(settle(rt, sid, current))
        if not current.admitted:
            continue
        ctx = run_context(rt, sid, current)
        for member in current.admitted:
            nxt = _run_one(rt, sid, member, ctx)
            if nxt is not None:
                todo.append((sid, nxt))

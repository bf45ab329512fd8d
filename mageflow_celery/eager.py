"""Eager mode (``task_always_eager``): run admitted members inline, one at a time, in a loop.

The same scripts record every transition, so S2–S8 hold and :class:`SwarmResult` works as usual;
the worker hooks are not involved (they ignore eager requests). A member's exception is counted as
a failure (S7) whatever ``task_eager_propagates`` says.
"""

from __future__ import annotations

import contextvars
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from celery.canvas import Signature, _chain, signature

from .members import build_member
from .summary import error_record

if TYPE_CHECKING:
    from celery import Celery

    from .runtime import Runtime
    from .store import Transition

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


def _apply_member(member: Signature) -> tuple[str, Any]:
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


def run_inline(rt: Runtime, swarm_id: str, tr: Transition) -> list[Transition]:
    """Execute ``tr``'s admitted members and every member they make admissible; return the transitions
    whose finalization or revocation the caller still has to follow."""
    from .dispatch import run_context

    ctx = run_context(rt, swarm_id, tr)
    codec = rt.task_codec
    todo: deque[tuple[int, bytes]] = deque(tr.admitted)
    later: list[Transition] = []
    while todo:
        index, blob = todo.popleft()
        rt.store.receive(swarm_id, index)
        try:
            kind, value = _apply_member(build_member(rt.app, swarm_id, index, codec.loads(blob), ctx))
        except Exception as build_error:  # the message could not be built (S4): a member failure
            kind, value = "f", build_error
        if kind == "s":
            payload = rt.result_codec.dumps(value, "member result")
        else:
            payload = error_record(swarm_id, index, None, value if isinstance(value, BaseException) else None)
        nxt = rt.store.report(swarm_id, [(index, kind, payload)], want_ctx=False)
        todo.extend(nxt.admitted)
        if nxt.fin or nxt.revoke:
            later.append(nxt)
    return later

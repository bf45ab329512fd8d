"""Member handles: what :meth:`Swarm.add_task` returns. Applying one queues it in its swarm.

Layer: ``client`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from celery import Celery
from celery.canvas import Signature
from celery.result import AsyncResult
from pydantic import BaseModel

from .._compat import from_dict, merge
from ..engine.members import CANVAS_OPTIONS
from ..engine.runtime import runtime_for
from ..errors import MageflowError, SwarmClosedError, SwarmNotFoundError, TooManyTasksError
from ..keys import member_task_id
from .drive import advance
from .messages import as_kwargs, model_or_kwargs
from .oncommit import OnCommitMixin

logger = logging.getLogger("mageflow_celery")

_STATUS_ERRORS: dict[str, tuple[type[Exception], str]] = {
    "closed": (SwarmClosedError, "swarm {id} is closed, failed, cancelled or finished"),
    "toomany": (TooManyTasksError, "swarm {id} already has max_task_allowed members"),
    "twice": (MageflowError, "member {index} of swarm {id} was already run"),
    "initial": (MageflowError, "member {index} of swarm {id} is queued when the swarm starts"),
    "nomember": (MageflowError, "swarm {id} has no member {index}"),
}


def check_status(status: str, swarm_id: str, index: int | None = None) -> None:
    """Raise the error a refused transition stands for (nothing was written)."""
    if status == "unknown":
        raise SwarmNotFoundError(swarm_id)
    if status in _STATUS_ERRORS:
        cls, msg = _STATUS_ERRORS[status]
        raise cls(msg.format(id=swarm_id, index=index))


def queue_member(
    sig: Signature,
    app: Celery,
    swarm_id: str,
    index: int,
    args: Iterable[Any] | None,
    kwargs: Mapping[str, Any] | BaseModel | None,
    options: Mapping[str, Any],
) -> AsyncResult[Any]:
    """Queue member ``index`` with its run args/kwargs merged in (member run kwargs win)."""
    rt = runtime_for(app)
    new_args, new_kwargs, new_opts = merge(sig, tuple(args or ()), as_kwargs(kwargs), dict(options))
    data = dict(sig)
    data.update(
        args=tuple(new_args),
        kwargs=dict(new_kwargs),
        options={k: v for k, v in new_opts.items() if k not in CANVAS_OPTIONS},
    )
    blob = rt.task_codec.dumps(data, "swarm member")
    tr = rt.store.enqueue(swarm_id, index, blob, want_ctx=rt.cached_ctx(swarm_id) is None)
    check_status(tr.status, swarm_id, index)
    logger.debug("swarm %s: member %d queued", swarm_id, index)
    advance(rt, swarm_id, tr)
    return AsyncResult(member_task_id(swarm_id, index), app=app)


class MessageMixin(OnCommitMixin):
    """``delay(model)`` and the seed's ``aio_run_no_wait(message)`` on top of ``apply_async``."""

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult[Any]:
        """Apply with star arguments; ``x.delay(model)`` takes a pydantic model as the message."""
        a, kw = model_or_kwargs(args, kwargs)
        result: AsyncResult[Any] = self.apply_async(a, kw)  # type: ignore[attr-defined]
        return result

    async def aio_run_no_wait(self, message: Any = None, **kwargs: Any) -> AsyncResult[Any]:
        """Seed spelling of ``apply_async(kwargs=message)`` (a model or a dict), run off the event loop."""
        result: AsyncResult[Any] = await asyncio.to_thread(
            self.apply_async,  # type: ignore[attr-defined]
            None,
            message if message is not None else kwargs,
        )
        return result


class SwarmMember(MessageMixin, Signature):
    """A member registered in a swarm; ``apply_async``/``delay`` queue it there (once).

    ``member.id`` is its deterministic task id, so ``AsyncResult(member.id)`` works.
    """

    swarm_id: str = ""
    index: int = -1

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | BaseModel | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> AsyncResult[Any]:
        return queue_member(self, self.app, self.swarm_id, self.index, args, kwargs, options)


def from_stored(app: Celery, swarm_id: str, index: int) -> SwarmMember:
    """The handle of member ``index`` rebuilt from its stored signature (one read).

    Raises:
        SwarmNotFoundError: the swarm or the member does not exist.
    """
    rt = runtime_for(app)
    blob = rt.store.member_blob(swarm_id, index)
    if blob is None:
        raise SwarmNotFoundError(f"{swarm_id} (member {index})")
    member: SwarmMember = from_dict(SwarmMember, rt.task_codec.loads(blob), app=app)
    member.options["task_id"] = member_task_id(swarm_id, index)
    member.swarm_id, member.index = swarm_id, index
    return member


def adopt(original: Any, sig: Signature, swarm_id: str, index: int, app: Celery) -> SwarmMember:
    """The handle for a new member. A ``sign()``-made signature becomes the handle itself."""
    bind = getattr(original, "_bind_to_swarm", None)
    if callable(bind):
        bind(swarm_id, index, app)
        return original  # type: ignore[no-any-return]
    member: SwarmMember = from_dict(SwarmMember, dict(sig), app=app)
    member.options["task_id"] = member_task_id(swarm_id, index)
    member.swarm_id = swarm_id
    member.index = index
    return member

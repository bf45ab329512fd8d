"""Seed-style signatures: :class:`MageflowSignature`, which becomes its own member handle once added
to a swarm, and :func:`sign` (``mf.sign`` / ``aio.sign``).

Layer: ``client`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from celery import Celery
from celery.app.task import Task
from celery.canvas import Signature
from celery.result import AsyncResult
from pydantic import BaseModel

from .._compat import from_dict
from ..keys import member_task_id
from .membership import MessageMixin, queue_member
from .messages import as_kwargs


class MageflowSignature(MessageMixin, Signature):
    """A signature made by :meth:`Mageflow.sign`. Once added to a swarm with ``add_task``, applying it
    (``delay``, ``apply_async``, ``aio_run_no_wait``) queues it in that swarm instead of publishing it."""

    _swarm: tuple[str, int, Celery] | None = None

    def _bind_to_swarm(self, swarm_id: str, index: int, app: Celery) -> None:
        self._swarm = (swarm_id, index, app)
        self.options["task_id"] = member_task_id(swarm_id, index)

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | BaseModel | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> AsyncResult[Any]:
        if self._swarm is not None:
            swarm_id, index, app = self._swarm
            return queue_member(self, app, swarm_id, index, args, kwargs, options)
        return super().apply_async(tuple(args or ()), as_kwargs(kwargs), route_name, **options)


def sign(app: Celery, task: str | Task[Any, Any] | Signature[Any], **kwargs: Any) -> MageflowSignature:
    """A signature of ``task`` (a name, a task or a signature) bound to ``app``, with bound kwargs."""
    if isinstance(task, Signature):
        sig: MageflowSignature = from_dict(MageflowSignature, dict(task), app=app)
        sig.kwargs.update(kwargs)
        return sig
    name = task if isinstance(task, str) else task.name
    return MageflowSignature(name, kwargs=kwargs, app=app)

"""The seed's client spellings: :class:`Mageflow` (``mf.task``, ``mf.sign``, ``mf.swarm``) and
:class:`MageflowSignature`, a signature that becomes its own member handle when added to a swarm."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, overload

from celery import Celery
from celery.app.task import Task
from celery.canvas import Signature
from celery.result import AsyncResult
from pydantic import BaseModel

from ._compat import from_dict
from .canvas import Swarm, as_kwargs, swarm
from .membership import MessageMixin
from .model import message_model, wrap_model_task
from .runtime import install


class MageflowSignature(MessageMixin, Signature):
    """A signature made by :meth:`Mageflow.sign`. Once added to a swarm with ``add_task``, applying it
    (``delay``, ``apply_async``, ``aio_run_no_wait``) queues it in that swarm instead of publishing it."""

    _swarm: tuple[str, int, Celery] | None = None

    def _bind_to_swarm(self, swarm_id: str, index: int, app: Celery) -> None:
        from .keys import member_task_id

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
            from .membership import queue_member

            swarm_id, index, app = self._swarm
            return queue_member(self, app, swarm_id, index, args, kwargs, options)
        return super().apply_async(tuple(args or ()), as_kwargs(kwargs), route_name, **options)


class Mageflow:
    """The client form of the API for one app (seed spelling).

    Example:
        >>> mf = Mageflow(app)
        >>> @mf.task(name="process-file")
        ... def process_file(msg: FileMessage) -> str: ...
        >>> s = mf.swarm(tasks=[mf.sign("process-file", file_path=p) for p in paths], is_swarm_closed=True)
        >>> s.delay(BatchMessage(batch="b1"))
    """

    def __init__(self, app: Celery, redis_url: str | None = None) -> None:
        install(app, redis_url)
        self.app = app

    @overload
    def task(self, fn: Callable[..., Any], /) -> Task[Any, Any]: ...

    @overload
    def task(self, *, name: str | None = None, **options: Any) -> Callable[[Callable[..., Any]], Task[Any, Any]]: ...

    def task(self, *args: Any, **options: Any) -> Any:
        """``app.task`` for seed-style functions: sync or ``async def``, and a single pydantic-model
        parameter built from the message's flat kwargs (validation errors fail the task).

        Used bare (``@mf.task``) or with ``app.task`` options (``@mf.task(name="process-file")``);
        tasks are registered on this client's app only (``shared=False`` unless given).
        """

        def decorate(fn: Callable[..., Any]) -> Task[Any, Any]:
            opts = dict(options)
            if message_model(fn) is not None:
                opts.setdefault("typing", False)
            opts.setdefault("shared", False)
            task: Task[Any, Any] = self.app.task(**opts)(wrap_model_task(fn))
            return task

        if len(args) == 1 and callable(args[0]) and not options:
            return decorate(args[0])
        return decorate

    def sign(self, task: str | Task[Any, Any] | Signature[Any], **kwargs: Any) -> MageflowSignature:
        """A signature of ``task`` (a name or a task) with bound kwargs; a pydantic model is accepted."""
        if isinstance(task, Signature):
            sig: MageflowSignature = from_dict(MageflowSignature, dict(task), app=self.app)
            sig.kwargs.update(kwargs)
            return sig
        name = task if isinstance(task, str) else task.name
        return MageflowSignature(name, kwargs=kwargs, app=self.app)

    def swarm(self, *args: Any, **kwargs: Any) -> Swarm:
        """:func:`mageflow_celery.swarm` bound to this app."""
        kwargs.setdefault("app", self.app)
        return swarm(*args, **kwargs)

    @property
    def aio(self) -> Any:
        """The coroutine versions (``await mf.aio.swarm(...)``, ``await mf.aio.sign(...)``)."""
        from .aio import AioClient

        return AioClient(self)

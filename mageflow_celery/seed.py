"""The seed's client spellings: :class:`Mageflow` (``mf.task``, ``mf.sign``, ``mf.swarm``, ``mf.aio``).

It sits above the client layer, next to :mod:`mageflow_celery.install`, because ``Mageflow(app)``
installs mageflow_celery on the app (SPEC §1), which wires the worker side (see ``docs/architecture.md``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, overload

from celery import Celery
from celery.app.task import Task
from celery.canvas import Signature

from .client.aio import AioClient
from .client.canvas import Swarm, swarm
from .client.signing import MageflowSignature, sign
from .engine.model import message_model, wrap_model_task
from .install import install


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

        def decorate(fn: Callable[..., Any], depth: int = 1) -> Task[Any, Any]:
            # Annotations (also PEP 563 strings) resolve in the module and in the scope that applied the
            # decorator, as pydantic's validate_call does; a model that cannot be resolved raises here.
            model = message_model(fn, sys._getframe(depth).f_locals)
            opts = dict(options)
            if model is not None:
                opts.setdefault("typing", False)
            opts.setdefault("shared", False)
            task: Task[Any, Any] = self.app.task(**opts)(wrap_model_task(fn, model))
            return task

        if len(args) == 1 and callable(args[0]) and not options:
            return decorate(args[0], depth=2)
        return decorate

    def sign(self, task: str | Task[Any, Any] | Signature[Any], **kwargs: Any) -> MageflowSignature:
        """A signature of ``task`` (a name or a task) with bound kwargs; a pydantic model is accepted."""
        return sign(self.app, task, **kwargs)

    def swarm(self, *args: Any, **kwargs: Any) -> Swarm:
        """:func:`mageflow_celery.swarm` bound to this app."""
        kwargs.setdefault("app", self.app)
        return swarm(*args, **kwargs)

    @property
    def aio(self) -> AioClient:
        """The coroutine versions (``await mf.aio.swarm(...)``, ``await mf.aio.sign(...)``)."""
        return AioClient(self.app)

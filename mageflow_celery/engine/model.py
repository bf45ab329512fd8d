"""Seed-style messages: ``ReturnValue[T]`` and tasks whose single parameter is a pydantic model.

Layer: ``engine`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import inspect
import os
import threading
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel

from ..errors import MageflowError


class _ReturnValueMarker:
    def __repr__(self) -> str:
        return "ReturnValue"


RETURN_VALUE = _ReturnValueMarker()


T = TypeVar("T")

#: Marks where a swarm's result list (or a chain's parent result) goes: ``ReturnValue[T]`` is
#: ``Annotated[T, <marker>]``. Use it on a field of a task's message model, or on a parameter of a
#: callback task::
#:
#:     class Report(BaseModel):
#:         results: ReturnValue[list[int]]
#:
#:     @mf.task(name="report")
#:     def report(msg: Report) -> int:
#:         return sum(msg.results)
ReturnValue = Annotated[T, RETURN_VALUE]


def _is_return_value(annotation: Any) -> bool:
    return typing.get_origin(annotation) is Annotated and any(m is RETURN_VALUE for m in annotation.__metadata__)


def return_value_field(model: type[BaseModel]) -> str | None:
    """Name of the model field annotated ``ReturnValue[...]``, if any."""
    for name, field in model.model_fields.items():
        if any(m is RETURN_VALUE for m in field.metadata):
            return name
    return None


def return_value_param(fn: Callable[..., Any]) -> str | None:
    """Name of the function parameter annotated ``ReturnValue[...]``, if any."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:
        return None
    for name, annotation in hints.items():
        if name != "return" and _is_return_value(annotation):
            return name
    return None


def message_model(fn: Callable[..., Any], localns: Mapping[str, Any] | None = None) -> type[BaseModel] | None:
    """The pydantic model of a function whose single parameter is annotated with one.

    Annotations resolve in the function's module and in ``localns`` (the scope that defined it, for a
    model defined inside a function under ``from __future__ import annotations``).

    Raises:
        MageflowError: the single parameter's annotation names something that cannot be resolved
            (the task would silently receive flat kwargs instead of its model).
    """
    params = [p for p in inspect.signature(fn).parameters.values() if p.name not in ("self",)]
    if len(params) != 1 or params[0].annotation is inspect.Parameter.empty:
        return None
    try:
        hint = typing.get_type_hints(fn, localns=dict(localns or {})).get(params[0].name)
    except Exception as exc:
        raise MageflowError(
            f"cannot resolve the annotation {params[0].annotation!r} of {fn.__qualname__}({params[0].name}): "
            f"{exc}; define the message model where the task's module (or the scope that decorates it) can "
            "see it"
        ) from exc
    return hint if isinstance(hint, type) and issubclass(hint, BaseModel) else None


_loops = threading.local()
_all_loops: list[asyncio.AbstractEventLoop] = []


@atexit.register
def _close_loops() -> None:
    for loop in _all_loops:
        if not loop.is_closed() and not loop.is_running():
            loop.close()


def run_coroutine(coro: Any) -> Any:
    """Run ``coro`` on this worker process's (and thread's) own event loop."""
    loop = getattr(_loops, "loop", None)
    if loop is None or getattr(_loops, "pid", None) != os.getpid() or loop.is_closed():
        loop = asyncio.new_event_loop()
        _loops.loop, _loops.pid = loop, os.getpid()
        _all_loops.append(loop)
    return loop.run_until_complete(coro)


def wrap_model_task(fn: Callable[..., Any], model: type[BaseModel] | None) -> Callable[..., Any]:
    """Adapt ``fn`` (sync or async) so it can be called with flat kwargs (and a prepended parent result).

    With a single pydantic-model parameter (``model``, see :func:`message_model`), the model is built from
    the kwargs (a validation error is a task failure) and a prepended value fills its ``ReturnValue`` field.
    """
    rv_field = return_value_field(model) if model else None
    is_async = inspect.iscoroutinefunction(fn)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if model is not None:
            data = dict(kwargs)
            if args and rv_field is not None:
                data[rv_field] = args[0]
            elif len(args) == 1 and isinstance(args[0], (model, dict)):
                data = {**(args[0].model_dump() if isinstance(args[0], BaseModel) else args[0]), **data}
            out = fn(model.model_validate(data))
        else:
            out = fn(*args, **kwargs)
        return run_coroutine(out) if is_async else out

    if model is not None:
        run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
                inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
            ]
        )
    return run


def _task_function(app: Any, name: str) -> Callable[..., Any] | None:
    task = app.tasks.get(name)
    if task is None:
        return None
    run = getattr(task, "run", None)
    return getattr(run, "__wrapped__", run)


@functools.lru_cache(maxsize=1024)
def _callback_param(app: Any, name: str) -> str | None:
    fn = _task_function(app, name)
    return return_value_param(fn) if fn is not None else None


def callback_call(app: Any, name: str, value: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """How a callback receives the swarm's value: into its ``ReturnValue`` parameter, else prepended."""
    param = _callback_param(app, name)
    return ((), {param: value}) if param else ((value,), {})


@functools.lru_cache(maxsize=1024)
def pydantic_model_param(app: Any, name: str) -> str | None:
    """For a Celery-native ``@app.task(pydantic=True)`` task: the name of its model parameter."""
    task = app.tasks.get(name)
    if task is None or getattr(task, "_dump_pydantic_arguments", None) is None:
        return None
    fn = _task_function(app, name)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return None
    for param, hint in hints.items():
        if param != "return" and isinstance(hint, type) and issubclass(hint, BaseModel):
            return param
    return None

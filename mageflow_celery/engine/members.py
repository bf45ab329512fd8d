"""Normalizing members and callbacks into signatures, and building a member's message at publish time.

Layer: ``engine`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import Celery
from celery.app.task import Task
from celery.canvas import Signature, _chain, group, signature

from .._compat import ChordType
from ..errors import MageflowError
from ..keys import member_task_id, step_task_id
from .model import pydantic_model_param

#: Message header carrying a member's publish epoch.
EPOCH_HEADER = "mageflow_epoch"
#: Message header the start gate sets on a delivery that holds the member's lease (its lease token).
LEASE_HEADER = "mageflow_lease"

#: Options of a swarm that become defaults for every member (a member's own options win).
MEMBER_DEFAULT_OPTIONS = frozenset(
    {"queue", "routing_key", "exchange", "priority", "expires", "time_limit", "soft_time_limit", "headers"}
)
#: Options that place a task in a canvas; a member never keeps its own.
CANVAS_OPTIONS = frozenset(
    {"task_id", "parent_id", "root_id", "group_id", "group_index", "chord", "chain", "reply_to", "link", "link_error"}
)


def _refuse_nested(sig: Signature, what: str) -> None:
    if isinstance(sig, (group, ChordType)) or sig.get("subtask_type") in {"group", "chord", "swarm"}:
        kind = sig.get("subtask_type") or type(sig).__name__
        raise MageflowError(f"a {kind} cannot be a swarm {what} in this version (only tasks and chains)")


def to_signature(obj: Any, app: Celery, what: str = "member", strict_names: bool = False) -> Signature:
    """A fresh signature for a member or callback given as a signature, chain, task object or task name.

    Raises:
        MageflowError: for nested canvases (group, chord, swarm) or anything else that is not a task.
    """
    if isinstance(obj, str):
        if strict_names and obj not in app.tasks:
            raise MageflowError(f"unknown task name {obj!r} for swarm {what}")
        return Signature(obj, app=app)
    if isinstance(obj, Task):
        return obj.s()
    if isinstance(obj, Mapping) and not isinstance(obj, Signature):
        obj = signature(dict(obj), app=app)
    if not isinstance(obj, Signature):
        msg = f"swarm {what} must be a signature, a chain, a task or a task name, not {type(obj).__name__}"
        raise MageflowError(msg)
    _refuse_nested(obj, what)
    if isinstance(obj, _chain):
        for step in obj.tasks:
            _refuse_nested(signature(step, app=app), f"{what} chain step")
    sig = obj.clone()
    for key in CANVAS_OPTIONS & set(sig.options):
        if what == "member" or key not in {"link", "link_error"}:
            del sig.options[key]
    return sig


def plain(sig: Signature) -> dict[str, Any]:
    """The signature as a JSON-shaped dict (args as lists, chain steps too), so a JSON round trip is equal."""
    d = dict(sig)
    d["args"] = list(d.get("args") or ())
    if d.get("subtask_type") == "chain":
        d["kwargs"] = {**d["kwargs"], "tasks": [plain(signature(t)) for t in d["kwargs"]["tasks"]]}
    return d


def merge_into(sig: Signature, ctx: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Args and kwargs of a member: parent args first; member kwargs win over swarm kwargs (S4).

    A Celery-native ``pydantic=True`` task gets the swarm kwargs merged into the dict of its model
    parameter instead (when the publishing process has the task registered).
    """
    if sig.immutable:
        return tuple(sig.args), dict(sig.kwargs)
    args = tuple(ctx["args"]) + tuple(sig.args)
    param = pydantic_model_param(sig.app, sig.task)
    if param is None:
        return args, {**ctx["kwargs"], **sig.kwargs}
    kwargs = dict(sig.kwargs)
    if param in kwargs or not sig.args:
        kwargs[param] = {**ctx["kwargs"], **dict(kwargs.get(param) or {})}
    elif isinstance(sig.args[0], Mapping):
        args = tuple(ctx["args"]) + ({**ctx["kwargs"], **sig.args[0]},) + tuple(sig.args[1:])
    return args, kwargs


def member_options(sig: Signature, ctx: Mapping[str, Any], swarm_id: str, epoch: int = 0) -> dict[str, Any]:
    """Publish options: swarm defaults, then the member's own, then the swarm's identity and the epoch."""
    opts = {**ctx["options"], **{k: v for k, v in sig.options.items() if k not in CANVAS_OPTIONS}}
    opts["parent_id"] = swarm_id
    opts["root_id"] = ctx["root_id"]
    opts["headers"] = with_epoch(opts.get("headers"), epoch)
    return opts


def with_epoch(headers: Mapping[str, Any] | None, epoch: int) -> dict[str, Any]:
    """Message headers carrying the member's publish epoch (the start gate drops older copies, D5)."""
    return {**(headers or {}), EPOCH_HEADER: epoch}


def build_member(
    app: Celery, swarm_id: str, index: int, data: Mapping[str, Any], ctx: Mapping[str, Any], epoch: int = 0
) -> Signature:
    """The member ready to apply: ids set, swarm kwargs and parent args merged in, epoch in its headers."""
    sig = signature(dict(data), app=app)
    tid = member_task_id(swarm_id, index)
    if isinstance(sig, _chain):
        steps = [signature(step, app=app).clone() for step in sig.tasks]
        for k, step in enumerate(steps):
            step.options["task_id"] = tid if k == len(steps) - 1 else step_task_id(swarm_id, index, k)
            step.options["headers"] = with_epoch(step.options.get("headers") or ctx["options"].get("headers"), epoch)
        if not sig.immutable:
            first_args, first_kwargs = merge_into(steps[0], ctx)
            steps[0] = steps[0].replace(args=first_args, kwargs=first_kwargs)
        built: Signature = _chain(*steps, app=app)
        built.options.update(member_options(sig, ctx, swarm_id, epoch))
        return built
    args, kwargs = merge_into(sig, ctx)
    built = Signature(sig.task, args=args, kwargs=kwargs, options=member_options(sig, ctx, swarm_id, epoch), app=app)
    built.options["task_id"] = tid
    return built

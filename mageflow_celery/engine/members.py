"""Building a member's message at publish time: ids, the swarm's run context merged in, the epoch header.

Layer: ``engine`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import Celery
from celery.canvas import Signature, _chain, signature

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
#: Options that place a task in a canvas; a member keeps only its own ``link``/``link_error`` (N2).
CANVAS_OPTIONS = frozenset(
    {"task_id", "parent_id", "root_id", "group_id", "group_index", "chord", "chain", "reply_to", "link", "link_error"}
)
#: Canvas options a member keeps: Celery runs them after the member's own outcome (N2).
MEMBER_CALLBACK_OPTIONS = frozenset({"link", "link_error"})


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
    own = {k: v for k, v in sig.options.items() if k not in CANVAS_OPTIONS or k in MEMBER_CALLBACK_OPTIONS}
    opts = {**ctx["options"], **own}
    opts["parent_id"] = swarm_id
    opts["root_id"] = ctx["root_id"]
    opts["headers"] = with_epoch(opts.get("headers"), epoch)
    return opts


def with_epoch(headers: Mapping[str, Any] | None, epoch: int) -> dict[str, Any]:
    """Message headers carrying the member's publish epoch (the start gate drops older copies, D5)."""
    return {**(headers or {}), EPOCH_HEADER: epoch}


def with_context(sig: Signature, ctx: Mapping[str, Any]) -> Signature:
    """``sig`` with the swarm's run context merged in, keeping its type (a nested swarm stays a swarm).

    A nested swarm gets the parent's args prepended and the parent's kwargs under its own bound kwargs
    (which rank as member bound kwargs, N1); any other task as :func:`merge_into` says; an immutable
    signature gets nothing.
    """
    if sig.immutable:
        return sig.clone()
    if sig.get("subtask_type") == "swarm":
        nested = sig.clone()
        nested["args"] = tuple(ctx["args"]) + tuple(nested.args)
        nested["kwargs"] = {**ctx["kwargs"], **nested.kwargs}
        return nested
    args, kwargs = merge_into(sig, ctx)
    return sig.replace(args=args, kwargs=kwargs)


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
            steps[0] = with_context(steps[0], ctx)
        built: Signature = _chain(*steps, app=app)
        built.options.update(member_options(sig, ctx, swarm_id, epoch))
        return built
    built = with_context(sig, ctx)
    built["options"] = {**member_options(sig, ctx, swarm_id, epoch), "task_id": tid}
    return built

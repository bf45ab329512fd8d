"""The ``mageflow.swarm`` task: starts a new swarm from a plain message (celery beat, ``send_task``).

Layer: ``client`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task

from .canvas import START_KEY, SWARM_TASK, Swarm

#: What the starter's own request carries that belongs to the swarm it starts: ``(request attribute,
#: apply_async option)``. Taken off the request, so Celery does not apply it to the starter's return value.
_HANDED = (
    ("callbacks", "link"),
    ("errbacks", "link_error"),
    ("chain", "chain"),
    ("chord", "chord"),
    ("group", "group_id"),
    ("group_index", "group_index"),
)


def _hand_over(request: Any) -> dict[str, Any]:
    """The starter request's canvas options (link, link_error, chain, chord, group), removed from it."""
    options: dict[str, Any] = {}
    for attr, option in _HANDED:
        value = getattr(request, attr, None)
        if value is not None:
            options[option] = value
            setattr(request, attr, None)
    if options:
        options["parent_id"] = request.parent_id
        options["root_id"] = request.root_id
    return options


def register_starter(app: Celery) -> None:
    """Register ``mageflow.swarm`` on ``app`` (``install`` does it)."""

    @app.task(name=SWARM_TASK, bind=True, shared=False, typing=False)
    def start_swarm(self: Task[Any, Any], *args: Any, **kwargs: Any) -> str:
        """Start a swarm from its definition: a new one (celery beat, ``send_task``), or the created one a
        delayed ``apply_async(countdown=...)`` names. The starter's own callbacks, errbacks, chain and chord
        become the swarm's: they get its result list, after its members (S11)."""
        start = kwargs.pop(START_KEY, None) or {}
        options = {**(start.get("options") or {}), **_hand_over(self.request)}
        d = {"task": SWARM_TASK, "args": (), "kwargs": kwargs, "options": {}, "subtask_type": "swarm"}
        s = Swarm.from_dict(d, app=self.app)
        if start.get("id"):
            options["task_id"] = start["id"]
        run_args = tuple(start.get("args") or args)
        return str(s.apply_async(args=run_args, kwargs=start.get("kwargs"), **options).id)

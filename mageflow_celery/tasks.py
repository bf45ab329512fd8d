"""Internal tasks, registered on the app by :func:`mageflow_celery.install`."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task

from .dispatch import RESULT_TASK
from .errors import SwarmFailedError


def register(app: Celery) -> None:
    """Register ``mageflow.swarm`` (starts a swarm from a plain message) and ``mageflow.swarm_result``."""
    from .canvas import SWARM_TASK, Swarm

    @app.task(name=SWARM_TASK, bind=True, shared=False, typing=False)  # type: ignore[untyped-decorator]
    def start_swarm(self: Task, *args: Any, **kwargs: Any) -> str:
        """Create and start a new swarm from its definition (celery beat, ``send_task``)."""
        s = Swarm(
            {"task": SWARM_TASK, "args": (), "kwargs": kwargs, "options": {}, "subtask_type": "swarm"},
            app=self.app,
        )
        return str(s.apply_async(args=args).id)

    @app.task(name=RESULT_TASK, bind=True, shared=False, typing=False)  # type: ignore[untyped-decorator]
    def swarm_result(self: Task, outcome: str, value: Any) -> Any:
        """Carry a finished swarm's outcome through Celery's canvas (runs with the swarm's id)."""
        if outcome == "s":
            return value
        raise SwarmFailedError(value)

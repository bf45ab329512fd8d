"""Internal tasks, registered on the app by :func:`mageflow_celery.install`."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task

from .dispatch import RESULT_TASK
from .errors import SwarmFailedError


def register(app: Celery) -> None:
    """Register ``mageflow.swarm`` (starts a swarm from a plain message) and ``mageflow.swarm_result``."""
    from .canvas import SWARM_TASK, Swarm

    @app.task(name=SWARM_TASK, bind=True, shared=False, typing=False)
    def start_swarm(self: Task[Any, Any], *args: Any, **kwargs: Any) -> str:
        """Create and start a new swarm from its definition (celery beat, ``send_task``)."""
        d = {"task": SWARM_TASK, "args": (), "kwargs": kwargs, "options": {}, "subtask_type": "swarm"}
        return str(Swarm.from_dict(d, app=self.app).apply_async(args=args).id)

    @app.task(name=RESULT_TASK, bind=True, shared=False, typing=False)
    def swarm_result(self: Task[Any, Any], outcome: str, value: Any) -> Any:
        """Carry a finished swarm's outcome through Celery's canvas (runs with the swarm's id)."""
        if outcome == "s":
            return value
        raise SwarmFailedError(value)

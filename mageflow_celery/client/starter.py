"""The ``mageflow.swarm`` task: starts a new swarm from a plain message (celery beat, ``send_task``).

Layer: ``client`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task

from .canvas import SWARM_TASK, Swarm


def register_starter(app: Celery) -> None:
    """Register ``mageflow.swarm`` on ``app`` (``install`` does it)."""

    @app.task(name=SWARM_TASK, bind=True, shared=False, typing=False)
    def start_swarm(self: Task[Any, Any], *args: Any, **kwargs: Any) -> str:
        """Create and start a new swarm from its definition (celery beat, ``send_task``)."""
        d = {"task": SWARM_TASK, "args": (), "kwargs": kwargs, "options": {}, "subtask_type": "swarm"}
        return str(Swarm.from_dict(d, app=self.app).apply_async(args=args).id)

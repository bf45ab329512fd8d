"""The engine's internal task ``mageflow.swarm_result``, registered on the app by ``install``.

Layer: ``engine`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task

from ..errors import SwarmCancelledError, SwarmFailedError
from .finalize import RESULT_TASK


def register_result_task(app: Celery) -> None:
    """Register ``mageflow.swarm_result``: carries a finished swarm's outcome through Celery's canvas."""

    @app.task(name=RESULT_TASK, bind=True, shared=False, typing=False)
    def swarm_result(self: Task[Any, Any], outcome: str, value: Any) -> Any:
        """Carry a finished swarm's outcome through Celery's canvas (runs with the swarm's id)."""
        if outcome == "s":
            return value
        if outcome == "c":
            raise SwarmCancelledError(f"swarm {self.request.id} was cancelled")
        raise SwarmFailedError(value)

"""Checks a worker runs at start, for setups that weaken recovery (R3, D6).

Layer: ``worker`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("mageflow_celery")

#: Task name prefixes that are never swarm members.
_INTERNAL = ("celery.", "mageflow.")


def tasks_ignoring_results(app: Any) -> list[str]:
    """Registered tasks with ``ignore_result=True`` of their own (the app-wide setting is warned at install)."""
    if app.conf.task_ignore_result:
        return []
    return sorted(
        name
        for name, task in app.tasks.items()
        if not name.startswith(_INTERNAL) and getattr(task, "ignore_result", False)
    )


def warn_tasks_ignoring_results(app: Any) -> None:
    """WARN once per worker start about tasks whose results are not stored, if any."""
    names = tasks_ignoring_results(app)
    if names:
        logger.warning(
            "mageflow_celery: task(s) %s set ignore_result=True; as swarm members, the reaper cannot tell "
            "whether one whose worker was lost finished, so it re-runs or fails it (SwarmConfig.on_lost)",
            ", ".join(names),
        )

"""Errors raised by mageflow_celery.

Every error derives from :class:`MageflowError`::

    MageflowError(Exception)
    ├── SwarmClosedError                       adding to a closed, failed, cancelled or finished swarm
    │   └── TooManyTasksError                  adding beyond ``max_task_allowed``
    ├── SwarmFailedError(summary)              the failure threshold was reached (``.summary``)
    ├── SwarmCancelledError(TaskRevokedError)  the swarm was cancelled
    ├── SwarmNotFoundError(KeyError)           no swarm has that id (never created, or expired)
    ├── NotSerializableError(TypeError)        the app's serializer cannot encode an argument
    └── StateStoreError                        the state Redis failed (``__cause__`` is the redis error)

Lifecycle calls (``pause``/``resume``/``cancel``/``close_swarm``) never raise for state: they return
``True`` when they changed something and ``False`` otherwise.
"""

from __future__ import annotations

from typing import Any

from celery.exceptions import TaskRevokedError


class MageflowError(Exception):
    """Raised for every error of this library (root of the hierarchy)."""


class SwarmClosedError(MageflowError):
    """Raised when a task is added to a swarm that no longer accepts tasks."""


class TooManyTasksError(SwarmClosedError):
    """Raised when adding a task would exceed the swarm's ``max_task_allowed``."""


class SwarmFailedError(MageflowError):
    """Raised by ``SwarmResult.get()`` when the swarm reached its failure threshold.

    ``summary`` is a plain dict (swarm id, counts, failed members) so result backends can
    rebuild the exception from its single positional argument.
    """

    def __init__(self, summary: dict[str, Any] | None = None) -> None:
        self.summary: dict[str, Any] = dict(summary or {})
        super().__init__(self.summary)

    def __str__(self) -> str:
        s = self.summary
        return (
            f"swarm {s.get('swarm_id')} failed: {s.get('failed', '?')} member(s) failed "
            f"(threshold {s.get('stop_after_n_failures')})"
        )


class SwarmCancelledError(MageflowError, TaskRevokedError):
    """Raised by ``SwarmResult.get()`` when the swarm was cancelled."""


class SwarmNotFoundError(MageflowError, KeyError):
    """Raised when no swarm with the given id exists in the state store."""

    def __str__(self) -> str:
        return f"no swarm with id {self.args[0]!r} (never created, or expired)" if self.args else "swarm not found"


class NotSerializableError(MageflowError, TypeError):
    """Raised when the app's serializer cannot encode a member, message or argument."""


class StateStoreError(MageflowError):
    """Raised when the state Redis fails; the redis-py error is kept as ``__cause__``."""

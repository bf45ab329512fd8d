"""Read-only views of swarms, for the ``celery swarm`` command, tests and users.

Everything here reads; nothing changes a swarm. Reads go through :class:`~mageflow_celery.state.store.SwarmStore`
(never raw keys) and cost a fixed number of round trips: one for a swarm, two for the list of all swarms.

Example:
    >>> from mageflow_celery.ops.inspect import describe_swarm, list_swarms
    >>> [p.swarm_id for p in list_swarms(app) if p.state == "running"]
    >>> describe_swarm(app, swarm_id)["failed_members"]

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import json
from typing import Any

from celery import Celery

from ..client.result import PROGRESS_FIELDS, SwarmProgress, progress_from_meta
from ..engine.runtime import runtime_for
from ..errors import SwarmNotFoundError

#: Swarm states after which nothing changes any more.
FINISHED_STATES = frozenset({"succeeded", "failed", "cancelled"})

#: Extra meta fields :func:`describe_swarm` reads besides the progress.
_DETAIL_FIELDS = ("stop_after", "max_tasks", "started_at", "nerr")


def list_swarms(app: Celery, *, include_finished: bool = True) -> list[SwarmProgress]:
    """Progress of every swarm in the index of swarms, newest first.

    The index keeps a swarm until its state expires (``idle_ttl_s`` while unfinished, ``result_ttl_s``
    once finished); entries of expired swarms are dropped from the index on the way.

    Args:
        app: the Celery app mageflow_celery is installed on.
        include_finished: also list succeeded, failed and cancelled swarms whose state is still kept.

    Raises:
        StateStoreError: the state Redis cannot be reached.

    Example:
        >>> for p in list_swarms(app, include_finished=False):
        ...     print(p.swarm_id, p.state, f"{p.done}/{p.total}")
    """
    rows = runtime_for(app).store.indexed(PROGRESS_FIELDS)
    out = [progress_from_meta(swarm_id, meta) for swarm_id, meta in rows]
    return out if include_finished else [p for p in out if p.state not in FINISHED_STATES]


def _int(meta: dict[str, bytes], name: str) -> int:
    return int(float(meta.get(name) or b"0"))


def describe_swarm(app: Celery, swarm_id: str) -> dict[str, Any]:
    """One swarm in detail: :class:`SwarmProgress` as a dict plus its failed members.

    The dict has every :class:`SwarmProgress` field, ``done``, ``started_at``, ``stop_after_n_failures``,
    ``max_task_allowed``, ``failed_members`` (records ``{task_id, index, exc_type, message}`` in member
    order, at most ``summary_max_failures`` of them) and ``failed_members_truncated``. It is plain JSON.

    Raises:
        SwarmNotFoundError: no swarm has that id (never created, or expired).
        StateStoreError: the state Redis cannot be reached.

    Example:
        >>> info = describe_swarm(app, swarm_id)
        >>> info["state"], info["done"], info["total"]
        ('running', 12, 40)
        >>> info["failed_members"][0]["exc_type"]
        'ValueError'
    """
    store = runtime_for(app).store
    meta = store.metas([swarm_id], (*PROGRESS_FIELDS, *_DETAIL_FIELDS))[0]
    if "state" not in meta:
        raise SwarmNotFoundError(swarm_id)
    progress = progress_from_meta(swarm_id, meta)
    errors = store.errors(swarm_id)
    failed_members = [json.loads(errors[index]) for index in sorted(errors)]
    started = meta.get("started_at")
    return {
        **progress.model_dump(mode="json"),
        "done": progress.done,
        "started_at": float(started) if started else None,
        "stop_after_n_failures": _int(meta, "stop_after") or None,
        "max_task_allowed": _int(meta, "max_tasks") or None,
        "failed_members": failed_members,
        "failed_members_truncated": progress.failed > len(failed_members),
    }


__all__ = ["FINISHED_STATES", "describe_swarm", "list_swarms"]

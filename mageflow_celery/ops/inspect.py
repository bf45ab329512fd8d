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

import itertools
import json
from dataclasses import dataclass
from typing import Any

from celery import Celery

from ..client.pools import PoolInfo, list_pools
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
    store = runtime_for(app).store
    rows = store.indexed(PROGRESS_FIELDS)
    if include_finished:
        rows += store.indexed(PROGRESS_FIELDS, finished=True)
    unique = {swarm_id: meta for swarm_id, meta in rows}  # a swarm moving to the finished index is in both
    out = [progress_from_meta(swarm_id, meta) for swarm_id, meta in unique.items()]
    if not include_finished:
        out = [p for p in out if p.state not in FINISHED_STATES]  # finished, its finalization not done yet
    return sorted(out, key=lambda p: p.created_at or 0, reverse=True)


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


#: Upper bounds of the hand-off latency histogram (seconds), as the scripts count them (``_lib.lua``).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LE = [_le for _le in (*(repr(b) if b != int(b) else str(int(b)) for b in LATENCY_BUCKETS), "+Inf")]
_MEMBER_GAUGES = ("registered", "queued", "dispatched", "running")
_OUTCOMES = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class MetricsSnapshot:
    """What the metrics expose (O2), read in O(unfinished swarms): never O(members).

    Counters (``*_total``) add the folded counters of finished swarms (the key prefix's stats) to the
    live counters of unfinished ones.
    """

    #: Unfinished swarms by state (pending, running, paused).
    swarms: dict[str, int]
    #: Finished swarms by outcome, since the key prefix was first used.
    swarms_finished_total: dict[str, int]
    #: Members of unfinished swarms by state (registered, queued, dispatched, running).
    members: dict[str, int]
    members_admitted_total: int
    #: Members finished, by outcome.
    members_finished_total: dict[str, int]
    #: Hand-off latency (admission -> receipt) histogram: ``(upper bound, cumulative count)``, +Inf last.
    handoff_buckets: list[tuple[float, int]]
    handoff_sum: float
    #: Reaper actions by kind (recovered, republished, requeued, lost_failed, cancelled, finalized, ...).
    reaper_actions_total: dict[str, int]


def metrics_snapshot(app: Celery) -> MetricsSnapshot:
    """The metrics of every swarm of ``app``'s key prefix (one read of the stats, one pipelined read of the
    unfinished swarms' counters).

    Example:
        >>> snap = metrics_snapshot(app)
        >>> snap.members["running"], snap.members_finished_total["failed"]
    """
    store = runtime_for(app).store
    stats = store.stats()
    hl_fields = [f"hl:{le}" for le in _LE]
    fields = ["state", "paused", "admitted", *_MEMBER_GAUGES, *_OUTCOMES, "hl_sum", *hl_fields]
    rows = [row for _, row in store.indexed(fields) if row.get("state", b"").decode() not in FINISHED_STATES]
    swarms: dict[str, int] = {"pending": 0, "running": 0, "paused": 0}
    for row in rows:
        state = row["state"].decode()
        swarms["paused" if state == "running" and row.get("paused") == b"1" else state] += 1
    members = {name: sum(_int(row, name) for row in rows) for name in _MEMBER_GAUGES}
    finished = {name: int(stats.get(f"members_{name}", 0)) + sum(_int(row, name) for row in rows) for name in _OUTCOMES}
    admitted = int(stats.get("members_admitted", 0)) + sum(_int(row, "admitted") for row in rows)
    counts = [int(stats.get(field, 0)) + sum(_int(row, field) for row in rows) for field in hl_fields]
    cumulative = list(itertools.accumulate(counts))
    bounds = [*LATENCY_BUCKETS, float("inf")]
    hl_sum = float(stats.get("hl_sum", 0)) + sum(float(row.get("hl_sum") or 0) for row in rows)
    reaper = {k[len("reaper_") :]: int(v) for k, v in stats.items() if k.startswith("reaper_")}
    return MetricsSnapshot(
        swarms=swarms,
        swarms_finished_total={name: int(stats.get(f"swarms_{name}", 0)) for name in _OUTCOMES},
        members=members,
        members_admitted_total=admitted,
        members_finished_total=finished,
        handoff_buckets=list(zip(bounds, cumulative, strict=True)),
        handoff_sum=hl_sum,
        reaper_actions_total=reaper,
    )


__all__ = [
    "FINISHED_STATES",
    "LATENCY_BUCKETS",
    "MetricsSnapshot",
    "PoolInfo",
    "describe_swarm",
    "list_pools",
    "list_swarms",
    "metrics_snapshot",
]

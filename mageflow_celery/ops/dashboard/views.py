"""What the dashboard's pages show, read from the state Redis (no web types here).

Every read is bounded by the page: a swarm's page reads its meta, its failure records (at most
``summary_max_failures``), one page of members and, for those members, whether each is a nested swarm
(one pipelined read); the live progress of the swarms on a page is one pipelined read of their counters.

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from celery import Celery

from ...client.result import PROGRESS_FIELDS, MemberInfo, SwarmProgress, SwarmResult, progress_from_meta
from ...engine.runtime import runtime_for
from ..inspect import FINISHED_STATES, describe_swarm

#: Meta fields shown as the swarm's configuration, with their labels.
CONFIG_FIELDS = {
    "lease_s": "lease_s",
    "on_lost": "on_lost",
    "dispatch_to": "dispatch_timeout_s",
    "results_mode": "results",
    "revoke_on_fail": "revoke_on_failure",
    "max_err": "summary_max_failures",
    "idle_ttl": "idle_ttl_s",
    "result_ttl": "result_ttl_s",
}
#: Most swarms ``/events`` follows on one connection.
MAX_FOLLOWED = 500


@dataclass(frozen=True)
class MemberRow:
    """A member on a swarm's page; ``nested`` when it is a swarm itself (a link to its page)."""

    member: MemberInfo
    nested: bool


@dataclass(frozen=True)
class SwarmView:
    """Everything a swarm's page shows."""

    info: dict[str, Any]
    progress: SwarmProgress
    config: dict[str, str]
    parent: str | None
    throughput: float | None
    members: list[MemberRow]
    member_state: str | None
    offset: int
    limit: int
    more: bool


def swarm_view(app: Celery, swarm_id: str, state: str | None, offset: int, limit: int) -> SwarmView:
    """A swarm's page (raises ``SwarmNotFoundError`` for an unknown id, ``ValueError`` for a bad filter)."""
    store = runtime_for(app).store
    info = describe_swarm(app, swarm_id)
    progress = SwarmProgress.model_validate({name: info[name] for name in SwarmProgress.model_fields})
    members = SwarmResult(swarm_id, app=app).members(state=state, offset=offset, limit=limit + 1)
    more, members = len(members) > limit, members[:limit]
    nested = store.metas([m.task_id for m in members], ["state"])
    extra = store.metas([swarm_id], ["parent", *CONFIG_FIELDS])[0]
    config = {label: extra[field].decode() for field, label in CONFIG_FIELDS.items() if field in extra}
    return SwarmView(
        info=info,
        progress=progress,
        config=config,
        parent=extra.get("parent", b"").decode() or None,
        throughput=throughput(progress, info.get("started_at")),
        members=[MemberRow(m, "state" in row) for m, row in zip(members, nested, strict=True)],
        member_state=state,
        offset=offset,
        limit=limit,
        more=more,
    )


def throughput(progress: SwarmProgress, started_at: float | None) -> float | None:
    """Members finished per second since the start (until the finish, for a finished swarm)."""
    if not started_at or not progress.done:
        return None
    end = progress.finished_at if progress.state in FINISHED_STATES and progress.finished_at else time.time()
    elapsed = end - started_at
    return progress.done / elapsed if elapsed > 0 else None


def live(p: SwarmProgress) -> dict[str, Any]:
    """What ``/events`` sends for one swarm (and what the page's bars show)."""
    return {
        "swarm_id": p.swarm_id,
        "state": p.state,
        "closed": p.closed,
        "paused": p.paused,
        "done": p.done,
        "total": p.total,
        "succeeded": p.succeeded,
        "failed": p.failed,
        "cancelled": p.cancelled,
        "queued": p.queued + p.registered,
        "running": p.running + p.dispatched,
        "max_concurrency": p.max_concurrency,
        "percent": round(100 * p.done / p.total, 1) if p.total else 0.0,
    }


def live_progress(app: Celery, swarm_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The live fields of the swarms that still exist among ``swarm_ids`` (one pipelined round trip)."""
    metas = runtime_for(app).store.metas(swarm_ids, PROGRESS_FIELDS)
    return {
        swarm_id: live(progress_from_meta(swarm_id, meta))
        for swarm_id, meta in zip(swarm_ids, metas, strict=True)
        if "state" in meta
    }

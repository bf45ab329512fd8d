"""Shared concurrency pools (SPEC §7 F1–F5): setting a pool's limit and rate, and reading pools.

A pool is named by ``SwarmConfig(pool="openai")``; each member of such a swarm also holds one token of the
pool while it holds its swarm's token, so at every instant the members holding a pool's tokens, across all
swarms and workers, are at most the pool's limit. A pool without a limit set is unlimited. The limit in
Redis is read at each admission: raising it admits at once, lowering it revokes nothing. The protocol that
keeps this exact on Redis Cluster (a pool's keys and a swarm's keys live on different slots) is in
``docs/pools.md``.

Layer: ``engine`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import rate_interval_s
from .dispatch import follow
from .flow import apply_grants
from .runtime import Runtime


@dataclass(frozen=True)
class PoolInfo:
    """A pool as it is now: its limit (``None``: unlimited), tokens in use, rate, swarms waiting on it."""

    name: str
    limit: int | None
    in_use: int
    rate_limit: str | None
    #: Swarm ids holding its tokens, with how many each holds.
    holders: dict[str, int]
    #: Swarm ids waiting for its tokens, in round-robin order, with how many members each could admit.
    waiting: list[tuple[str, int]]


def configure_pool(rt: Runtime, name: str, limit: int | None, rate_limit: str | None = None) -> PoolInfo:
    """Set a pool's limit (``None``/``0``: unlimited) and rate (Celery's syntax, ``None``: none), and admit
    what a higher limit lets in at once.

    Raises:
        ValueError: a negative limit or an invalid rate.
    """
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise ValueError(f"a pool's limit must be an int >= 0 (0 or None: unlimited), not {limit!r}")
    settled = rt.store.pool_configure(name, limit or 0, rate_interval_s(rate_limit), rate_limit or "")
    for swarm_id, tr in apply_grants(rt, name, settled):
        follow(rt, swarm_id, tr)
    return pool_info(rt, name)


def configured_pools(conf: Mapping[str, Any]) -> dict[str, tuple[int | None, str | None]]:
    """``app.conf.mageflow_pools``: ``{name: limit}`` or ``{name: {"limit": n, "rate_limit": "10/s"}}``."""
    out: dict[str, tuple[int | None, str | None]] = {}
    for name, spec in dict(conf.get("mageflow_pools") or {}).items():
        if isinstance(spec, Mapping):
            out[str(name)] = (spec.get("limit"), spec.get("rate_limit"))
        else:
            out[str(name)] = (spec, None)
    return out


def pool_info(rt: Runtime, name: str) -> PoolInfo:
    """One pool as it is now (one round trip)."""
    view = rt.store.pool_view(name)
    holders: dict[str, int] = {}
    for value in view.holders.values():
        swarm_id = value.rsplit("|", 1)[0]
        holders[swarm_id] = holders.get(swarm_id, 0) + 1
    return PoolInfo(
        name=name,
        limit=view.limit or None,
        in_use=len(view.holders),
        rate_limit=view.rate or None,
        holders=holders,
        waiting=view.waiting,
    )


def all_pools(rt: Runtime) -> list[PoolInfo]:
    """Every pool used under the app's key prefix (one round trip per pool)."""
    return [pool_info(rt, name) for name in rt.store.pool_names()]

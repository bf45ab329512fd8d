"""Setting and reading shared concurrency pools from a client (SPEC §7 F1).

Layer: ``client`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from celery import Celery

from ..engine.pools import PoolInfo, all_pools, configure_pool, pool_info
from ..engine.runtime import runtime_for

__all__ = ["PoolInfo", "get_pool", "list_pools", "set_pool_limit"]


def set_pool_limit(app: Celery, name: str, n: int | None, rate_limit: str | None = None) -> PoolInfo:
    """Limit the members holding tokens of pool ``name`` across all swarms and workers to ``n`` (``None`` or
    ``0``: unlimited), and admit them at most at ``rate_limit`` (Celery's syntax, e.g. ``"10/s"``).

    Raising the limit admits waiting members at once; lowering it revokes nothing (running members
    finish). Swarms use a pool with ``SwarmConfig(pool=name)``.

    Raises:
        ValueError: a negative limit or an invalid rate.

    Example:
        >>> set_pool_limit(app, "openai", 4, rate_limit="10/s")
        >>> swarm(tasks=[...], config=SwarmConfig(pool="openai", max_concurrency=10)).apply_async()
    """
    return configure_pool(runtime_for(app), name, n, rate_limit)


def list_pools(app: Celery) -> list[PoolInfo]:
    """Every pool used under the app's key prefix: limit, tokens in use, rate, waiting swarms."""
    return all_pools(runtime_for(app))


def get_pool(app: Celery, name: str) -> PoolInfo:
    """One pool as it is now."""
    return pool_info(runtime_for(app), name)

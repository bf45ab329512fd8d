"""Run the shared-API example end to end: ``python -m examples.shared_api.run``.

A big tenant queues 40 calls; a small tenant arrives with 5 calls while the big one runs. Both swarms
use the pool ``geo-api`` (2 calls at a time, 20 a second, set by ``app.conf.mageflow_pools``). Pool
tokens go round-robin between the swarms waiting, so the small tenant's calls interleave with the big
tenant's and it finishes long before the big one, instead of waiting behind all 40.
"""

from __future__ import annotations

from typing import Any

from examples._local import local_stack, wait_with_progress
from examples.shared_api.tasks import app, geocode
from mageflow_celery import SwarmConfig, get_pool, swarm
from mageflow_celery.testing import wait_for

POOL = "geo-api"


def tenant_swarm(tenant: str, calls: int) -> Any:
    """One tenant's calls: its own limit is generous (10); the shared pool is what holds it back."""
    return swarm(
        tasks=[geocode.s(tenant, i) for i in range(calls)],
        config=SwarmConfig(pool=POOL, max_concurrency=10),
        is_swarm_closed=True,
        task_name=f"geocode:{tenant}",
        app=app,
    ).apply_async()


def max_overlap(calls: list[tuple[str, int, float, float]]) -> int:
    """Most calls in flight at once."""
    edges = sorted([(start, 1) for _, _, start, _ in calls] + [(end, -1) for *_, end in calls])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def main() -> dict[str, Any]:
    with local_stack(app, concurrency=6):
        big = tenant_swarm("bigco", 40)
        wait_for(lambda: big.progress().succeeded >= 4, timeout_s=30)  # bigco is well under way
        small = tenant_swarm("smallco", 5)
        print(f"pool {POOL}: {get_pool(app, POOL)}")
        wait_with_progress(small)
        small_done_at = max(end for *_, end in small.get(timeout=60))
        wait_with_progress(big)
        calls = sorted(big.get(timeout=60) + small.get(timeout=60), key=lambda call: call[2])
        order = "".join("S" if tenant == "smallco" else "b" for tenant, *_ in calls)
        print(f"calls in start order (b: bigco, S: smallco): {order}")
        big_left = sum(1 for tenant, _, start, _ in calls if tenant == "bigco" and start > small_done_at)
        print(f"smallco finished with {big_left} of bigco's 40 calls still to start")
        starts = [start for _, _, start, _ in calls]
        rate = (len(starts) - 1) / (starts[-1] - starts[0])
        print(f"most calls in flight at once: {max_overlap(calls)} (limit 2); {rate:.1f} calls/s (limit 20/s)")
        return {"order": order, "overlap": max_overlap(calls), "rate": rate, "big_left": big_left}


if __name__ == "__main__":
    main()

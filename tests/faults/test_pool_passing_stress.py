"""F1, F2 with token passing (docs/pools.md, step 5) under load, on real worker processes: a big swarm alone on
its pool passes its tokens on while five more swarms start at once from threads, and a pool's limit is lowered
while its only swarm passes. What the members recorded (in the probe Redis, per swarm) is checked against the
limit at every instant; the pool's own count of tokens in use is sampled meanwhile."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from celery import Celery
from faultkit import Faults, assert_counted_once, finish, quiesce

from mageflow_celery import SwarmConfig, set_pool_limit, swarm
from mageflow_celery.client.pools import get_pool
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.testing import PeakSampler, max_overlap, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker, pytest.mark.slow]

#: Seconds a member works (a short sleep in the task body, not a synchronization).
HOLD_S = 0.04
#: Worker layouts: one process with threads, or two prefork workers of three processes each.
LAYOUTS = ["threads", "prefork"]


def _workers(faults: Faults, layout: str) -> None:
    if layout == "threads":
        faults.worker("t1", pool="threads", concurrency=8)
    else:
        faults.worker("p1", concurrency=3)
        faults.worker("p2", concurrency=3)


def _start(app: Celery, pool: str, n: int, limit: int) -> str:
    """Start a closed swarm of ``n`` members on ``pool`` (its own limit ``limit``); its id."""
    s = swarm(
        tasks=[app.signature("faults.work", kwargs={"hold_s": HOLD_S}) for _ in range(n)],
        config=SwarmConfig(pool=pool, max_concurrency=limit),
        is_swarm_closed=True,
        app=app,
    )
    return str(s.apply_async().id)


def _passing(faults: Faults, app: Celery, swarm_id: str, pool: str, started: int) -> None:
    """Wait until ``started`` members of the swarm started, and check they ran on fewer grants than that: its
    ended members passed their tokens on (docs/pools.md, step 5)."""
    wait_for(lambda: len(faults.starts(swarm_id)) >= started, timeout_s=30, message=f"{started} members to start")
    assert runtime_for(app).store.pool_view(pool).grants_made < len(faults.starts(swarm_id))


def _all_tokens_back(app: Celery, pool: str, limit: int) -> None:
    wait_for(lambda: get_pool(app, pool).in_use == 0, timeout_s=30, message="every token back")
    info = get_pool(app, pool)
    assert (info.limit, info.in_use, info.waiting, info.holders) == (limit, 0, [], {})


@pytest.mark.timeout(180)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_swarms_starting_while_a_big_swarm_passes_its_tokens_on_keep_the_limit_and_are_served_at_once(
    faults: Faults, layout: str
) -> None:
    # Given a pool of 3 and a big swarm of 120 members (its own limit 6: it waits on the pool) alone on it,
    # passing its tokens on
    app = faults.app()
    _workers(faults, layout)
    set_pool_limit(app, "busy", 3)
    with PeakSampler(lambda: get_pool(app, "busy").in_use) as in_use:
        big = _start(app, "busy", 120, limit=6)
        _passing(faults, app, big, "busy", started=9)

        # When five more swarms of 4 (own limit 2) start on the pool at once, from five threads
        barrier = threading.Barrier(5)

        def start_small(_: int) -> str:
            barrier.wait(timeout=30)
            return _start(app, "busy", 4, limit=2)

        small_started_at = time.time()
        with ThreadPoolExecutor(max_workers=5) as threads:
            small = list(threads.map(start_small, range(5)))

        # And all of them run to their end
        for swarm_id in [big, *small]:
            finish(faults, app, swarm_id, timeout_s=120)
    quiesce(app, faults.probe)

    # Then every member of every swarm ran once and each swarm's result is complete
    assert_counted_once(app, big, 120, set(range(120)))
    for swarm_id in small:
        assert_counted_once(app, swarm_id, 4, set(range(4)))
    # And at every instant at most 3 members ran over all swarms and workers (3 did), each swarm within its
    # own limit, and the pool never counted more than 3 tokens in use
    executions = {swarm_id: faults.executions(swarm_id) for swarm_id in [big, *small]}
    assert max_overlap([e for rows in executions.values() for e in rows]) == 3
    assert all(max_overlap(executions[s]) <= 2 for s in small)
    assert 0 < in_use.peak <= 3 and in_use.samples > 0
    # And the small swarms did not wait for the big one: the first newcomer stopped its passing, so only a few
    # of its members (admitted before, or at its turns in the round-robin) started after the newcomers did and
    # before each newcomer's first member (it passes up to 64 when the stop is lost); and each newcomer ran all
    # its members before the big swarm's last member started
    last_first_start = max(min(start for _, start, _ in executions[s]) for s in small)
    ahead = [i for i, start, _ in executions[big] if small_started_at < start < last_first_start]
    assert len(ahead) <= 10, ahead
    big_last_start = max(start for _, start, _ in executions[big])
    for swarm_id in small:
        assert max(end for _, _, end in executions[swarm_id]) < big_last_start, swarm_id
    # And every token came back
    _all_tokens_back(app, "busy", 3)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_lowering_a_pools_limit_while_its_only_swarm_passes_applies_as_its_tokens_come_back(
    faults: Faults, layout: str
) -> None:
    # Given a pool of 4 and the only swarm on it (100 members, its own limit 4), passing its tokens on
    app = faults.app()
    _workers(faults, layout)
    set_pool_limit(app, "lower", 4)
    with PeakSampler(lambda: get_pool(app, "lower").in_use) as in_use:
        sid = _start(app, "lower", 100, limit=4)
        _passing(faults, app, sid, "lower", started=12)

        # When the pool's limit is lowered to 2
        set_pool_limit(app, "lower", 2)
        lowered_at = time.time()
        starts_before = len(faults.starts(sid))

        # Then once 2 or fewer tokens are in use (the swarm stopped passing: its ended members gave theirs
        # back), members started after the lowering only on tokens it held then (4) or got under the new
        # limit (2), not on tokens it went on passing
        wait_for(lambda: get_pool(app, "lower").in_use <= 2, timeout_s=30, interval_s=0.005, message="in use <= 2")
        settled_at = time.time()
        assert len(faults.starts(sid)) - starts_before <= 4 + 2
        finish(faults, app, sid, timeout_s=120)
    quiesce(app, faults.probe)

    # And every member ran once, the result is complete
    assert_counted_once(app, sid, 100, set(range(100)))
    # And at most 4 members ran at once before the lowering (4 did), and from the moment 2 or fewer tokens
    # were in use at most 2 did (2 did): the pool never counted more than 4 tokens in use
    executions = faults.executions(sid)
    assert max_overlap(e for e in executions if e[1] < lowered_at) == 4
    after = [(i, max(start, settled_at), end) for i, start, end in executions if end > settled_at]
    assert max_overlap(after) == 2, after
    assert 0 < in_use.peak <= 4
    # And every token came back
    _all_tokens_back(app, "lower", 2)

"""S3, R1 at scale: 5,000 members, ``max_concurrency=7``, two prefork workers with four processes each."""

from __future__ import annotations

import time

import pytest
from faultkit import Faults, TokenSampler, assert_counted_once, finish, quiesce

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.testing import max_overlap

pytestmark = [pytest.mark.redis, pytest.mark.worker, pytest.mark.slow]

N = 5000
LIMIT = 7


@pytest.mark.timeout(300)
def test_g_five_thousand_members_on_two_workers_never_exceed_the_limit_and_are_counted_once(faults: Faults) -> None:
    # Given two prefork workers of four processes each
    app = faults.app()
    faults.worker("g1", concurrency=4)
    faults.worker("g2", concurrency=4)
    s = swarm(
        tasks=[app.signature("faults.work", kwargs={"hold_s": 0.01}) for _ in range(N)],
        success_callbacks=[app.signature("faults.callback")],
        config=SwarmConfig(max_concurrency=LIMIT),
        is_swarm_closed=True,
        app=app,
    )
    swarm_id = s.freeze().id
    # When a swarm of 5,000 members runs on them
    started = time.monotonic()
    with TokenSampler(faults.probe, runtime_for(app).store.keys(swarm_id).tokens) as tokens:
        s.apply_async()
        finish(faults, app, swarm_id, timeout_s=240)
    elapsed = time.monotonic() - started
    quiesce(app, faults.probe)
    # Then no member was lost or run twice, each is counted once, the callback ran once,
    # and at no instant did more than 7 members execute or hold a token; and the limit was used, not just kept
    assert sorted(faults.starts(swarm_id)) == list(range(N))
    assert_counted_once(app, swarm_id, N, set(range(N)))
    assert [cb["value"] for cb in faults.ran_callbacks(app, swarm_id)] == [list(range(N))]
    executions = faults.executions(swarm_id)
    assert LIMIT - 2 <= max_overlap(executions) <= LIMIT
    assert tokens.peak == LIMIT
    print(
        f"\n{N} members in {elapsed:.1f}s ({N / elapsed:.0f}/s); peak executing {max_overlap(executions)}, "
        f"peak tokens {tokens.peak} over {tokens.samples} samples"
    )

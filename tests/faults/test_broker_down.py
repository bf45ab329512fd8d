"""D6: a broker that is down when members are published.

The publishing call raises the broker's error (after Celery's publish retry policy); the admitted members
stay dispatched and holding their tokens, flagged, and the reaper re-publishes them at its next tick once
the broker is back, not after ``dispatch_timeout_s``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from faultkit import Faults, assert_counted_once, finish
from kombu.exceptions import OperationalError

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.testing import RedisServer, wait_for
from mageflow_celery.worker.reaper import reap_once

pytestmark = [pytest.mark.redis, pytest.mark.worker]

#: Fail fast: one retry, no waiting (Celery's default policy retries 3 times over ~1 s).
FAST_FAIL = {
    "task_publish_retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0},
    "broker_connection_timeout": 1,
    "broker_connection_max_retries": 1,
}


def test_a_broker_down_at_publish_raises_and_the_members_are_republished_as_soon_as_it_is_back(
    mageflow_redis_url: str, mageflow_redis: object, tmp_path: Path
) -> None:
    # Given a broker of its own (the swarm state and the results live on the session Redis) that is down
    broker = RedisServer().start()
    port = broker.port
    faults = Faults(mageflow_redis_url, tmp_path, broker=broker.url)
    try:
        app = faults.app(**FAST_FAIL)
        s = swarm(
            tasks=[app.signature("faults.work") for _ in range(3)],
            success_callbacks=[app.signature("faults.callback")],
            config=SwarmConfig(max_concurrency=3, dispatch_timeout_s=900),
            is_swarm_closed=True,
            app=app,
        )
        swarm_id = s.freeze().id
        broker.stop()

        # When the swarm is started, then the call raises the broker's error
        with pytest.raises(OperationalError):
            s.apply_async()

        # And the admitted members stay dispatched, holding their tokens, flagged for re-publishing
        store = runtime_for(app).store
        assert store.member_states(swarm_id) == {0: "d", 1: "d", 2: "d"}
        owners = [store.owner(swarm_id, i) for i in range(3)]
        assert all(o is not None and "p" in o.flags for o in owners), owners

        # When the broker comes back and the reaper ticks once, then every member is re-published at once
        broker = RedisServer(port=port).start()
        wait_for(lambda: reap_once(app).republished == 3, timeout_s=10, interval_s=0.2)
        assert faults.probe.llen("celery") == 0  # the probe is the session Redis; the broker is another
        faults.worker("back", concurrency=3)
        finish(faults, app, swarm_id)
        assert_counted_once(app, swarm_id, 3, {0, 1, 2})
        assert [cb["value"] for cb in faults.ran_callbacks(app, swarm_id)] == [[0, 1, 2]]
    finally:
        faults.stop_all()
        broker.stop()

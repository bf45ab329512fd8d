"""R4, R6: the state Redis misbehaves (connections killed), or is a Redis Cluster."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import redis
from faultkit import Faults, TokenSampler, assert_counted_once, finish, quiesce

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.testing import RedisCluster, max_overlap
from mageflow_celery.worker.reaper import reap_once

pytestmark = [pytest.mark.redis, pytest.mark.worker]

#: Client name of the worker's state-store connections, so the killer finds them.
STATE_NAME = "mageflow-state"
#: Redis broker options: an unacknowledged message comes back after 5 s (not the default hour).
RESTORE_SOON = {"visibility_timeout": 5, "unacked_restore_interval": 1, "unacked_restore_throttle": 1}


class ConnectionKiller:
    """Kills the worker's state-store connections every 20 ms, and every other connection (broker,
    result backend) every 200 ms while ``others_while()``, with ``CLIENT KILL``; the test's own
    connections are spared. (A broker connection killed between kombu's BRPOP and its bookkeeping loses
    that message, Celery's own at-most-once window: a lost member is re-published after the dispatch
    timeout, but a lost callback message cannot be, so the broker is left alone near the end.)"""

    def __init__(self, url: str, others_while: Callable[[], bool] = lambda: True) -> None:
        self.r = redis.Redis.from_url(url, client_name="faults-killer")
        self.others_while = others_while
        self.killed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ConnectionKiller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.r.close()

    def _run(self) -> None:
        rounds = 0
        while not self._stop.wait(0.02):
            rounds += 1
            for client in self.r.client_list():
                name = client.get("name", "")
                everyone = rounds % 10 == 0 and not name.startswith("faults-") and self.others_while()
                if name == STATE_NAME or everyone:
                    try:
                        self.killed += int(self.r.client_kill_filter(_id=client["id"]))
                    except redis.RedisError:
                        pass


@pytest.mark.slow
def test_f_a_swarm_finishes_while_redis_connections_are_being_killed(faults: Faults) -> None:
    # Given a worker whose state-store connections are named (so they can be found and killed)
    faults.state = f"{faults.redis_url}?client_name=faults-client"  # the test's own reads are spared
    app = faults.app()
    state = f"{faults.redis_url}?client_name={STATE_NAME}"
    # (Celery fails a task whose result cannot be stored unless the backend retries: it must, here; and a
    # message whose acknowledgement was lost with its connection waits for the visibility timeout: short)
    faults.worker(
        "f",
        concurrency=4,
        state=state,
        mageflow_finalize_claim_s=2,
        result_backend_always_retry=True,
        broker_transport_options=RESTORE_SOON,
    )
    s = swarm(
        tasks=[app.signature("faults.work", kwargs={"hold_s": 0.02}) for _ in range(200)],
        success_callbacks=[app.signature("faults.callback")],
        config=SwarmConfig(max_concurrency=6, lease_s=2, dispatch_timeout_s=2),
        is_swarm_closed=True,
        app=app,
    )
    swarm_id = s.freeze().id
    # When its connections are killed over and over while the swarm runs
    with TokenSampler(faults.probe, runtime_for(app).store.keys(swarm_id).tokens) as tokens:
        store = runtime_for(app).store
        early = lambda: int(store.meta_field(swarm_id, "succeeded") or 0) < 150  # noqa: E731
        with ConnectionKiller(faults.redis_url, others_while=early) as killer:
            s.apply_async()
            finish(faults, app, swarm_id, timeout_s=120)
    # Then it still finishes, every member counted once, the callback run once, the limit kept
    assert killer.killed > 10
    quiesce(app, faults.probe)
    assert_counted_once(app, swarm_id, 200, set(range(200)))
    assert [cb["value"] for cb in faults.ran_callbacks(app, swarm_id)] == [list(range(200))]
    assert tokens.peak == 6  # the limit kept, and used


def test_i_a_swarm_runs_to_completion_with_its_state_on_a_redis_cluster(faults: Faults, cluster: RedisCluster) -> None:
    # Given the swarm state on a 3-master Redis Cluster (broker and results stay on the standalone Redis)
    faults.state = cluster.url
    app = faults.app()
    store = runtime_for(app).store
    assert isinstance(store.client, redis.cluster.RedisCluster)
    faults.worker("i", concurrency=3)
    # When swarms run whose members outlive their lease (so leases must be renewed on the cluster)
    ids = []
    for n in range(3):
        s = swarm(
            tasks=[app.signature("faults.work", kwargs={"hold_s": 2.5 if i == 0 else 0.01}) for i in range(12)],
            success_callbacks=[app.signature("faults.callback")],
            config=SwarmConfig(max_concurrency=3, lease_s=1),
            is_swarm_closed=True,
            app=app,
            task_name=f"cluster-{n}",
        )
        ids.append(s.apply_async().id)
    # Then each finishes, each member ran once (renewed, never reaped), callbacks ran once
    for swarm_id in ids:
        finish(faults, app, swarm_id, timeout_s=60)
    quiesce(app, faults.probe)
    slots = {store.client.keyslot(key) for swarm_id in ids for key in store.keys(swarm_id).all()}
    assert len(slots) == 3, "each swarm's keys share one slot; the three swarms use different ones"
    assert reap_once(app).errors == 0, "the reaper's scripts run on the cluster"
    assert "Traceback" not in faults.log("i"), faults.log("i")
    for swarm_id in ids:
        assert_counted_once(app, swarm_id, 12, set(range(12)))
        assert sorted(faults.starts(swarm_id)) == list(range(12))
        assert [cb["value"] for cb in faults.ran_callbacks(app, swarm_id)] == [list(range(12))]
        assert max_overlap(faults.executions(swarm_id)) <= 3

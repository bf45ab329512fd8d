"""§1 install rules and R6 key prefixes: a second install keeps the first URL or refuses another one,
Mageflow(app) follows the same rule, and two apps installed in one process with two key prefixes on one
Redis never see each other's members, listings or reapers."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from celery import Celery

from mageflow_celery import Mageflow, MageflowError, SwarmConfig, install, swarm
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.keys import FINAL_STEP
from mageflow_celery.ops.inspect import list_swarms
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory
from mageflow_celery.worker.reaper import reap_once

pytestmark = [pytest.mark.redis]


def _app(name: str, config: dict[str, Any], **conf: Any) -> Celery:
    app = Celery(name, set_as_current=False)
    app.conf.update({**config, **conf})
    return app


def test_a_second_install_keeps_the_url_and_refuses_a_different_one(
    mageflow_celery_config: dict[str, Any], mageflow_redis_url: str
) -> None:
    # Given an app installed with an explicit state URL (database 5 of the test Redis)
    app = _app("rules", mageflow_celery_config)
    url = mageflow_redis_url.rsplit("/", 1)[0] + "/5"
    install(app, url)
    runtime = runtime_for(app)

    # When it is installed again without a URL, with the same URL, or through Mageflow(app)
    install(app)
    install(app, url)
    Mageflow(app)

    # Then nothing changed: the same runtime, the same URL
    assert runtime_for(app) is runtime and runtime.settings.redis_url == url

    # And a different explicit URL is refused, by install and by Mageflow, changing nothing
    other = mageflow_redis_url.rsplit("/", 1)[0] + "/6"
    with pytest.raises(MageflowError, match="already installed"):
        install(app, other)
    with pytest.raises(MageflowError, match="already installed"):
        Mageflow(app, other)
    assert runtime_for(app) is runtime and runtime.settings.redis_url == url


@pytest.mark.worker
def test_two_apps_with_two_key_prefixes_on_one_redis_never_see_each_others_swarms(
    mageflow_app: Celery,
    mageflow_celery_config: dict[str, Any],
    mageflow_worker: WorkerFactory,
    mageflow_redis: redis.Redis,
) -> None:
    # Given a second installed app in this process, on the same Redis, with its own queue and key prefix
    # (no worker runs for it: Celery's fast trace keeps one task registry per process, so a process runs
    # the tasks of one app; what this checks is that the hooks, listings and reapers keep to their app)
    one = mageflow_app
    two = _app("two", mageflow_celery_config, task_default_queue="two")
    install(two, key_prefix="tenant2")

    @one.task(name="iso.work", shared=False)
    def work_one(x: int) -> int:
        return x

    @two.task(name="iso.work", shared=False)
    def work_two(x: int) -> int:
        return x * 10

    # And, in the second app, a swarm waiting on its queue, and one whose received member's worker died
    waiting = swarm(tasks=[work_two.s(i) for i in range(2)], is_swarm_closed=True, app=two).apply_async()
    lost = swarm(tasks=[work_two.s(9)], config=SwarmConfig(lease_s=1), is_swarm_closed=True, app=two).apply_async()
    store_two = runtime_for(two).store
    assert store_two.receive(lost.id, 0, FINAL_STEP, "dead-worker") == "ok"

    # When the first app's worker (its reaper too) runs a swarm of the first app, past that lease
    mageflow_worker(concurrency=2)
    r1 = swarm(tasks=[work_one.s(i) for i in range(3)], is_swarm_closed=True, app=one).apply_async()
    assert r1.get(timeout=20) == [0, 1, 2]  # its members' outcomes reached its own state, not the other's
    wait_for(lambda: float(store_two.client.time()[0]) > (lost.progress().created_at or 0) + 2, interval_s=0.2)
    reaped_one = reap_once(one)

    # Then the first app's reapers left the second app's swarms alone; the second app's reaper recovers its own
    assert reaped_one.requeued == 0 and reaped_one.errors == 0
    assert store_two.member_states(lost.id) == {0: "r"}
    assert waiting.progress().dispatched == 2
    assert reap_once(two).requeued == 1

    # And each app's keys and listing hold its own swarms only
    keys_one = b" ".join(mageflow_redis.scan_iter(match="mageflow:*"))
    keys_two = b" ".join(mageflow_redis.scan_iter(match="tenant2:*"))
    assert r1.id.encode() in keys_one and waiting.id.encode() not in keys_one and lost.id.encode() not in keys_one
    assert waiting.id.encode() in keys_two and lost.id.encode() in keys_two and r1.id.encode() not in keys_two
    assert [p.swarm_id for p in list_swarms(one)] == [r1.id]
    assert sorted(p.swarm_id for p in list_swarms(two)) == sorted([waiting.id, lost.id])

"""O1 at scale: with 2,000 swarms in Redis the list pages render from the indexes, a page at a time.

Timings are measured by ``python -m bench.dashboard`` (docs/operations.md), never asserted here; this test
checks that a page reads only its rows (Redis commands counted), whatever the number of swarms.
"""

from __future__ import annotations

import re

import pytest
import redis
from celery import Celery
from starlette.testclient import TestClient

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.dashboard import create_app

pytestmark = [pytest.mark.redis, pytest.mark.slow]

N = 2000


def _hmget_calls(r: redis.Redis) -> int:
    stats = r.info("commandstats")
    return int(stats.get("cmdstat_hmget", {}).get("calls", 0))


def test_the_list_of_2000_swarms_renders_a_page_reading_only_its_rows(
    mageflow_app: Celery, mageflow_redis: redis.Redis
) -> None:
    # Given 2,000 swarms: every 4th cancelled (finished), every 4th paused, the rest running
    ids = []
    for i in range(N):
        tasks = [mageflow_app.signature("x", args=(i,)).set(queue="nowhere")]
        res = swarm(tasks=tasks, task_name=f"batch-{i:05d}", config=SwarmConfig(), app=mageflow_app).apply_async()
        if i % 4 == 1:
            res.cancel()
        elif i % 4 == 2:
            res.pause()
        ids.append(res.id)
    unfinished = [swarm_id for i, swarm_id in enumerate(ids) if i % 4 != 1][::-1]
    finished = [swarm_id for i, swarm_id in enumerate(ids) if i % 4 == 1][::-1]

    with TestClient(create_app(mageflow_app, read_only=True)) as client:
        # When the first page is rendered
        before = _hmget_calls(mageflow_redis)
        first = client.get("/")
        # Then it shows the 50 newest unfinished swarms out of 2,000, reading the meta of those 50 only
        assert first.status_code == 200
        assert re.findall(r'data-swarm-id="([^"]+)"', first.text) == unfinished[:50]
        assert "of 2000" in first.text
        assert _hmget_calls(mageflow_redis) - before == 50

        # And a page deep in the list crosses into the finished swarms
        deep = client.get(f"/?offset={len(unfinished) - 10}").text
        assert re.findall(r'data-swarm-id="([^"]+)"', deep) == unfinished[-10:] + finished[:40]

        # And a state filter and a name search find their swarms
        paused = client.get("/?state=paused").text
        assert len(re.findall(r'class="state state-paused"', paused)) == 50
        found = client.get("/?q=batch-01234").text
        assert re.findall(r'data-swarm-id="([^"]+)"', found) == [ids[1234]]

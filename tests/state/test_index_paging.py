"""Walking the index of unfinished swarms page by page (the reaper's sweep): every swarm once, in order,
even when many were indexed at the same instant (equal scores)."""

from __future__ import annotations

import pytest
import redis
from celery import Celery

from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.keys import index_key

pytestmark = [pytest.mark.redis]


def test_a_walk_reads_every_swarm_once_across_pages_of_equal_scores(mageflow_app: Celery) -> None:
    # Given 450 swarms indexed at the same instant, between 10 older and 10 newer ones, and one expired swarm
    store = runtime_for(mageflow_app).store
    client: redis.Redis = store.client
    scores = {f"old-{i}": 1.0 for i in range(10)} | {f"same-{i:03}": 5.0 for i in range(450)}
    scores |= {f"new-{i}": 9.0 for i in range(10)}
    for sid in scores:
        client.hset(store.keys(sid).meta, "state", "running")
    client.zadd(index_key(store.prefix), {**scores, "same-gone": 5.0})

    # When the index is walked 200 at a time
    read: list[str] = []
    cursor = None
    for _ in range(10):
        rows, cursor = store.unfinished_page(["state"], cursor, 200)
        read += [sid for sid, _ in rows]
        if cursor is None:
            break

    # Then every live swarm was read exactly once, oldest first, and the expired one left the index
    assert cursor is None
    assert sorted(read) == sorted(scores) and len(read) == len(scores)
    assert read[:10] == [f"old-{i}" for i in range(10)] and read[-10:] == [f"new-{i}" for i in range(10)]
    assert client.zscore(index_key(store.prefix), "same-gone") is None

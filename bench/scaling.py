"""Cost against swarm size: the state scripts driven directly (no worker), and bulk creation.

These use two private hooks of :class:`~mageflow_celery.Swarm` (``_ensure_created`` and
``_member_blobs``) to time creation apart from starting; the CI smoke run keeps them honest.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import redis

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.keys import FINAL_STEP

from .meter import Meter, Sample

LIMIT = 30
_RESULT = b"null"


def _new_swarm(n: int) -> Any:
    from bench import app as b

    return swarm(
        tasks=[b.noop.s(i) for i in range(n)],
        config=SwarmConfig(max_concurrency=LIMIT),
        is_swarm_closed=True,
        app=b.app,
    )


def drive_scripts(meter: Meter, n: int) -> Sample:
    """Create and start a swarm of ``n`` members, then play the worker's part for every member
    (``receive`` then ``report``, one member at a time) and measure only that part."""
    from bench import app as b

    rt = runtime_for(b.app)
    s = _new_swarm(n)
    s._ensure_created()
    codec = rt.task_codec
    ctx = codec.dumps({"args": [], "kwargs": {}, "options": {}, "root_id": s.id})
    definition = codec.dumps({"success": [], "error": [], "canvas": {}, "root_id": s.id})
    started = rt.store.start(s.id, ctx, definition, want_ctx=False)

    def play() -> float:
        t0 = time.perf_counter()
        todo = deque(a.index for a in started.admitted)
        fin = ""
        while todo:
            index = todo.popleft()
            rt.store.receive(s.id, index, FINAL_STEP, f"bench-{index}")
            tr = rt.store.report(s.id, [(index, "s", _RESULT)], want_ctx=False)
            todo.extend(a.index for a in tr.admitted)
            fin = fin or tr.fin
        assert fin == "s", f"swarm of {n} did not finish"
        return time.perf_counter() - t0

    return meter.run(f"scripts_{n}", n, play)


def _memory_usage(client: redis.Redis, keys: list[str]) -> int:
    return sum(int(client.memory_usage(k, samples=0) or 0) for k in keys)


def create_bulk(state: redis.Redis, n: int) -> dict[str, Any]:
    """Build, serialize and create an ``n``-member swarm; its Redis memory before start vs its members' JSON."""
    from bench import app as b

    rt = runtime_for(b.app)
    used_before = int(state.info("memory")["used_memory"])
    t0 = time.perf_counter()
    sigs = [b.noop.s(i) for i in range(n)]
    t1 = time.perf_counter()
    s = swarm(tasks=sigs, config=SwarmConfig(max_concurrency=LIMIT), is_swarm_closed=True, app=b.app)
    t2 = time.perf_counter()
    s._ensure_created()
    t3 = time.perf_counter()
    used_after = int(state.info("memory")["used_memory"])
    json_bytes = sum(len(blob) for blob in s._member_blobs(b.app))
    key_bytes = _memory_usage(state, rt.store.keys(s.id).all())
    s.apply_async()  # start: queue all members, publish the first LIMIT (no worker consumes them here)
    t4 = time.perf_counter()
    b.app.control.purge()
    return {
        "n": n,
        "build_s": t1 - t0,
        "swarm_s": t2 - t1,
        "create_s": t3 - t2,
        "build_serialize_create_s": t3 - t0,
        "start_s": t4 - t3,
        "members_json_bytes": json_bytes,
        "redis_key_bytes": key_bytes,
        "redis_used_memory_delta": used_after - used_before,
        "memory_ratio": key_bytes / json_bytes,
        "used_memory_ratio": (used_after - used_before) / json_bytes,
        "bytes_per_member": key_bytes / n,
        "json_bytes_per_member": json_bytes / n,
    }

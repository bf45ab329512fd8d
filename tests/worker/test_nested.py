"""N1: swarms, groups and chords as members of a swarm, at any depth, on real workers (threads and prefork).

Each member records ``(label, start, end)`` in Redis; a member waits (with a deadline) until as many members
of its own swarm run as its limit allows, so a limit that is never reached shows up as a failure, and the
recorded intervals prove both levels of limits at every instant.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

import pytest
import redis
from celery import Celery, chord, group

from mageflow_celery import SwarmConfig, SwarmFailedError, SwarmResult, swarm
from mageflow_celery.keys import member_task_id
from mageflow_celery.testing import max_overlap, process_client, wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]

RECORDS = "test:nested"
#: How long a member waits for its swarm's limit to be reached before giving up (a broken limit).
REACH_DEADLINE_S = 3.0


class Tasks:
    def __init__(self, app: Celery) -> None:
        url = app.conf.broker_url

        @app.task(name="n.work", shared=False)
        def work(label: str, group_key: str = "", want: int = 1, fail: bool = False, **kwargs: Any) -> Any:
            """Runs until ``want`` members of ``group_key`` run at once (or a deadline), then records itself."""
            r = process_client(url)
            active = f"test:active:{group_key}"
            r.incr(active)
            start = time.time()
            deadline = time.monotonic() + REACH_DEADLINE_S
            while int(r.get(active) or 0) < want and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(0.02)  # overlap a little with the others that reached the limit too
            r.decr(active)
            r.rpush(RECORDS, json.dumps([label, group_key, start, time.time(), kwargs]))
            if fail:
                raise ValueError(f"{label} failed on purpose")
            return label

        @app.task(name="n.join", shared=False)
        def join(values: list[Any], sep: str = "+", **kwargs: Any) -> str:
            return sep.join(str(v) for v in values)

        self.work, self.join = work, join


@pytest.fixture
def t(mageflow_app: Celery) -> Tasks:
    return Tasks(mageflow_app)


def records(r: redis.Redis) -> list[tuple[str, str, float, float, dict[str, Any]]]:
    return [tuple(json.loads(x)) for x in r.lrange(RECORDS, 0, -1)]  # type: ignore[misc]


def inner(t: Tasks, key: str, n: int = 4, limit: int = 2, **kw: Any) -> Any:
    """A closed nested swarm of ``n`` members of group ``key`` under ``limit``."""
    members = [t.work.s(f"{key}.{i}", group_key=key, want=limit) for i in range(n)]
    return swarm(tasks=members, config=SwarmConfig(max_concurrency=limit), is_swarm_closed=True, task_name=key, **kw)


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_nested_swarms_hold_one_parent_token_each_and_keep_both_levels_of_limits_at_every_instant(
    pool: str, mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis, t: Tasks
) -> None:
    # Given an outer swarm (limit 2) of three nested swarms of four members each (limit 2 each)
    mageflow_worker(pool=pool, concurrency=8)
    outer = swarm(
        tasks=[inner(t, f"in{k}") for k in range(3)],
        config=SwarmConfig(max_concurrency=2),
        is_swarm_closed=True,
        app=mageflow_app,
    )

    # When it runs
    result = outer.apply_async().get(timeout=60)

    # Then each nested member's result is what it returns alone (its result list), in member order
    assert result == [[f"in{k}.{i}" for i in range(4)] for k in range(3)]
    rows = records(mageflow_redis)
    by_inner: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    for label, key, start, end, _ in rows:
        by_inner[key].append((label, start, end))
    # And inside each nested swarm at most 2 members ran at once, and 2 did (the limit was reached)
    for key, intervals in by_inner.items():
        assert max_overlap(intervals) == 2, (key, intervals)
    # And at most 2 nested swarms were active at once (each from its first member's start to its last
    # member's end), and 2 were
    spans = [(key, min(s for _, s, _ in iv), max(e for _, _, e in iv)) for key, iv in by_inner.items()]
    assert max_overlap(spans) == 2, spans
    # And the outer swarm counts each nested swarm as one member
    p = SwarmResult(outer.id, app=mageflow_app).progress()
    assert (p.total, p.succeeded, p.failed) == (3, 3, 0)


def test_swarms_groups_chords_and_chains_nest_to_depth_three_with_their_results(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, t: Tasks
) -> None:
    # Given members of every kind, one of them nested three deep
    mageflow_worker(concurrency=8)
    w = t.work
    depth3 = swarm(
        tasks=[swarm(tasks=[swarm(tasks=[w.s("deep")], is_swarm_closed=True)], is_swarm_closed=True)],
        is_swarm_closed=True,
    )
    outer = swarm(
        tasks=[
            depth3,
            group(w.s("g1"), w.s("g2"), w.s("g3")),
            chord([w.s("c1"), w.s("c2")], t.join.s()),
            w.s("a") | t.join.s(sep="-"),
            group(w.s("gg1"), inner(t, "gi", n=2)),
            w.s("plain"),
        ],
        config=SwarmConfig(max_concurrency=3),
        is_swarm_closed=True,
        app=mageflow_app,
    )

    # When it runs, then each member's result is what it would return alone
    assert outer.apply_async().get(timeout=60) == [
        [[["deep"]]],
        ["g1", "g2", "g3"],
        "c1+c2",
        "a",
        ["gg1", ["gi.0", "gi.1"]],
        "plain",
    ]
    # And the nested swarm of a member is followed by its own id (the member's task id)
    nested_id = member_task_id(outer.id, 0)
    assert SwarmResult(nested_id, app=mageflow_app).get(timeout=5) == [[["deep"]]]


def test_a_nested_swarm_that_fails_or_a_group_with_a_failed_part_is_one_failed_member(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, t: Tasks
) -> None:
    # Given an outer swarm tolerating failures, with a nested swarm failing at its first failure, a group
    # with a failing part, a chord with a failing header part, and a member that succeeds
    mageflow_worker(concurrency=8)
    w = t.work
    failing = swarm(
        tasks=[w.s("f1", fail=True), w.s("f2")],
        config=SwarmConfig(max_concurrency=1, stop_after_n_failures=1),
        is_swarm_closed=True,
    )
    outer = swarm(
        tasks=[failing, group(w.s("g1"), w.s("g2", fail=True)), chord([w.s("c1", fail=True)], t.join.s()), w.s("ok")],
        config=SwarmConfig(max_concurrency=4, results="aligned"),
        is_swarm_closed=True,
        app=mageflow_app,
    )

    # When it runs, then it succeeds with the failed nested members as failed members (None, aligned)
    assert outer.apply_async().get(timeout=60) == [None, None, None, "ok"]
    p = SwarmResult(outer.id, app=mageflow_app).progress()
    assert (p.succeeded, p.failed) == (1, 3)
    failed = SwarmResult(outer.id, app=mageflow_app).members(state="failed")
    assert [m.index for m in failed] == [0, 1, 2]
    assert [m.error["exc_type"] for m in failed if m.error] == [
        "SwarmFailedError",
        "SwarmFailedError",
        "SwarmFailedError",
    ]
    # And the failing nested swarm stopped at its first failure: its second member never ran
    with pytest.raises(SwarmFailedError):
        SwarmResult(member_task_id(outer.id, 0), app=mageflow_app).get(timeout=5)


def test_parent_swarm_kwargs_reach_every_task_inside_a_nested_member_with_s4_precedence(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis, t: Tasks
) -> None:
    # Given an outer swarm with bound kwargs and run kwargs, a nested swarm with bound kwargs of its own,
    # whose member has bound kwargs too, a group, and an immutable member
    mageflow_worker(concurrency=4)
    w = t.work
    nested = swarm(tasks=[w.s("n", m_bound="member")], is_swarm_closed=True, n_bound="nested", shared="nested")
    outer = swarm(
        tasks=[nested, group(w.s("g")), w.si("immutable")],
        is_swarm_closed=True,
        app=mageflow_app,
        o_bound="outer-bound",
        shared="outer-bound",
    )

    # When it runs with run kwargs
    outer.apply_async(kwargs={"o_run": "outer-run", "shared": "outer-run", "m_bound": "outer-run"}).get(timeout=60)

    # Then member bound > nested swarm bound (a member bound kwarg) > outer run > outer bound (S4, N1)
    got = {label: kwargs for label, _, _, _, kwargs in records(mageflow_redis)}
    assert got["n"] == {
        "m_bound": "member",
        "n_bound": "nested",
        "shared": "nested",
        "o_run": "outer-run",
        "o_bound": "outer-bound",
    }
    assert got["g"] == {"o_run": "outer-run", "shared": "outer-run", "m_bound": "outer-run", "o_bound": "outer-bound"}
    assert got["immutable"] == {}


def test_pause_resume_and_cancel_of_the_parent_reach_nested_swarms(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis, t: Tasks
) -> None:
    # Given an outer swarm whose nested swarm (limit 1) runs its first member
    gate = "test:gate:nested"

    @mageflow_app.task(name="n.gated", shared=False)
    def gated(label: str) -> str:
        r = process_client(mageflow_app.conf.broker_url)
        r.rpush("test:started", label)
        r.blpop([gate], timeout=20)
        return label

    mageflow_worker(concurrency=4)
    nested = swarm(tasks=[gated.s(f"n{i}") for i in range(3)], config={"max_concurrency": 1}, is_swarm_closed=True)
    outer = swarm(tasks=[nested, gated.s("other")], is_swarm_closed=True, app=mageflow_app).apply_async()
    child = SwarmResult(member_task_id(outer.id, 0), app=mageflow_app)
    wait_for(lambda: {b"n0", b"other"} <= set(mageflow_redis.lrange("test:started", 0, -1)))

    # When the parent is paused and its running members finish
    assert outer.pause() is True
    mageflow_redis.rpush(gate, "go", "go")

    # Then the nested swarm is paused too: once n0 finished, no other member of it starts
    wait_for(lambda: child.progress().running + child.progress().dispatched == 0, message="n0 to finish")
    assert child.progress().state == "paused"
    assert t.join.delay([1]).get(timeout=10) == "1"  # a round trip through the worker: nothing else is pending
    assert set(mageflow_redis.lrange("test:started", 0, -1)) == {b"n0", b"other"}
    # When the parent is resumed, then the nested swarm admits again
    assert outer.resume() is True
    wait_for(lambda: b"n1" in mageflow_redis.lrange("test:started", 0, -1), message="n1 to start")
    # When the parent is cancelled, then the nested swarm is cancelled too, and the parent too
    assert outer.cancel() is True
    wait_for(lambda: child.progress().state == "cancelled", message="the nested swarm to be cancelled")
    mageflow_redis.rpush(gate, *["go"] * 3)
    assert b"n2" not in mageflow_redis.lrange("test:started", 0, -1)
    assert outer.progress().state == "cancelled"

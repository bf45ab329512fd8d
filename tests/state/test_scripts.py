"""The Lua state scripts, driven directly through ``SwarmStore`` on a real Redis (no worker).

R1: a second report of the same member changes nothing. R2: when the last members are reported at the
same moment, exactly one call wins the finalization decision. S12: every key of a swarm carries a TTL,
and scripts never create a key for an unknown swarm.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from celery import Celery

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.keys import FINAL_STEP, member_task_id
from mageflow_celery.state.records import Transition
from mageflow_celery.state.store import SwarmStore
from mageflow_celery.testing import redis_snapshot

pytestmark = [pytest.mark.redis]

RACES = 200


def recv(store: SwarmStore, sid: str, index: int) -> str:
    """One delivery of member ``index`` (its own id) passing the start gate with a fresh lease token."""
    return store.receive(sid, index, FINAL_STEP, uuid.uuid4().hex)


def _started(app: Celery, n: int, limit: int, **config: Any) -> str:
    """A closed, started swarm of ``n`` members (published to a queue no worker consumes)."""
    s = swarm(
        tasks=["t.never_consumed"] * n,
        config=SwarmConfig(max_concurrency=limit, **config),
        is_swarm_closed=True,
        app=app,
    )
    return str(s.apply_async().id)


def _ok(value: Any) -> bytes:
    return json.dumps(value).encode()


def _err(swarm_id: str, index: int) -> bytes:
    return json.dumps(
        {"task_id": member_task_id(swarm_id, index), "index": index, "exc_type": "ValueError", "message": "x"}
    ).encode()


def swarm_keys(client: redis.Redis, swarm_id: str) -> list[bytes]:
    """Every key whose name contains the swarm id (whatever module named it)."""
    return sorted(client.scan_iter(match=f"*{swarm_id}*"))


def snapshot(client: redis.Redis, swarm_id: str) -> dict[bytes, Any]:
    """The content of every key of the swarm, by type (TTLs left out)."""
    return redis_snapshot(client, f"*{swarm_id}*")


def _store(app: Celery) -> SwarmStore:
    return runtime_for(app).store


def test_reporting_the_same_member_again_changes_nothing(mageflow_app: Celery, mageflow_redis: redis.Redis) -> None:
    # Given a started swarm of 3 members whose member 0 was received and reported succeeded
    sid = _started(mageflow_app, 3, limit=3)
    store = _store(mageflow_app)
    assert recv(store, sid, 0) == "ok"
    first = store.report(sid, [(0, "s", _ok("first"))], want_ctx=False)
    before = snapshot(mageflow_redis, sid)

    # When the same member is reported again, as succeeded with another value and as failed
    again = store.report(sid, [(0, "s", _ok("second"))], want_ctx=False)
    failed = store.report(sid, [(0, "f", _err(sid, 0))], want_ctx=False)

    # Then only the first report was recorded, and no key changed
    assert first.extra == [1]
    assert again.extra == [0] and failed.extra == [0]
    assert again.fin == failed.fin == ""
    assert snapshot(mageflow_redis, sid) == before
    meta = store.meta(sid)
    assert (meta["succeeded"], meta["failed"], meta["dispatched"], meta["running"]) == (b"1", b"0", b"2", b"0")
    assert store.results(sid) == {0: _ok("first")}


def test_a_duplicate_within_one_batch_is_recorded_once_and_finalizes_once(
    mageflow_app: Celery, mageflow_redis: redis.Redis
) -> None:
    # Given a started swarm of 2 members, both received
    sid = _started(mageflow_app, 2, limit=2)
    store = _store(mageflow_app)
    assert [recv(store, sid, i) for i in (0, 1)] == ["ok", "ok"]

    # When one batch reports member 1 twice and member 0 once, then member 0 again
    tr = store.report(sid, [(1, "s", _ok(1)), (1, "s", _ok(1)), (0, "s", _ok(0))], want_ctx=False)
    late = store.report(sid, [(0, "s", _ok(0))], want_ctx=False)

    # Then two outcomes were recorded, the swarm succeeded once, and the late duplicate decided nothing
    assert tr.extra == [2] and tr.fin == "s"
    assert late.extra == [0] and late.fin == ""
    meta = store.meta(sid)
    assert (meta["state"], meta["succeeded"], meta["total"]) == (b"succeeded", b"2", b"2")


def _race(store: SwarmStore, calls: list[Callable[[], Transition]]) -> list[Transition]:
    """Run ``calls`` on their own threads, released together by a barrier."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Transition]) -> Transition:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_the_last_two_members_reported_at_the_same_moment_elect_exactly_one_finalizer(
    mageflow_app: Celery, mageflow_redis: redis.Redis
) -> None:
    store = _store(mageflow_app)
    for _ in range(RACES):
        # Given a started swarm whose two members are both running
        sid = _started(mageflow_app, 2, limit=2)
        assert [recv(store, sid, i) for i in (0, 1)] == ["ok", "ok"]

        # When both are reported from two threads at the same moment
        results = _race(
            store,
            [
                lambda sid=sid: store.report(sid, [(0, "s", _ok(0))], want_ctx=False),
                lambda sid=sid: store.report(sid, [(1, "s", _ok(1))], want_ctx=False),
            ],
        )

        # Then exactly one call won the success decision, and the swarm holds both results
        assert sorted(tr.fin for tr in results) == ["", "s"], sid
        assert store.meta(sid)["fin"] == b"claimed"
        assert store.results(sid) == {0: _ok(0), 1: _ok(1)}


def test_two_failures_reaching_the_threshold_at_the_same_moment_elect_exactly_one_finalizer(
    mageflow_app: Celery, mageflow_redis: redis.Redis
) -> None:
    store = _store(mageflow_app)
    for _ in range(RACES // 2):
        # Given a swarm failing at its first failure, with two running members and one queued
        sid = _started(mageflow_app, 3, limit=2, stop_after_n_failures=1)
        assert [recv(store, sid, i) for i in (0, 1)] == ["ok", "ok"]

        # When both running members fail at the same moment
        results = _race(
            store,
            [
                lambda sid=sid: store.report(sid, [(0, "f", _err(sid, 0))], want_ctx=False),
                lambda sid=sid: store.report(sid, [(1, "f", _err(sid, 1))], want_ctx=False),
            ],
        )

        # Then one call won the failure decision, nothing was admitted, and the queued member was cancelled
        assert sorted(tr.fin for tr in results) == ["", "f"], sid
        assert all(not tr.admitted for tr in results)
        meta = store.meta(sid)
        assert (meta["state"], meta["failed"], meta["cancelled"], meta["queued"]) == (b"failed", b"2", b"1", b"0")


def test_closing_while_the_last_member_is_reported_elects_exactly_one_finalizer(
    mageflow_app: Celery, mageflow_redis: redis.Redis
) -> None:
    store = _store(mageflow_app)
    for _ in range(RACES // 2):
        # Given an open, started swarm with one running member
        s = swarm(tasks=["t.never_consumed"], app=mageflow_app)
        sid = str(s.apply_async().id)
        assert recv(store, sid, 0) == "ok"

        # When the member is reported while the swarm is closed, at the same moment
        results = _race(
            store,
            [lambda sid=sid: store.report(sid, [(0, "s", _ok(0))], want_ctx=False), lambda sid=sid: store.close(sid)],
        )

        # Then exactly one of the two calls decided the success
        assert sorted(tr.fin for tr in results) == ["", "s"], sid


def _assert_ttls(client: redis.Redis, swarm_id: str, low: int, high: int) -> list[bytes]:
    keys = swarm_keys(client, swarm_id)
    ttls = {key: client.ttl(key) for key in keys}
    assert keys, f"no key for swarm {swarm_id}"
    assert all(low <= ttl <= high for ttl in ttls.values()), ttls
    return keys


def test_every_key_of_an_unfinished_swarm_has_the_idle_ttl_and_of_a_finished_one_the_result_ttl(
    mageflow_app: Celery, mageflow_redis: redis.Redis
) -> None:
    # Given an open swarm with distinct idle and result TTLs, created by registering a member
    store = _store(mageflow_app)
    s = swarm(
        tasks=["t.never_consumed"] * 3,
        config=SwarmConfig(max_concurrency=1, idle_ttl_s=5000, result_ttl_s=300),
        app=mageflow_app,
    )
    member = s.add_task("t.never_consumed")
    sid = s.id

    # Then, created, started, and with members queued, received and reported, every key carries the idle TTL
    _assert_ttls(mageflow_redis, sid, 4990, 5000)
    s.apply_async()
    _assert_ttls(mageflow_redis, sid, 4990, 5000)
    assert recv(store, sid, 0) == "ok"
    store.report(sid, [(0, "s", _ok(0))], want_ctx=False)
    keys = _assert_ttls(mageflow_redis, sid, 4990, 5000)
    assert {key.encode() for key in store.keys(sid).all()} <= set(keys), "every key exists, the queue too"

    # When the swarm finishes (closed, the registered member queued, every member reported)
    s.close_swarm()
    member.delay()
    for index in (1, 2, 3):
        assert recv(store, sid, index) == "ok"
        store.report(sid, [(index, "s", _ok(index))], want_ctx=False)

    # Then every key of the finished swarm carries the result TTL
    assert store.meta(sid)["state"] == b"succeeded"
    _assert_ttls(mageflow_redis, sid, 290, 300)


def test_a_late_report_to_a_finished_swarm_keeps_its_result_ttl_and_changes_nothing(
    mageflow_app: Celery, mageflow_redis: redis.Redis
) -> None:
    # Given a finished swarm
    store = _store(mageflow_app)
    sid = _started(mageflow_app, 1, limit=1, result_ttl_s=300)
    assert recv(store, sid, 0) == "ok"
    assert store.report(sid, [(0, "s", _ok(0))], want_ctx=False).fin == "s"
    before = snapshot(mageflow_redis, sid)

    # When a late receipt and a late report arrive for it
    verdict = recv(store, sid, 0)
    store.report(sid, [(0, "f", _err(sid, 0))], want_ctx=False)

    # Then the late copy is discarded (counted in dups), nothing else changed, and every key still expires
    assert verdict == "dup"
    after = snapshot(mageflow_redis, sid)
    meta_key = store.keys(sid).meta.encode()
    assert after[meta_key].pop(b"dups") == b"1"
    assert after == before
    _assert_ttls(mageflow_redis, sid, 290, 300)


def test_no_script_creates_a_key_for_an_unknown_swarm(mageflow_app: Celery, mageflow_redis: redis.Redis) -> None:
    # Given an id no swarm has
    store = _store(mageflow_app)
    sid = "no-such-swarm"
    before = set(mageflow_redis.keys("*"))

    # When every transition is attempted on it
    statuses = [
        store.start(sid, b"{}", b"{}", want_ctx=False).status,
        store.add(sid, [b"{}"], run=True, want_ctx=False).status,
        store.enqueue(sid, 0, b"{}", want_ctx=False).status,
        recv(store, sid, 0),
        store.report(sid, [(0, "s", _ok(0)), (1, "f", _err(sid, 1))], want_ctx=False).status,
        store.close(sid).status,
        store.pause(sid).status,
        store.resume(sid, want_ctx=False).status,
        store.cancel(sid).status,
        store.finalized(sid),
        store.stop_passing(sid, 1),
    ]

    # Then each says the swarm is unknown and no key was created
    assert statuses == ["unknown"] * len(statuses)
    assert set(mageflow_redis.keys("*")) == before
    assert swarm_keys(mageflow_redis, sid) == []

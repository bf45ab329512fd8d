"""Token passing (docs/pools.md), driven through ``SwarmStore`` and the engine on a real Redis (no worker):
the only swarm on a pool passes the grants of its ended members on to its next members without asking the
pool; a newcomer, a new limit or a rate stops it; a stale decision of the pool never overrides a newer one.
"""

from __future__ import annotations

import uuid

import pytest
import redis
from celery import Celery

from mageflow_celery import SwarmConfig, get_pool, set_pool_limit, swarm
from mageflow_celery.engine.dispatch import follow
from mageflow_celery.engine.flow import PASS_BUDGET
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.errors import StateStoreError
from mageflow_celery.keys import FINAL_STEP, PoolKeys
from mageflow_celery.state.records import Transition
from mageflow_celery.state.store import SwarmStore

pytestmark = [pytest.mark.redis]


def _pooled(app: Celery, pool: str, n: int, limit: int) -> str:
    """A closed, started swarm of ``n`` members on ``pool`` (published to a queue no worker consumes)."""
    s = swarm(
        tasks=["t.never_consumed"] * n,
        config=SwarmConfig(pool=pool, max_concurrency=limit),
        is_swarm_closed=True,
        app=app,
    )
    return str(s.apply_async().id)


def _end(app: Celery, sid: str, index: int) -> Transition:
    """Member ``index`` passes the start gate and succeeds; the engine follows the report (pool included)."""
    rt = runtime_for(app)
    assert rt.store.receive(sid, index, FINAL_STEP, uuid.uuid4().hex) == "ok"
    tr = rt.store.report(sid, [(index, "s", b"1")], want_ctx=False)
    follow(rt, sid, tr)
    return tr


def _pass(store: SwarmStore, sid: str) -> int:
    return int(store.meta_field(sid, "pass") or 0)


def _alone(app: Celery, pool: str, pool_limit: int, n: int, limit: int) -> tuple[SwarmStore, str]:
    """The only swarm on ``pool`` (limit ``pool_limit``): it was granted a pass budget."""
    set_pool_limit(app, pool, pool_limit)
    store = runtime_for(app).store
    sid = _pooled(app, pool, n, limit=limit)
    assert _pass(store, sid) == PASS_BUDGET
    return store, sid


def test_the_only_swarm_on_a_pool_passes_its_grants_on_without_asking_the_pool(
    mageflow_app: Celery, mageflow_redis: redis.Redis
) -> None:
    # Given a pool of 2 and the only swarm on it (6 members, its own limit 3): 2 admitted with 2 grants
    store, sid = _alone(mageflow_app, "solo", 2, 6, limit=3)
    held = store.held_grants(sid)
    assert held is not None and len(held) == 2 and store.pool_view("solo").grants_made == 2

    # When its members end one by one
    transitions = [_end(mageflow_app, sid, i) for i in range(4)]

    # Then each ended member's grant went to the next member in the same script: nothing went back to the
    # pool, the pool made no new grant, and the swarm's members hold the same 2 grants
    assert [[a.index for a in tr.admitted] for tr in transitions] == [[2], [3], [4], [5]]
    assert all(tr.flow.released == [] and tr.flow.pool_want == 0 for tr in transitions)
    assert store.pool_view("solo").grants_made == 2
    assert store.held_grants(sid) == held
    assert _pass(store, sid) == PASS_BUDGET - 4
    info = get_pool(mageflow_app, "solo")
    assert (info.in_use, info.holders) == (2, {sid: 2})

    # And once nothing is left to admit, the grants go back and the pool is empty
    for i in range(4, 6):
        _end(mageflow_app, sid, i)
    assert get_pool(mageflow_app, "solo").in_use == 0


def test_a_newcomer_on_the_pool_stops_the_passing_and_gets_the_next_token(
    mageflow_app: Celery, mageflow_redis: redis.Redis
) -> None:
    # Given a pool of 1 and swarm A passing its token on
    store, a = _alone(mageflow_app, "pair", 1, 5, limit=1)

    # When swarm B starts on the same pool (it waits: the token is A's)
    b = _pooled(mageflow_app, "pair", 2, limit=1)

    # Then A stopped passing, and the token A's member gives back goes to B
    assert _pass(store, a) == 0
    assert [w for w, _ in get_pool(mageflow_app, "pair").waiting] == [b]
    tr = _end(mageflow_app, a, 0)
    assert tr.admitted == [] and len(tr.flow.released) == 1
    assert get_pool(mageflow_app, "pair").holders == {b: 1}
    assert store.member_states(b) == {0: "d"}


def test_a_new_limit_stops_the_passing_and_the_swarm_keeps_only_what_the_new_limit_grants(
    mageflow_app: Celery, mageflow_redis: redis.Redis
) -> None:
    # Given a pool of 3 and the only swarm on it, its 3 members holding the tokens and passing them on
    store, sid = _alone(mageflow_app, "shrink", 3, 8, limit=3)

    # When the limit is lowered to 1
    set_pool_limit(mageflow_app, "shrink", 1)

    # Then the swarm stopped passing: its ended members give their tokens back until 1 is in use, and from
    # then on one member runs at a time (the pool grants it 1 token, which it passes on again)
    assert _pass(store, sid) == 0
    assert [_end(mageflow_app, sid, i).admitted for i in range(3)] == [[], [], []]
    dispatched = [i for i, st in store.member_states(sid).items() if st == "d"]
    assert dispatched == [3] and _pass(store, sid) == PASS_BUDGET
    assert [a.index for a in _end(mageflow_app, sid, 3).admitted] == [4]
    assert get_pool(mageflow_app, "shrink").in_use == 1


def test_a_rate_on_the_pool_stops_the_passing(mageflow_app: Celery, mageflow_redis: redis.Redis) -> None:
    # Given the only swarm on an unlimited pool, passing its tokens on
    store = runtime_for(mageflow_app).store
    sid = _pooled(mageflow_app, "rated", 6, limit=2)
    assert _pass(store, sid) == PASS_BUDGET

    # When the pool gets a rate, then every token comes from the pool again (one per rate slot)
    set_pool_limit(mageflow_app, "rated", None, rate_limit="1/h")
    assert _pass(store, sid) == 0
    tr = _end(mageflow_app, sid, 0)
    assert tr.admitted == [] and len(tr.flow.released) == 1


def test_a_pools_older_decision_never_overrides_a_newer_one(mageflow_app: Celery, mageflow_redis: redis.Redis) -> None:
    # Given a pooled swarm told to stop passing at the pool's generation 7
    store = runtime_for(mageflow_app).store
    sid = _pooled(mageflow_app, "late", 4, limit=1)
    assert store.stop_passing(sid, 7) == "ok"

    # When a grant decided at generation 6 arrives late with a pass budget, then the swarm still does not pass
    tr = store.grant(sid, [], 0.0, 10.0, want_ctx=False, pass_budget=PASS_BUDGET, generation=6)
    assert tr.status == "ok" and _pass(store, sid) == 0
    # And one decided at generation 8 applies
    store.grant(sid, [], 0.0, 10.0, want_ctx=False, pass_budget=5, generation=8)
    assert _pass(store, sid) == 5


def test_two_swarms_holding_tokens_of_a_pool_with_room_pass_nothing_on(
    mageflow_app: Celery, mageflow_redis: redis.Redis
) -> None:
    # Given a pool of 10 and two swarms on it, each at its own limit of 2 (neither waits on the pool)
    set_pool_limit(mageflow_app, "roomy", 10)
    store = runtime_for(mageflow_app).store
    x = _pooled(mageflow_app, "roomy", 6, limit=2)
    y = _pooled(mageflow_app, "roomy", 6, limit=2)
    meta = PoolKeys(store.prefix, "roomy").all()[0]

    # When their members end in turn (each ending swarm settles alone with the pool)
    for i in range(4):
        for sid in (x, y):
            _end(mageflow_app, sid, i)

            # Then neither is named the pool's passer (the other holds tokens): no passing, no stop to send
            assert mageflow_redis.hget(meta, "passer") in (None, b"")
            assert (_pass(store, x), _pass(store, y)) == (0, 0)
    assert get_pool(mageflow_app, "roomy").holders == {x: 2, y: 2}


def test_a_finished_passer_needs_no_stop_and_the_next_swarm_passes(
    mageflow_app: Celery, mageflow_redis: redis.Redis
) -> None:
    # Given the only swarm on a pool, passing its tokens on until it finished
    set_pool_limit(mageflow_app, "relay", 2)
    store = runtime_for(mageflow_app).store
    first = _pooled(mageflow_app, "relay", 3, limit=2)
    for i in range(3):
        _end(mageflow_app, first, i)
    generation = store.meta_field(first, "pgen")

    # When another swarm starts alone on the pool
    second = _pooled(mageflow_app, "relay", 3, limit=2)

    # Then the finished one was not told anything, and the new one passes
    assert store.meta_field(first, "pgen") == generation
    assert _pass(store, second) == PASS_BUDGET


def test_a_stop_that_fails_to_reach_the_passer_holds_back_no_other_grant(
    mageflow_app: Celery, mageflow_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a pool of 2 whose only swarm holds 1 token and passes it on, and the passer's slot failing
    set_pool_limit(mageflow_app, "flaky", 2)
    store = runtime_for(mageflow_app).store
    x = _pooled(mageflow_app, "flaky", 3, limit=1)

    def down(swarm_id: str, generation: int) -> str:
        raise StateStoreError(f"swarm {swarm_id}: nopass failed: connection reset")

    monkeypatch.setattr(store, "stop_passing", down)

    # When another swarm starts on the pool (the settle grants it the free token and asks x to stop)
    y = _pooled(mageflow_app, "flaky", 3, limit=1)

    # Then the newcomer still got its grant and admitted a member; x, not told, passes at most its budget
    assert store.member_states(y) == {0: "d"}
    assert get_pool(mageflow_app, "flaky").holders == {x: 1, y: 1}
    assert _pass(store, x) == PASS_BUDGET


def test_an_idle_pool_starts_its_counts_afresh_after_a_grant_freed_without_counting(
    mageflow_app: Celery, mageflow_redis: redis.Redis
) -> None:
    # Given a swarm's grant freed the way a worker of an older version frees it (holders only, not held)
    set_pool_limit(mageflow_app, "legacy", 2)
    store = runtime_for(mageflow_app).store
    old = _pooled(mageflow_app, "legacy", 1, limit=1)
    keys = PoolKeys(store.prefix, "legacy").all()
    (grant,) = mageflow_redis.hkeys(keys[1])
    mageflow_redis.hdel(keys[1], grant)
    assert mageflow_redis.hgetall(keys[6]) == {old.encode(): b"1"}

    # When the pool settles while idle, then a swarm alone on it passes again (the stale count is gone)
    store.pool_settle("legacy", "", 0, 1, [])
    assert mageflow_redis.exists(keys[6]) == 0
    assert _pass(store, _pooled(mageflow_app, "legacy", 3, limit=2)) == PASS_BUDGET

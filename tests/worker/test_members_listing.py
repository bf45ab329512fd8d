"""N3: ``SwarmResult.members(state=None, offset=0, limit=100)`` and ``celery swarm members``, on a real worker;
and its cost, bounded by the page, not by the swarm's size."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import redis
from celery import Celery
from celery.bin.base import CLIContext
from click.testing import CliRunner

from mageflow_celery import MemberInfo, SwarmConfig, SwarmResult, swarm
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.keys import member_task_id
from mageflow_celery.ops.cli import swarm as swarm_cli
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis]


def _states(rows: list[MemberInfo]) -> dict[int, str]:
    return {row.index: row.state for row in rows}


@pytest.mark.worker
def test_members_lists_each_member_with_its_state_name_id_and_error_and_filters_by_state(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: redis.Redis
) -> None:
    # Given a swarm (limit 3) with a member in each state: succeeded, failed, running (gated), dispatched (its
    # queue has no worker), running, queued, and one registered but never run
    @mageflow_app.task(name="m.ok", shared=False)
    def ok(x: int) -> int:
        return x

    @mageflow_app.task(name="m.fail", shared=False)
    def fail(x: int) -> None:
        raise ValueError(f"bad {x}")

    @mageflow_app.task(name="m.gated", shared=False)
    def gated(x: int) -> int:
        mageflow_redis.blpop(["test:gate"], timeout=20)
        return x

    mageflow_worker(concurrency=4)
    s = swarm(
        tasks=[ok.s(0), fail.s(1), gated.s(2), ok.s(3).set(queue="nowhere"), gated.s(4), ok.s(5)],
        config=SwarmConfig(max_concurrency=3),
        app=mageflow_app,
    )
    res = s.apply_async()
    s.add_task(ok.s(6))
    wait_for(lambda: _states(res.members()).get(4) == "running", message="member 4 to run")

    # Then the full listing is in member order, with names, ids, states and the failure record
    rows = res.members()
    assert _states(rows) == {
        0: "succeeded",
        1: "failed",
        2: "running",
        3: "dispatched",
        4: "running",
        5: "queued",
        6: "registered",
    }
    assert [row.name for row in rows] == ["m.ok", "m.fail", "m.gated", "m.ok", "m.gated", "m.ok", "m.ok"]
    assert [row.task_id for row in rows] == [member_task_id(res.id, i) for i in range(7)]
    assert rows[1].error == {
        "task_id": member_task_id(res.id, 1),
        "index": 1,
        "exc_type": "ValueError",
        "message": "bad 1",
    }
    assert all(row.error is None for row in rows if row.index != 1)
    # And each state filter gives exactly its members; offset and limit count rows after the filter
    expected = {"succeeded": [0], "failed": [1], "running": [2, 4], "dispatched": [3], "queued": [5], "registered": [6]}
    for state, indices in expected.items():
        assert [row.index for row in res.members(state=state)] == indices, state
    assert [row.index for row in res.members(offset=2, limit=3)] == [2, 3, 4]
    assert [row.index for row in res.members(state="running", offset=1, limit=5)] == [4]
    # And the command prints the same as JSON, and as a table
    obj = CLIContext(app=mageflow_app, no_color=True, workdir=None, quiet=False)
    out = CliRunner().invoke(swarm_cli, ["members", res.id, "--state", "failed", "--json"], obj=obj)
    assert out.exit_code == 0 and json.loads(out.stdout) == [rows[1].model_dump(mode="json")]
    table = CliRunner().invoke(swarm_cli, ["members", res.id, "--limit", "2"], obj=obj).stdout.splitlines()
    assert table[0].split() == ["INDEX", "STATE", "NAME", "TASK", "ID", "ERROR"]
    assert table[2].split()[:3] == ["1", "failed", "m.fail"] and table[2].endswith("ValueError: bad 1")

    # When it is cancelled, then the queued and registered members are listed as cancelled
    res.cancel()
    cancelled = [row.index for row in res.members(state="cancelled")]
    assert {5, 6} <= set(cancelled)
    mageflow_redis.rpush("test:gate", "go", "go")


def test_bad_arguments_to_members_raise_value_error(mageflow_app: Celery) -> None:
    res = swarm(tasks=["m.never"], app=mageflow_app).apply_async()
    for kwargs in ({"state": "done"}, {"offset": -1}, {"limit": 0}, {"limit": 10_001}):
        with pytest.raises(ValueError):
            res.members(**kwargs)


def _commands(client: redis.Redis) -> Counter[str]:
    stats = client.info("commandstats")
    return Counter({name: int(v["calls"]) for name, v in stats.items()})


def _page_cost(app: Celery, client: redis.Redis, n: int, **query: Any) -> Counter[str]:
    """Redis commands (Lua-inner ones included) one members() call makes on an ``n``-member swarm."""
    s = swarm(tasks=["m.never"] * n, config=SwarmConfig(max_concurrency=5), app=app)
    res = s.apply_async()
    store = runtime_for(app).store
    for i in range(5):  # five members fail: the failed index holds them
        store.report(res.id, [(i, "f", b'{"exc_type": "E"}')], want_ctx=False)
    before = _commands(client)
    rows = SwarmResult(res.id, app=app).members(**query)
    assert rows
    after = _commands(client)
    return Counter({k: after[k] - before[k] for k in after if after[k] != before[k]})


@pytest.mark.slow
def test_a_page_of_members_costs_the_same_in_a_100k_member_swarm_as_in_a_1k_one(
    mageflow_app: Celery, mageflow_redis: redis.Redis
) -> None:
    # Given swarms of 1,000 and 100,000 members, then a page costs the same Redis commands in both
    for query in ({"limit": 10, "offset": 500}, {"state": "failed", "limit": 3}, {"state": "queued", "limit": 10}):
        small = _page_cost(mageflow_app, mageflow_redis, 1_000, **query)
        large = _page_cost(mageflow_app, mageflow_redis, 100_000, **query)
        assert small == large, (query, small, large)
        assert sum(small.values()) < 20, small

"""S4 messages: swarm kwargs merged into every member; precedence; pydantic models; ``.si()``; chains."""

from __future__ import annotations

import datetime
from typing import Any

import celery
import pytest
from celery import Celery, Task, chain
from pydantic import BaseModel

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def _echo(app: Celery) -> Task:
    @app.task(name="t.echo", shared=False)
    def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"args": list(args), "kwargs": kwargs}

    return echo


class Message(BaseModel):
    batch: int = 0
    label: str = "default"
    when: datetime.date | None = None


def test_member_run_kwargs_beat_member_bound_beat_swarm_run_beat_swarm_bound(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given a swarm binding a, b, c, d; an initial member binding c, d; and added members binding c, d
    echo = _echo(mageflow_app)
    mageflow_worker(concurrency=2)
    bound = {k: "swarm-bound" for k in "abcd"}
    s = swarm(tasks=[echo.s(c="member-bound", d="member-bound")], app=mageflow_app, **bound)
    added = s.add_task(echo.s(c="member-bound", d="member-bound"))

    # When the swarm starts with run kwargs b, c, d, and the added members run with their own kwarg d
    result = s.apply_async(kwargs={k: "swarm-run" for k in "bcd"})
    added.delay(d="member-run")
    s.run_in_swarm(echo.s(c="member-bound", d="member-bound"), kwargs={"d": "member-run"})
    s.close_swarm()

    # Then the most specific value of each key wins
    expected_initial = {"a": "swarm-bound", "b": "swarm-run", "c": "member-bound", "d": "member-bound"}
    expected_added = {**expected_initial, "d": "member-run"}
    assert [r["kwargs"] for r in result.get(timeout=20)] == [expected_initial, expected_added, expected_added]


def test_merging_is_shallow_and_positional_args_are_kept(mageflow_app: Celery, mageflow_worker: WorkerFactory) -> None:
    # Given a member with positional args and a nested dict kwarg, in a swarm binding the same nested key
    echo = _echo(mageflow_app)
    mageflow_worker(concurrency=2)
    s = swarm(tasks=[echo.s(1, 2, opts={"member": True})], is_swarm_closed=True, app=mageflow_app, opts={"swarm": 1})

    # When it runs
    [out] = s.apply_async(kwargs={"extra": [1, 2]}).get(timeout=20)

    # Then the member's own nested dict replaced the swarm's (top-level merge), and its args are untouched
    assert out == {"args": [1, 2], "kwargs": {"opts": {"member": True}, "extra": [1, 2]}}


@pytest.mark.parametrize("how", ["apply_async", "delay"])
def test_a_pydantic_model_given_to_the_swarm_is_dumped_without_unset_fields(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, how: str
) -> None:
    # Given a swarm of one member and a model with one field set (a date, JSON-dumped as text)
    echo = _echo(mageflow_app)
    mageflow_worker(concurrency=2)
    s = swarm(tasks=[echo.s(label="member")], is_swarm_closed=True, app=mageflow_app)
    message = Message(batch=7, when=datetime.date(2024, 5, 1))

    # When the swarm starts with the model as its message
    result = s.apply_async(kwargs=message) if how == "apply_async" else s.delay(message)

    # Then the member got exactly the fields that were set, in JSON mode, its own kwargs winning
    [out] = result.get(timeout=20)
    assert out["kwargs"] == {"batch": 7, "when": "2024-05-01", "label": "member"}


def test_a_pydantic_model_given_to_a_member_is_its_run_message(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given a started open swarm with run kwargs, and a member added to it
    echo = _echo(mageflow_app)
    mageflow_worker(concurrency=2)
    s = swarm(app=mageflow_app)
    result = s.apply_async(kwargs=Message(batch=1, label="swarm"))
    member = s.add_task(echo.s())

    # When the member runs with a model setting only its label
    member.delay(Message(label="member"))
    s.close_swarm()

    # Then the member's model fields win over the swarm's, and unset fields are absent
    assert [r["kwargs"] for r in result.get(timeout=20)] == [{"batch": 1, "label": "member"}]


def test_an_immutable_member_receives_no_swarm_kwargs(mageflow_app: Celery, mageflow_worker: WorkerFactory) -> None:
    # Given a swarm with a mutable and an immutable member, and bound and run kwargs
    echo = _echo(mageflow_app)
    mageflow_worker(concurrency=2)
    s = swarm(tasks=[echo.s(1), echo.si(2, own=True)], is_swarm_closed=True, app=mageflow_app, bound="b")

    # When it runs with run kwargs
    out = s.apply_async(kwargs={"run": "r"}).get(timeout=20)

    # Then only the mutable member received them
    assert out == [
        {"args": [1], "kwargs": {"bound": "b", "run": "r"}},
        {"args": [2], "kwargs": {"own": True}},
    ]


def test_a_chain_member_gets_the_swarm_kwargs_in_its_first_step_and_counts_once(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given a swarm whose members are a chain and a plain task, and a chain with a failing step
    @mageflow_app.task(name="t.add", shared=False)
    def add(x: int, y: int = 0, **kwargs: Any) -> int:
        return x + y + kwargs.get("bonus", 0)

    @mageflow_app.task(name="t.boom", shared=False)
    def boom(*args: Any) -> None:
        raise ValueError("step failed")

    mageflow_worker(concurrency=4)
    s = swarm(
        tasks=[chain(add.s(1, 2), add.s(10), add.s(100)), add.s(5), chain(add.s(1), boom.s(), add.s(1000))],
        config=SwarmConfig(max_concurrency=1),
        is_swarm_closed=True,
        app=mageflow_app,
    )

    # When it runs with a run kwarg
    result = s.apply_async(kwargs={"bonus": 1000})

    # Then the chain's result is its last step's (only the first step got the kwarg), the failing chain is one
    # failed member, and each member counted once
    assert result.get(timeout=20) == [1 + 2 + 1000 + 10 + 100, 5 + 1000]
    p = result.progress()
    assert (p.total, p.succeeded, p.failed) == (3, 2, 1)


class Job(BaseModel):
    batch: int
    name: str


@pytest.mark.skipif(celery.VERSION < (5, 5), reason="@app.task(pydantic=True) exists from Celery 5.5 on")
def test_a_celery_pydantic_member_gets_the_swarm_kwargs_merged_into_its_model(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given a Celery-native pydantic task, as members given their model as a kwarg and as an arg
    @mageflow_app.task(name="t.job", shared=False, pydantic=True)
    def job(msg: Job) -> dict[str, Any]:
        return msg.model_dump()

    mageflow_worker(concurrency=2)
    s = swarm(tasks=[job.s(msg={"name": "a"}), job.s({"name": "b"})], is_swarm_closed=True, app=mageflow_app)

    # When the swarm runs with run kwargs
    result = s.apply_async(kwargs={"batch": 3})

    # Then each member's model was built from its own fields plus the swarm kwargs
    assert result.get(timeout=20) == [{"batch": 3, "name": "a"}, {"batch": 3, "name": "b"}]

"""N6: ``SwarmRecorder`` and the ``swarm_recorder`` fixture record swarms started by code under test, with no
Redis and no worker (the app below points at a Redis that does not exist: any write would fail)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from pydantic import BaseModel

from mageflow_celery import Mageflow, Swarm, SwarmConfig, install, swarm
from mageflow_celery import aio as mageflow
from mageflow_celery.keys import member_task_id
from mageflow_celery.testing import SwarmRecorder

NOWHERE = "redis://127.0.0.1:1/0"


class Message(BaseModel):
    batch: str


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery("recorded", broker=NOWHERE, backend=NOWHERE, set_as_current=False)
    install(app, redis_url=NOWHERE)

    @app.task(name="r.process", shared=False)
    def process(path: str, **kwargs: Any) -> str:
        return path

    @app.task(name="r.report", shared=False)
    def report(results: list[str]) -> None:
        return None

    yield app
    app.close()


def start_import(app: Celery, paths: list[str]) -> str:
    """The code under test: starts a swarm, grows it, closes it."""
    process, report = app.tasks["r.process"], app.tasks["r.report"]
    s = swarm(
        tasks=[process.s(p) for p in paths],
        success_callbacks=[report.s()],
        config=SwarmConfig(max_concurrency=3),
        task_name="import",
        app=app,
        source="s3",
    )
    result = s.apply_async(kwargs={"batch": "b1"})
    s.add_task(process.s("late.csv")).delay(priority="high")
    s.run_in_swarm([process.s("x.csv"), process.s("y.csv")])
    s.close_swarm()
    return str(result.id)


def test_a_recorder_records_the_swarm_its_members_kwargs_config_and_callbacks_without_any_io(app: Celery) -> None:
    # Given code that starts, grows and closes a swarm; when it runs under a recorder
    original = Swarm.apply_async
    with SwarmRecorder(app) as recorder:
        assert Swarm.apply_async is not original
        swarm_id = start_import(app, ["a.csv", "b.csv"])

    # Then the swarm is recorded, started, with its members in order, its merged kwargs, config and callbacks
    recorded = recorder.assert_swarm_dispatched(
        "import", tasks=["r.process"] * 5, kwargs={"batch": "b1", "source": "s3"}
    )
    assert recorded.id == swarm_id and recorder.get(swarm_id) is recorded
    assert recorded.config.max_concurrency == 3
    assert recorded.success_callbacks == ["r.report"] and recorded.error_callbacks == []
    assert [list(m.args) for m in recorded.members] == [["a.csv"], ["b.csv"], ["late.csv"], ["x.csv"], ["y.csv"]]
    assert sorted(recorded.queued) == [0, 1, 2, 3, 4]
    assert (recorded.started, recorded.closed) == (True, True)
    # And outside the recorder, swarms run for real again (the patches are gone)
    assert Swarm.apply_async is original


def test_assert_swarm_dispatched_fails_saying_what_was_recorded(app: Celery) -> None:
    with SwarmRecorder(app) as recorder:
        start_import(app, ["a.csv"])
    for kwargs in (
        {"name": "other"},
        {"name": "import", "tasks": ["r.process"]},
        {"name": "import", "kwargs": {"batch": "b2"}},
    ):
        with pytest.raises(AssertionError, match="started: \\[\\('import'"):
            recorder.assert_swarm_dispatched(**kwargs)


def test_the_seed_style_async_flow_is_recorded_too(app: Celery) -> None:
    # Given the seed's own spellings (aio facade, Mageflow client, messages as models)
    mf = Mageflow(app)

    async def flow() -> str:
        s = await mageflow.swarm(tasks=[mf.sign("r.process", path="a.csv")], task_name="seed", app=app)
        await s.aio_run_no_wait(Message(batch="b9"))
        new = await s.add_task(mf.sign("r.process", path="b.csv"))
        await new.aio_run_no_wait(Message(batch="b10"))
        await s.close_swarm()
        return str(s.id)

    # When it runs under a recorder
    with SwarmRecorder(app) as recorder:
        swarm_id = asyncio.run(flow())

    # Then it is recorded like the sync flow, the added member queued with its own message
    recorded = recorder.assert_swarm_dispatched("seed", tasks=["r.process", "r.process"], kwargs={"batch": "b9"})
    assert recorded.id == swarm_id and recorded.queued == [0, 1] and recorded.closed
    assert recorded.members[1].kwargs == {"path": "b.csv", "batch": "b10"}


def test_the_swarm_recorder_fixture_records_every_app(app: Celery, swarm_recorder: SwarmRecorder) -> None:
    swarm_id = start_import(app, ["a.csv"])
    recorded = swarm_recorder.assert_swarm_dispatched("import", tasks=["r.process"] * 4)
    assert recorded.id == swarm_id
    assert member_task_id(swarm_id, 0).startswith(swarm_id)

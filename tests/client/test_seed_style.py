"""S4/S6 with the seed's spellings: Mageflow client, model messages, ReturnValue, the aio facade."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from celery import Celery
from pydantic import BaseModel, ConfigDict

from mageflow_celery import Mageflow, MageflowError, ReturnValue, SwarmConfig, SwarmFailedError
from mageflow_celery import aio as mageflow
from mageflow_celery.testing import settle_swarm
from mageflow_celery.testing.plugin import WorkerFactory, _restoring_current_app

pytestmark = [pytest.mark.redis, pytest.mark.worker]


class FileMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    file_path: str
    batch: str = "none"


class BatchMessage(BaseModel):
    batch: str


class Report(BaseModel):
    model_config = ConfigDict(extra="ignore")
    results: ReturnValue[list[str]]
    batch: str = "?"


def _client(app: Celery, sink: Any) -> Mageflow:
    mf = Mageflow(app)

    @mf.task(name="process-file")
    def process_file(msg: FileMessage) -> str:
        return f"{msg.batch}:{msg.file_path}"

    @mf.task(name="process-file-async")
    async def process_file_async(msg: FileMessage) -> str:
        await asyncio.sleep(0)
        return f"async:{msg.file_path}"

    @mf.task(name="consolidate")
    def consolidate(msg: Report) -> int:
        sink.rpush("test:report", ",".join(msg.results))
        return len(msg.results)

    @app.task(name="plain-callback", shared=False)
    def plain_callback(results: ReturnValue[list[str]], label: str = "plain") -> None:
        sink.rpush("test:plain", f"{label}={','.join(results)}")

    return mf


def test_model_tasks_receive_the_merged_message_and_return_value_callbacks_get_the_list(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: Any
) -> None:
    # Given seed-style tasks (a model parameter, an async one) and ReturnValue callbacks
    mf = _client(mageflow_app, mageflow_redis)
    mageflow_worker(concurrency=4)
    s = mf.swarm(
        tasks=[mf.sign("process-file", file_path=f"f{i}.csv") for i in range(3)]
        + [mf.sign("process-file-async", file_path="x")],
        success_callbacks=[mf.sign("consolidate"), mf.sign("plain-callback", label="L")],
        config=SwarmConfig(max_concurrency=2),
        is_swarm_closed=True,
    )

    # When the swarm starts with a model message
    result = s.delay(BatchMessage(batch="b1"))

    # Then each member built its model from the merged kwargs, and both callbacks got the list in order
    expected = ["b1:f0.csv", "b1:f1.csv", "b1:f2.csv", "async:x"]
    assert result.get(timeout=30) == expected
    settle_swarm(result.id, mageflow_app)  # both callbacks published and run: a duplicate would show below
    assert mageflow_redis.lrange("test:report", 0, -1) == [",".join(expected).encode()]
    assert mageflow_redis.lrange("test:plain", 0, -1) == [f"L={','.join(expected)}".encode()]


def test_a_message_that_fails_validation_is_a_member_failure_with_a_clear_message(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: Any
) -> None:
    # Given a model task given no file_path
    mf = _client(mageflow_app, mageflow_redis)
    mageflow_worker(concurrency=2)
    s = mf.swarm(tasks=[mf.sign("process-file")], config=SwarmConfig(stop_after_n_failures=1), is_swarm_closed=True)

    # When it runs, then the swarm fails and the summary names the validation error
    with pytest.raises(SwarmFailedError) as err:
        s.delay().get(timeout=30)
    failure = err.value.summary["failures"][0]
    assert failure["exc_type"] == "ValidationError"
    assert "file_path" in failure["message"]


def test_the_seed_async_flow_runs_unchanged_but_for_imports(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: Any
) -> None:
    # Given the seed guide's dynamic flow, written with the aio facade
    _client(mageflow_app, mageflow_redis)
    mageflow_worker(concurrency=4)

    async def flow() -> list[str]:
        initial = [await mageflow.sign("process-file", file_path="first", app=mageflow_app)]
        swarm = await mageflow.swarm(tasks=initial, config=SwarmConfig(max_concurrency=2), app=mageflow_app)
        run = await swarm.aio_run_no_wait(BatchMessage(batch="seed"))
        for item in ("a", "b"):
            new_task = await mageflow.sign("process-file", file_path=item, app=mageflow_app)
            await swarm.add_task(new_task)
            await new_task.aio_run_no_wait(FileMessage(file_path=item))
        await swarm.run_in_swarm(await mageflow.sign("process-file", file_path="c", app=mageflow_app))
        await swarm.close_swarm()
        return await run.get(timeout=30)  # type: ignore[no-any-return]

    # When it runs, then the members added later are in add order, with the swarm message merged
    assert asyncio.run(flow()) == ["seed:first", "seed:a", "seed:b", "seed:c"]


def test_aio_calls_do_not_block_the_event_loop(
    mageflow_app: Celery, mageflow_worker: WorkerFactory, mageflow_redis: Any
) -> None:
    # Given a swarm whose only member waits for a gate that only a coroutine on the caller's loop opens
    mf = _client(mageflow_app, None)
    gate_client = redis.Redis.from_url(mageflow_app.conf.broker_url, socket_timeout=30)

    @mageflow_app.task(name="t.wait_gate", shared=False)
    def wait_gate(**kwargs: Any) -> str:
        return "opened" if gate_client.blpop(["test:aio-gate"], timeout=20) else "timed out"

    mageflow_worker(concurrency=2)

    async def flow() -> tuple[Any, int]:
        ticks_while_waiting = 0
        waiting = asyncio.Event()

        async def opener() -> None:
            nonlocal ticks_while_waiting
            await waiting.wait()
            for _ in range(20):  # the loop keeps running while get() is awaited ...
                ticks_while_waiting += 1
                await asyncio.sleep(0.001)
            mageflow_redis.rpush("test:aio-gate", "open")  # ... so this coroutine can open the gate

        task = asyncio.create_task(opener())
        s = await mf.aio.swarm(tasks=[wait_gate.s()], is_swarm_closed=True)
        run = await s.aio_run_no_wait(BatchMessage(batch="x"))
        waiting.set()
        value = await run.get(timeout=15)  # a blocking get() would starve the opener and time out
        await task
        return value, ticks_while_waiting

    # When the result is awaited, then the member finished because the opener ran during the wait
    try:
        value, ticks = asyncio.run(flow())
    finally:
        gate_client.close()
    assert value == ["opened"]
    assert ticks == 20


def test_a_model_defined_inside_a_function_under_postponed_annotations_is_still_the_message(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given (this module has `from __future__ import annotations`) a message model defined locally, and
    # an mf.task whose single parameter is annotated with it (the annotation is the string "LocalMessage")
    class LocalMessage(BaseModel):
        model_config = ConfigDict(extra="ignore")
        item: int

    mf = Mageflow(mageflow_app)

    @mf.task(name="local-model")
    def local_model(msg: LocalMessage) -> int:
        return msg.item * 10

    @mf.task
    def bare_local(msg: LocalMessage) -> int:
        return msg.item + 1

    mageflow_worker(concurrency=2)

    # When a swarm runs them with flat kwargs (plus an extra swarm kwarg the model ignores)
    s = mf.swarm(tasks=[mf.sign("local-model", item=2), mf.sign(bare_local, item=5)], is_swarm_closed=True)

    # Then each task received its model built from the kwargs (not the kwargs themselves)
    assert s.apply_async(kwargs={"batch": "b"}).get(timeout=20) == [20, 6]


def test_an_mf_task_whose_model_annotation_cannot_be_resolved_raises_at_decoration(mageflow_app: Celery) -> None:
    # Given an mf.task whose single parameter names a model that exists nowhere the task can see
    mf = Mageflow(mageflow_app)

    # Then decorating it raises at once, naming the annotation (it never degrades to a plain task)
    with pytest.raises(MageflowError, match="NoSuchModel"):

        @mf.task(name="unresolvable")
        def unresolvable(msg: NoSuchModel) -> None:  # type: ignore[name-defined]  # noqa: F821
            return None

    assert "unresolvable" not in mageflow_app.tasks


def test_aio_sign_and_swarm_take_the_callers_current_app_not_a_worker_threads(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given the test's app as the current app of this thread only (a worker thread would see Celery's default)
    mf = Mageflow(mageflow_app)

    @mf.task(name="aio-echo")
    def echo(msg: FileMessage) -> str:
        return msg.file_path

    mageflow_worker(concurrency=2)

    async def flow() -> Any:
        sig = await mageflow.sign("aio-echo", file_path="p")
        s = await mageflow.swarm(tasks=[sig], is_swarm_closed=True)
        return sig.app, s.signature.app, await (await s.aio_run_no_wait()).get(timeout=20)

    with _restoring_current_app():
        mageflow_app.set_current()
        # When the aio calls build a signature and a swarm without app=
        sig_app, swarm_app, results = asyncio.run(flow())

    # Then both are bound to the caller's current app, and the swarm runs on it
    assert sig_app is mageflow_app and swarm_app is mageflow_app
    assert results == ["p"]

"""S11: eager mode runs members inline, one at a time, with S2–S8 intact."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery, chain

from mageflow_celery import SwarmConfig, SwarmFailedError, SwarmResult, swarm
from mageflow_celery.keys import parse_member_task_id

pytestmark = [pytest.mark.redis]


def _tasks(app: Celery) -> dict[str, Any]:
    import threading

    state: dict[str, Any] = {"ran": [], "holding": []}
    lock = threading.Lock()

    @app.task(name="e.work", shared=False, bind=True)
    def work(self: Any, x: int, **kwargs: Any) -> int:
        ref = parse_member_task_id(self.request.id)
        with lock:
            state["ran"].append(x)
            if ref is not None:  # members holding a token of their swarm while this one runs
                p = SwarmResult(ref.swarm_id, app=app).progress()
                state["holding"].append(p.dispatched + p.running)
        if x < 0:
            raise ValueError(f"negative {x}")
        return x + kwargs.get("bonus", 0)

    @app.task(name="e.collect", shared=False)
    def collect(values: list[Any]) -> list[Any]:
        state.setdefault("callbacks", []).append(values)
        return values

    @app.task(name="e.alert", shared=False)
    def alert(summary: dict[str, Any]) -> None:
        state.setdefault("alerts", []).append(summary)

    return {"work": work, "collect": collect, "alert": alert, "state": state}


@pytest.mark.mageflow(task_always_eager=True)
def test_an_eager_swarm_runs_members_one_at_a_time_and_calls_back_with_results(mageflow_app: Celery) -> None:
    # Given an eager app and a swarm with a run kwarg and a success callback
    t = _tasks(mageflow_app)
    s = swarm(
        tasks=[t["work"].s(i) for i in range(5)],
        success_callbacks=[t["collect"].s()],
        config=SwarmConfig(max_concurrency=3),
        is_swarm_closed=True,
    )

    # When it is applied
    result = s.apply_async(kwargs={"bonus": 10})

    # Then every member ran inline in member order, never more than 3 holding a token (the limit filled),
    # and the callback got the results in order
    assert isinstance(result, SwarmResult)
    assert result.get(timeout=5) == [10, 11, 12, 13, 14]
    assert t["state"]["ran"] == [0, 1, 2, 3, 4]
    assert t["state"]["holding"] == [3, 3, 3, 2, 1]
    assert t["state"]["callbacks"] == [[10, 11, 12, 13, 14]]
    assert result.progress().succeeded == 5


@pytest.mark.mageflow(task_always_eager=True, task_eager_propagates=False)
def test_an_eager_swarm_counts_failures_and_stops_at_the_threshold(mageflow_app: Celery) -> None:
    # Given an eager swarm that stops after 2 failures
    t = _tasks(mageflow_app)
    s = swarm(
        tasks=[t["work"].s(-1), t["work"].s(1), t["work"].s(-2), t["work"].s(3), t["work"].s(4)],
        success_callbacks=[t["collect"].s()],
        error_callbacks=[t["alert"].s()],
        config=SwarmConfig(max_concurrency=1, stop_after_n_failures=2),
        is_swarm_closed=True,
    )

    # When it runs
    result = s.apply_async()

    # Then it failed at the second failure: the rest never ran, the error callback got the summary once
    with pytest.raises(SwarmFailedError) as err:
        result.get(timeout=5)
    assert t["state"]["ran"] == [-1, 1, -2]
    assert err.value.summary["failed"] == 2 and err.value.summary["cancelled"] == 2
    assert [a["failed"] for a in t["state"]["alerts"]] == [2]
    assert "callbacks" not in t["state"]


@pytest.mark.mageflow(task_always_eager=True, task_eager_propagates=True)
def test_with_eager_propagates_a_failed_swarm_raises_from_apply_async(mageflow_app: Celery) -> None:
    # Given an eager app that propagates and a swarm that fails at once
    t = _tasks(mageflow_app)
    s = swarm(tasks=[t["work"].s(-1)], config=SwarmConfig(stop_after_n_failures=1), is_swarm_closed=True)

    # When applied, then SwarmFailedError is raised from apply_async with the summary
    with pytest.raises(SwarmFailedError) as err:
        s.apply_async()
    assert err.value.summary["failures"][0]["exc_type"] == "ValueError"


@pytest.mark.mageflow(task_always_eager=True)
def test_an_eager_chain_passes_the_result_list_on_and_added_members_run(mageflow_app: Celery) -> None:
    # Given an eager chain with a swarm step, and an open eager swarm that grows
    t = _tasks(mageflow_app)
    s = swarm(tasks=[t["work"].s(1), t["work"].s(2)], is_swarm_closed=True)
    assert chain(s, t["collect"].s()).apply_async().get() == [1, 2]

    grow = swarm(tasks=[t["work"].s(5)], success_callbacks=[t["collect"].s()])
    result = grow.apply_async()
    grow.add_task(t["work"].s(6)).delay()
    grow.run_in_swarm(t["work"].s(7))
    assert not result.ready()
    grow.close_swarm()
    assert result.get(timeout=5) == [5, 6, 7]


@pytest.mark.mageflow(task_always_eager=True)
def test_members_admitted_before_the_failure_threshold_was_reached_never_run_eagerly(mageflow_app: Celery) -> None:
    # Given an eager swarm that fails at its first failure, three members admitted at once, the first failing
    t = _tasks(mageflow_app)
    s = swarm(
        tasks=[t["work"].s(x) for x in (-1, 1, 2, 3)],
        error_callbacks=[t["alert"].s()],
        config=SwarmConfig(max_concurrency=3, stop_after_n_failures=1),
        is_swarm_closed=True,
    )

    # When it is applied
    result = s.apply_async()

    # Then only the failing member ran: the admitted ones were stopped at the start gate, as on a worker
    assert t["state"]["ran"] == [-1]
    p = result.progress()
    assert (p.state, p.failed, p.cancelled, p.succeeded) == ("failed", 1, 3, 0)
    assert [a["failed"] for a in t["state"]["alerts"]] == [1]

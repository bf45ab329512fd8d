"""The standard swarm scenario every cell of the deployment matrix runs, asserted exactly.

Swarm A: 6 members, ``max_concurrency=2``, ``stop_after_n_failures=2``, ``results="aligned"``; member 4
fails. Every member holds until the test opens its gate, so the limit is provably reached (two members
hold together) and provably kept (a third would start and hold too: the workers have 3 slots).

1. Members 0 and 1 start and hold until their 2 s leases were renewed twice by the worker's lease keeper
   (while the reaper ticks every 0.5 s); the test pauses the swarm, marks ``paused``, opens their gates.
   Both finish; paused, nothing is admitted: no member starts until the test marks ``resumed`` and resumes.
2. Members 2 and 3 start, are let go; then 4 and 5 (4 fails: one failure, below the threshold of 2).
3. The swarm succeeds; the success callback runs exactly once with the aligned results (``None`` for 4),
   each built from a bound kwarg and a run kwarg (non-ASCII, nested, plus types only the cell's serializer
   keeps); the members' outcomes are in the cell's result backend (none: the app has a disabled one).

Swarm B: 3 members, ``max_concurrency=1``; cancelled while member 0 holds: members 1 and 2 never run,
``get()`` raises :class:`SwarmCancelledError`, no callback runs.

Then the workers are settled (queue empty, nothing active or reserved) before the callbacks are counted,
and stopped with a warm shutdown, which must end every worker cleanly.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from celery.backends.base import DisabledBackend
from matrixkit import Deployment

from mageflow_celery import Swarm, SwarmCancelledError, SwarmConfig, SwarmResult, swarm
from mageflow_celery.keys import member_task_id
from mageflow_celery.testing import max_overlap, wait_for

LIMIT = 2
MEMBERS = 6
FAILING = 4
#: A bound kwarg and a run kwarg every member returns: text and nested values each serializer must keep.
LABEL = "žluťoučký kůň ✓"
PLAIN = {"numbers": [1, 2.5, -3], "flags": [True, False, None], "text": "日本語"}
UTC = timezone.utc
#: The run kwarg per serializer: plain values, plus types only that serializer keeps (json would turn a
#: tuple into a list), so a library that stored or passed them on with another serializer fails.
RUN: dict[str, dict[str, Any]] = {
    "json": PLAIN,
    "pickle": {**PLAIN, "tuple": (1, "a"), "set": frozenset({1, 2}), "when": datetime(2024, 1, 2, 3, 4, 5, 6, UTC)},
    "msgpack": {**PLAIN, "blob": b"\x00\xff"},
    "yaml": {**PLAIN, "when": datetime(2024, 1, 2, 3, 4, 5)},
}
NO_RESULT_BACKEND = "has no result backend"
#: Short leases: members 0 and 1 hold until theirs were renewed twice (the shortest allowed is 1 s).
LEASE_S = 2


def expected_results(serializer: str) -> list[Any]:
    """What swarm A's members return, aligned: ``None`` for the failing member."""
    return [None if i == FAILING else {"i": i, "label": LABEL, "run": RUN[serializer]} for i in range(MEMBERS)]


def run_standard_scenario(d: Deployment) -> None:
    """Run swarms A and B on the deployment ``d`` and assert every outcome exactly."""
    _install_warned_as_documented(d)
    a_id, a = _limited_paused_and_resumed(d)
    b_id, b = _cancelled(d)
    d.settle()
    _assert_limited(d, a_id, a, expected_results(d.cell.serializer))
    _assert_cancelled(d, b_id, b)
    codes = d.stop_workers()
    assert codes == [0] * len(codes), f"workers did not stop cleanly: {codes}\n{d.logs()}"


def _install_warned_as_documented(d: Deployment) -> None:
    warned = any(NO_RESULT_BACKEND in message for message in d.install_warnings)
    assert warned == (d.cell.backend == "none"), d.install_warnings


def _member(d: Deployment, **kwargs: Any) -> Any:
    return d.client.signature("matrix.member", kwargs=kwargs)


def _callbacks(d: Deployment) -> dict[str, Any]:
    return {
        "success_callbacks": [d.client.signature("matrix.callback")],
        "error_callbacks": [d.client.signature("matrix.callback", kwargs={"kind": "error"})],
    }


def _limited_paused_and_resumed(d: Deployment) -> tuple[str, SwarmResult]:
    s: Swarm = swarm(
        tasks=[_member(d, fail=i == FAILING) for i in range(MEMBERS)],
        config=SwarmConfig(max_concurrency=LIMIT, stop_after_n_failures=2, results="aligned", lease_s=LEASE_S),
        is_swarm_closed=True,
        app=d.client,
        label=LABEL,
        **_callbacks(d),
    )
    swarm_id = s.freeze().id
    result = s.apply_async(kwargs={"run": RUN[d.cell.serializer]})
    # Given members 0 and 1 holding (the limit reached) while their leases are renewed (and the reaper ticks)
    assert set(d.wait_events(swarm_id, "start", 2)) == {0, 1}
    d.wait_renewed(swarm_id, (0, 1), times=2)
    assert sorted(d.starts(swarm_id)) == [0, 1], d.events(swarm_id)  # renewed, not reaped and re-run
    # When the swarm is paused and they are let go
    assert result.pause() is True
    d.mark(swarm_id, "paused")
    d.release(swarm_id, 0, 1)
    # Then they finish and nothing is admitted (the same script records an outcome and admits the next)
    paused = wait_for(lambda: (p := result.progress()).succeeded == 2 and p, timeout_s=30, message="0 and 1 reported")
    assert (paused.state, paused.queued, paused.dispatched, paused.running) == ("paused", 4, 0, 0), paused
    # When it is resumed, the next pair runs, then the last (member 4 fails)
    d.mark(swarm_id, "resumed")
    assert result.resume() is True
    for pair in ((2, 3), (4, 5)):
        assert set(d.wait_events(swarm_id, "start", pair[1] + 1)[pair[0] :]) == set(pair)
        d.release(swarm_id, *pair)
    wait_for(lambda: d.callbacks(swarm_id), timeout_s=30, message="the success callback")
    return swarm_id, result


def _cancelled(d: Deployment) -> tuple[str, SwarmResult]:
    s: Swarm = swarm(
        tasks=[_member(d) for _ in range(3)],
        config=SwarmConfig(max_concurrency=1),
        is_swarm_closed=True,
        app=d.client,
        **_callbacks(d),
    )
    swarm_id = s.freeze().id
    result = s.apply_async()
    # Given member 0 holding, 1 and 2 queued; when the swarm is cancelled
    assert d.wait_events(swarm_id, "start", 1) == [0]
    assert result.cancel() is True
    # Then get() raises at once, and the running member may end
    with pytest.raises(SwarmCancelledError):
        result.get(timeout=10)
    d.release(swarm_id, 0)
    d.wait_events(swarm_id, "end", 1)
    return swarm_id, result


def _assert_limited(d: Deployment, swarm_id: str, result: SwarmResult, expected: list[Any]) -> None:
    # the limit was kept and reached: at most 2 executions at once, and 2 at once
    assert max_overlap(d.intervals(swarm_id)) == LIMIT, d.events(swarm_id)
    starts = d.starts(swarm_id)
    assert len(starts) == MEMBERS and [set(starts[i : i + 2]) for i in (0, 2, 4)] == [{0, 1}, {2, 3}, {4, 5}], starts
    # nothing started between the pause and the resume: only 0 and 1 ended
    events = d.events(swarm_id)
    between = events[events.index("paused") + 1 : events.index("resumed")]
    assert sorted(between) == ["end 0", "end 1"], events
    # one failure below the threshold: the swarm succeeded, with its results in member order
    progress = result.progress()
    assert (progress.state, progress.succeeded, progress.failed, progress.cancelled) == ("succeeded", 5, 1, 0)
    assert result.get(timeout=5) == expected
    # the members' outcomes are in the cell's result backend, where the reaper reconciles lost members from (R3)
    if d.cell.backend == "none":
        assert isinstance(d.client.backend, DisabledBackend)
    else:
        stored = [d.client.backend.get_task_meta(member_task_id(swarm_id, i))["status"] for i in range(MEMBERS)]
        assert stored == ["FAILURE" if i == FAILING else "SUCCESS" for i in range(MEMBERS)]
    # the success callback ran exactly once (the workers are idle), the error callback never
    assert d.callbacks(swarm_id) == [{"kind": "success", "value": expected}]


def _assert_cancelled(d: Deployment, swarm_id: str, result: SwarmResult) -> None:
    assert d.starts(swarm_id) == [0], d.events(swarm_id)  # the queued members never ran
    progress = result.progress()
    # member 0 was not terminated (cancel without terminate): it ran to its end and counts; 1 and 2 never ran
    counts = (progress.succeeded, progress.failed, progress.cancelled, progress.queued, progress.dispatched)
    assert (progress.state, *counts, progress.running) == ("cancelled", 1, 0, 2, 0, 0, 0), progress
    assert result.state == "REVOKED"
    with pytest.raises(SwarmCancelledError):
        result.get(timeout=5)
    assert d.callbacks(swarm_id) == []

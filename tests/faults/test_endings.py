"""S7, S8, R3: every way a member can end maps to exactly one outcome (prefork worker in a subprocess)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from celery import Celery
from celery.canvas import Signature
from faultkit import Faults, TokenSampler, finish, quiesce

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.engine.runtime import runtime_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def endings(app: Celery) -> list[tuple[Signature, str, object]]:
    """``(member, expected outcome, expected result or error type)``, one per way of ending."""
    sig = app.signature
    return [
        (sig("faults.value", args=(0,)), "s", 0),  # success
        (sig("faults.work", kwargs={"fail": True}), "f", "ValueError"),  # exception
        (sig("faults.retry_then_ok", args=(2,)), "s", "retried"),  # retries keep the token, then success
        (sig("faults.retry_forever"), "f", "KeyError"),  # retries exhausted
        (sig("faults.sleep", args=(30,)).set(soft_time_limit=0.5), "f", "SoftTimeLimitExceeded"),
        (sig("faults.sleep", args=(30,)).set(time_limit=1), "f", "TimeLimitExceeded"),  # hard, main process
        (sig("faults.not_registered"), "f", "NotRegistered"),  # unknown task name (consumer rejects it)
        (sig("faults.reject"), "f", "Reject"),  # Reject(requeue=False)
        (sig("faults.ignore"), "f", "Ignore"),  # Ignore with nothing stored: ends as revoked
        (sig("faults.replace"), "s", "r"),  # Task.replace(): the replacement carries the member's id
        (sig("faults.replace", kwargs={"chain": True}), "s", "c"),  # replaced by a chain
        (sig("faults.value", args=(11,)).set(expires=-1), "f", "TaskRevokedError"),  # expired before it ran
        (sig("faults.die_once"), "s", "survived"),  # retry_on_worker_lost: retried, keeps its token
    ]


def test_every_way_a_member_ends_maps_to_exactly_one_outcome(faults: Faults) -> None:
    # Given a prefork worker and a swarm with one member per way of ending
    app = faults.app()
    faults.worker("endings", concurrency=4)
    cases = endings(app)
    s = swarm(
        tasks=[member for member, _, _ in cases],
        success_callbacks=[app.signature("faults.callback")],
        config=SwarmConfig(max_concurrency=4, results="aligned"),
        is_swarm_closed=True,
        app=app,
    )
    swarm_id = s.freeze().id
    store = runtime_for(app).store
    # When it runs
    with TokenSampler(faults.probe, store.keys(swarm_id).tokens) as tokens:
        s.apply_async()
        finish(faults, app, swarm_id, timeout_s=60)
    quiesce(app, faults.probe)
    # Then each member has the one expected outcome, with its result or its error type
    expected_states = {i: outcome for i, (_, outcome, _) in enumerate(cases)}
    assert store.member_states(swarm_id) == expected_states
    errors = {i: json.loads(raw)["exc_type"] for i, raw in store.errors(swarm_id).items()}
    assert errors == {i: what for i, (_, outcome, what) in enumerate(cases) if outcome == "f"}
    results = [what if outcome == "s" else None for _, outcome, what in cases]
    meta = store.meta(swarm_id)
    assert Counter({"s": int(meta["succeeded"]), "f": int(meta["failed"])}) == Counter(expected_states.values())
    assert [cb["value"] for cb in faults.ran_callbacks(app, swarm_id)] == [results]
    assert 0 < tokens.peak <= 4

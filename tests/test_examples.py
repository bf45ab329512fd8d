"""Every example imports cleanly and runs end to end, so none can rot.

Each example's ``main()`` starts its own in-process worker; ``REDIS_URL`` points it at the test Redis
(flushed around each test), so no extra ``redis-server`` is started. The example apps read
``REDIS_URL`` when their ``tasks`` module is imported, so modules are imported inside the tests.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import itertools
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from celery.schedules import crontab

from mageflow_celery import SwarmResult
from mageflow_celery.testing.plugin import _restoring_current_app, in_ci

pytestmark = [pytest.mark.redis, pytest.mark.worker]

#: Every module of every example, with the third-party package it needs beyond the test deps.
MODULES = {
    "examples._local": None,
    "examples.file_processing.tasks": None,
    "examples.file_processing.run": None,
    "examples.dynamic_queue.tasks": None,
    "examples.dynamic_queue.run": None,
    "examples.batch_tolerance.tasks": None,
    "examples.batch_tolerance.run": None,
    "examples.asyncio_app.tasks": None,
    "examples.asyncio_app.run": None,
    "examples.asyncio_app.api": "fastapi",
    "examples.flask_app.tasks": None,
    "examples.flask_app.web": "flask",
    "examples.flask_app.run": "flask",
    "examples.django_app.tasks": None,
    "examples.django_app.web": "django",
    "examples.django_app.run": "django",
    "examples.per_customer.tasks": None,
    "examples.per_customer.run": None,
    "examples.shared_api.tasks": None,
    "examples.shared_api.run": None,
    "examples.beat_nightly.tasks": None,
    "examples.beat_nightly.run": None,
}


@pytest.fixture
def examples_env(mageflow_redis_url: str, mageflow_redis: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The examples use the test Redis and their own in-process worker."""
    monkeypatch.setenv("REDIS_URL", mageflow_redis_url)
    monkeypatch.delenv("EXAMPLES_EXTERNAL_WORKER", raising=False)
    with _restoring_current_app():
        yield


def load(name: str) -> ModuleType:
    """Import an example; its web framework is a test dependency: missing, it fails in CI (skips locally)."""
    framework = MODULES[name]
    if framework and importlib.util.find_spec(framework) is None:
        reason = f"{framework} (a test dependency) is not installed: pip install -e . --group test"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return importlib.import_module(name)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_example_module_imports(examples_env: None, name: str) -> None:
    assert load(name).__name__ == name


def test_file_processing_consolidates_every_file(examples_env: None) -> None:
    report = load("examples.file_processing.run").main()
    assert report == {"files": 8, "rows": 108, "total": 5266.0}


def test_dynamic_queue_runs_added_members_in_add_order_with_the_merged_message(examples_env: None) -> None:
    out = load("examples.dynamic_queue.run").main()
    assert out["results"] == [
        "opened sensor-feed (by ops)",
        "ALPHA from sensor-feed [high]",
        "BETA from sensor-feed [high]",
        "GAMMA from sensor-feed [high]",
        "DELTA from sensor-feed [low]",
        "EPSILON from sensor-feed [normal]",
    ]
    assert out["notice"] == "#data-team: stream done, 5 item(s) processed"


def test_batch_tolerance_reports_under_the_threshold_and_alerts_beyond_it(examples_env: None) -> None:
    run = load("examples.batch_tolerance.run")
    out = run.main()

    # Under the threshold: the success callback ran, with the 171 succeeded records only
    tolerated = out["tolerated"]
    assert tolerated["state"] == "succeeded"
    assert tolerated["report"] == {"processed": 171, "failed": 29, "amount": sum(i * 10 for i in range(200) if i % 7)}

    # Beyond it: the error callback got the summary, records were cancelled, no success callback ran
    stopped = out["stopped"]
    summary = stopped["summary"]
    assert stopped["state"] == "failed"
    assert summary["name"] == "tuesday-import"
    assert summary["failed"] >= 50
    assert summary["stop_after_n_failures"] == 50
    assert summary["cancelled"] > 0
    assert summary["failures"][0]["exc_type"] == "BadRecordError"
    assert stopped["alert"].startswith("ALERT batch swarm tuesday-import: ")
    progress = SwarmResult(summary["swarm_id"], app=run.app).progress()
    assert progress.state == "failed"
    assert progress.succeeded + progress.failed < 200  # some records never ran
    assert run.app.AsyncResult(f"{summary['swarm_id']}~s0").state == "PENDING"


def test_asyncio_flows_run_concurrently_within_the_limit(examples_env: None) -> None:
    out = load("examples.asyncio_app.run").main()
    files = out["files"]
    expected = [f"file_{i}.txt:{hashlib.sha256(f'file_{i}.txt'.encode()).hexdigest()[:8]}" for i in range(20)]
    assert files["results"] == expected
    assert 1 <= files["peak_in_flight"] <= 5
    assert out["dynamic"] == ["initial task saw swarm_data", "new task got hello"]


def test_fastapi_app_starts_a_swarm_and_reports_its_progress(examples_env: None) -> None:
    api = load("examples.asyncio_app.api")
    out = api.main()
    assert out["progress"]["state"] == "succeeded"
    assert (out["progress"]["succeeded"], out["progress"]["total"]) == (6, 6)
    assert out["progress"]["swarm_id"] == out["swarm_id"]

    from fastapi.testclient import TestClient

    with TestClient(api.api) as client:
        assert client.get("/swarms/no-such-swarm").status_code == 404
        assert client.post("/swarms", json={"files": []}).status_code == 422


def test_per_customer_swarms_nest_in_one_outer_swarm(examples_env: None) -> None:
    out = load("examples.per_customer.run").main()
    assert out["per_customer"] == [
        [f"acme/{i}@2026-11-30" for i in range(5)],
        [f"globex/{i}@2026-11-30" for i in range(3)],
        [f"initech/{i}@2026-11-30" for i in range(4)],
        None,
    ]
    assert out["members"] == ["succeeded", "succeeded", "succeeded", "failed"]
    assert out["summary"] == "run 2026-11-30: records synced per customer [5, 3, 4, 'failed']"


def test_two_tenants_share_one_pool_and_the_small_one_is_not_starved(examples_env: None) -> None:
    out = load("examples.shared_api.run").main()
    order = out["order"]
    assert sorted(order) == ["S"] * 5 + ["b"] * 40
    # The small tenant's calls interleave with the big one's (round robin), not all after them
    positions = [i for i, who in enumerate(order) if who == "S"]
    assert all(later - earlier <= 3 for earlier, later in itertools.pairwise(positions)), order
    assert out["big_left"] >= 20, order
    # And the pool's limit and rate held over both swarms (20/s: starts at least 50 ms apart on average)
    assert out["overlap"] <= 2
    assert out["rate"] <= 20 * 1.1


def test_flask_view_starts_a_swarm_and_reports_its_progress(examples_env: None) -> None:
    out = load("examples.flask_app.run").main()
    assert out["progress"]["state"] == "succeeded"
    assert (out["progress"]["succeeded"], out["progress"]["total"]) == (7, 7)
    assert [t["thumbnail"] for t in out["thumbnails"]] == [f"IMG_{i:04d}_256px.png" for i in range(7)]
    assert out["gallery"] == "album 'holidays' published with 7 thumbnail(s), first IMG_0000_256px.png"

    web = load("examples.flask_app.web").web
    client = web.test_client()
    assert client.get("/swarms/no-such-swarm").status_code == 404
    for bad in ({"album": "a"}, {"images": ["x.jpg"]}, {"album": "a", "images": "x.jpg"}, [1]):
        assert client.post("/swarms", json=bad).status_code == 400, bad
    assert client.post("/swarms", data="not json").status_code == 400


def test_django_view_starts_a_swarm_on_commit_and_reports_its_progress(examples_env: None) -> None:
    out = load("examples.django_app.run").main()
    assert out["progress"]["state"] == "succeeded"
    assert (out["progress"]["succeeded"], out["progress"]["total"]) == (5, 5)
    assert out["message_ids"] == [f"<welcome-v2.user{i}.at.example.com@mail.example>" for i in range(5)]
    assert out["onboarded"] == "cohort 2026-W48: 5 welcome email(s) sent"

    from django.test import Client

    assert Client().get("/swarms/no-such-swarm").status_code == 404


def test_beat_entries_start_a_new_swarm_per_firing(examples_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    run = load("examples.beat_nightly.run")
    tasks = load("examples.beat_nightly.tasks")

    # The add_periodic_task entry: one firing runs the whole batch and its report
    out = run.main()
    assert [e["account"] for e in out["exports"]] == tasks.ACCOUNTS
    assert out["report"] == "nightly export: 10 accounts, 3330 rows"

    # The hand-written beat_schedule entry of the README, with an extra run kwarg
    monkeypatch.setitem(
        tasks.app.conf.beat_schedule,
        "by-hand",
        {
            "task": "mageflow.swarm",
            "schedule": crontab(hour=2, minute=0),
            "kwargs": {**tasks.nightly_batch.kwargs, "destination": "s3://archive"},
        },
    )
    with run.local_stack(tasks.app):
        swarm_id = run.fire("by-hand")
        exports = SwarmResult(swarm_id, app=tasks.app).get(timeout=60)
    assert swarm_id != out["swarm_id"]
    assert [e["path"] for e in exports] == [f"s3://archive/{a}.parquet" for a in tasks.ACCOUNTS]

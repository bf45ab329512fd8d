"""O2: ``/metrics`` and ``collector(app)`` in Prometheus's text format, parsed with prometheus_client's own
parser, against what the test ran."""

from __future__ import annotations

import pytest
from celery import Celery
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from mageflow_celery import SwarmConfig, get_pool, install, set_pool_limit, swarm
from mageflow_celery.dashboard import create_app
from mageflow_celery.metrics import collector
from mageflow_celery.ops import inspect
from mageflow_celery.testing import find_free_port, wait_for
from mageflow_celery.testing.plugin import WorkerFactory

pytestmark = [pytest.mark.redis]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "prefix"))
            out[(sample.name, labels)] = sample.value
    return out


@pytest.mark.worker
def test_metrics_count_swarms_members_and_handoffs_of_what_ran(
    mageflow_app: Celery, mageflow_worker: WorkerFactory
) -> None:
    # Given a finished swarm (2 succeeded, 1 failed) and a running one with 1 member dispatched, 2 queued
    @mageflow_app.task(name="m.work", shared=False)
    def work(x: int) -> int:
        if x < 0:
            raise ValueError(x)
        return x

    mageflow_worker(concurrency=2)
    done = swarm(tasks=[work.s(1), work.s(-1), work.s(2)], is_swarm_closed=True, app=mageflow_app).apply_async()
    assert done.get(timeout=20) == [1, 2]
    wait_for(lambda: inspect.metrics_snapshot(mageflow_app).swarms_finished_total["succeeded"] == 1)
    stuck = [work.s(i).set(queue="nowhere") for i in range(3)]
    swarm(tasks=stuck, config=SwarmConfig(max_concurrency=1), app=mageflow_app).apply_async()
    # And a pool of 4 tokens (3 held by members no worker consumes) and an unlimited one (1 held)
    set_pool_limit(mageflow_app, "openai", 4, rate_limit="10/s")
    held = [work.s(i).set(queue="nowhere") for i in range(3)]
    swarm(tasks=held, config=SwarmConfig(pool="openai", max_concurrency=3), app=mageflow_app).apply_async()
    swarm(tasks=[work.s(9).set(queue="nowhere")], config=SwarmConfig(pool="s3"), app=mageflow_app).apply_async()
    wait_for(lambda: get_pool(mageflow_app, "openai").in_use == 3)  # the rate admits one per 100 ms

    # When /metrics is scraped
    with TestClient(create_app(mageflow_app, read_only=True)) as client:
        answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    got = _samples(answer.text)

    # Then every family has the values of what ran
    assert got[("mageflow_up", ())] == 1
    assert got[("mageflow_swarms", (("state", "running"),))] == 3
    assert got[("mageflow_swarms", (("state", "paused"),))] == 0
    assert got[("mageflow_swarms_finished_total", (("outcome", "succeeded"),))] == 1
    assert got[("mageflow_swarms_finished_total", (("outcome", "failed"),))] == 0
    assert got[("mageflow_members", (("state", "queued"),))] == 2
    assert got[("mageflow_members", (("state", "dispatched"),))] == 1 + 3 + 1
    assert got[("mageflow_members_admitted_total", ())] == 4 + 3 + 1
    assert got[("mageflow_members_finished_total", (("outcome", "succeeded"),))] == 2
    assert got[("mageflow_members_finished_total", (("outcome", "failed"),))] == 1
    assert got[("mageflow_handoff_latency_seconds_count", ())] == 3
    assert got[("mageflow_handoff_latency_seconds_bucket", (("le", "+Inf"),))] == 3
    assert got[("mageflow_handoff_latency_seconds_sum", ())] >= 0
    assert got[("mageflow_pool_tokens_in_use", (("pool", "openai"),))] == 3
    assert got[("mageflow_pool_tokens_in_use", (("pool", "s3"),))] == 1
    assert got[("mageflow_pool_limit", (("pool", "openai"),))] == 4
    assert ("mageflow_pool_limit", (("pool", "s3"),)) not in got  # unlimited: no limit sample
    # And the reaper's only actions were the rate's wakes (two members admitted after the first)
    actions = {key[1]: value for key, value in got.items() if key[0] == "mageflow_reaper_actions_total"}
    assert list(actions) == [(("action", "woken"),)] and actions[(("action", "woken"),)] >= 2
    # And every sample carries the key prefix
    assert 'mageflow_up{prefix="mageflow"} 1.0' in answer.text


def test_the_collector_registers_without_reading_redis_and_reports_it_down(mageflow_redis_url: str) -> None:
    # Given an app whose state Redis is not there
    app = Celery("down", set_as_current=False)
    install(app, redis_url=f"redis://127.0.0.1:{find_free_port()}/0")
    registry = CollectorRegistry()

    # When its collector is registered and scraped
    registry.register(collector(app))
    got = _samples(generate_latest(registry).decode())

    # Then registering read nothing, and the scrape says the state is down instead of failing
    assert got == {("mageflow_up", ()): 0}
    app.close()

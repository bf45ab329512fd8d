"""Members and callbacks on any kombu transport: RabbitMQ as the broker (state and results on Redis).

Needs a RabbitMQ server on 127.0.0.1:5672 (guest/guest, or ``MAGEFLOW_TEST_AMQP_URL``): skipped without
one, except in CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from celery import Celery
from faultkit import RECOVERY, Faults, TokenSampler, assert_counted_once, finish
from kombu import Connection

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import in_ci

pytestmark = [pytest.mark.worker, pytest.mark.redis, pytest.mark.slow]

AMQP_URL = os.environ.get("MAGEFLOW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture
def amqp_url() -> str:
    try:
        with Connection(AMQP_URL, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        reason = f"RabbitMQ at {AMQP_URL} is unreachable: {exc!r}"
        if in_ci():
            pytest.fail(f"{reason} (CI is set: the RabbitMQ test must run)", pytrace=False)
        pytest.skip(reason)
    return AMQP_URL


@pytest.fixture
def queue(amqp_url: str) -> Iterator[str]:
    """A queue of this test only, deleted afterwards (RabbitMQ keeps queues between runs)."""
    name = f"mageflow-faults-{uuid.uuid4().hex[:12]}"
    yield name
    with Connection(amqp_url) as conn:
        conn.default_channel.queue_delete(name)


def ready_in_queue(app: Celery, queue: str) -> int:
    with app.connection_for_write() as conn:
        _, count, _ = conn.default_channel.queue_declare(queue, passive=True)
        return int(count)


def test_h_a_swarm_runs_on_rabbitmq_and_a_lost_pool_process_reruns_its_member_once(
    faults: Faults, amqp_url: str, queue: str
) -> None:
    # Given RabbitMQ as the broker, a prefork worker with acks_late + reject_on_worker_lost,
    # and a swarm whose member 3 kills its pool process once
    faults.broker = amqp_url
    conf = {"task_default_queue": queue, "task_acks_late": True, "task_reject_on_worker_lost": True}
    app = faults.app(**conf)
    faults.worker("h", concurrency=2, **conf)
    members = [
        app.signature("faults.work", kwargs={"die": "once" if i == 3 else "", "fail": i == 5}) for i in range(12)
    ]
    s = swarm(
        tasks=members,
        success_callbacks=[app.signature("faults.callback")],
        config=SwarmConfig(max_concurrency=3, **RECOVERY),
        is_swarm_closed=True,
        app=app,
    )
    swarm_id = s.freeze().id
    # When it runs
    with TokenSampler(faults.probe, runtime_for(app).store.keys(swarm_id).tokens) as tokens:
        s.apply_async()
        finish(faults, app, swarm_id, timeout_s=60)

    # Then RabbitMQ redelivered member 3, every member is counted once and the callback ran once
    def idle() -> bool:
        active = app.control.inspect(timeout=0.5).active() or {}
        return ready_in_queue(app, queue) == 0 and not any(active.values())

    wait_for(idle, timeout_s=30, message="the queue to drain")
    assert faults.starts(swarm_id).count(3) == 2
    assert_counted_once(app, swarm_id, 12, set(range(12)) - {5}, failed=1)
    assert [cb["value"] for cb in faults.ran_callbacks(app, swarm_id)] == [[i for i in range(12) if i != 5]]
    assert 0 < tokens.peak <= 3

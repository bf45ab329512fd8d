"""The start gate on the consumer's event loop (``worker/gate.py``, ``AsyncGate``): receipts pipelined on a
connection of their own, each message handed on once its verdict is read; when that connection fails, a
reply errs or none comes, the waiting messages are gated again, blocking, each taking over the lease its
lost call may have taken (D5 kept). Real Redis; a real kombu hub, or a real in-process worker."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from kombu.asynchronous import Hub

from mageflow_celery import SwarmConfig, swarm
from mageflow_celery.engine.members import LEASE_HEADER
from mageflow_celery.engine.runtime import Runtime, runtime_for
from mageflow_celery.keys import MemberRef, member_task_id, parse_member_task_id
from mageflow_celery.state.receipts import CLIENT_NAME
from mageflow_celery.testing import wait_for
from mageflow_celery.testing.plugin import WorkerFactory
from mageflow_celery.worker import gate as gate_module
from mageflow_celery.worker.gate import AsyncGate, GateStep, gate

pytestmark = [pytest.mark.redis]


@pytest.fixture(autouse=True)
def _echo(mageflow_app: Celery) -> None:
    @mageflow_app.task(name="ga.echo", shared=False)
    def echo(i: int) -> int:
        return i


@pytest.fixture
def hub() -> Iterator[Hub]:
    h = Hub()
    try:
        yield h
    finally:
        h.close()


def _all_in(rt: Runtime, swarm_id: str, n: int, letter: str, message: str) -> None:
    """Wait until all ``n`` members of the swarm are in state ``letter`` (``d`` dispatched, ``r`` running)."""
    wait_for(lambda: sorted(rt.store.member_states(swarm_id).values()) == [letter] * n, message=message)


def _dispatched(app: Celery, n: int) -> str:
    """A swarm of ``n`` members, all dispatched (published, no worker consumes them); its id."""
    echo = app.tasks["ga.echo"]
    s = swarm(tasks=[echo.s(i) for i in range(n)], config=SwarmConfig(max_concurrency=n), app=app)
    result = s.apply_async()
    _all_in(runtime_for(app), str(result.id), n, "d", "dispatch")
    return str(result.id)


class _Gated:
    """Submits deliveries of a swarm's members to a gate and records the verdicts it hands on."""

    def __init__(self, agate: AsyncGate, swarm_id: str) -> None:
        self.agate = agate
        self.rt = agate.rt
        self.swarm_id = swarm_id
        self.verdicts: dict[int, str] = {}
        self.headers: dict[int, dict[str, Any]] = {}

    @classmethod
    def start(cls, app: Celery, hub: Hub, n: int) -> _Gated:
        """A new gate on ``hub``, for a new swarm of ``n`` dispatched members."""
        return cls(AsyncGate(runtime_for(app), hub), _dispatched(app, n))

    def ref(self, index: int) -> MemberRef:
        ref = parse_member_task_id(member_task_id(self.swarm_id, index))
        assert ref is not None
        return ref

    def submit(self, index: int) -> None:
        self.headers[index] = headers = {"id": member_task_id(self.swarm_id, index)}
        self.agate.submit(self.ref(index), headers, lambda verdict: self.verdicts.__setitem__(index, verdict))

    def gate_blocking(self, index: int) -> str:
        """A new delivery of the member, gated with the blocking call (as a worker without the hub does)."""
        return gate(self.rt, self.ref(index), {"id": member_task_id(self.swarm_id, index)})

    def running(self, n: int) -> None:
        """Wait until Redis ran the receipts of all ``n`` members (whether or not their replies were read)."""
        _all_in(self.rt, self.swarm_id, n, "r", "the receipts to run")

    def run(self, hub: Hub, n: int) -> None:
        deadline = time.monotonic() + 20
        while len(self.verdicts) < n:
            assert time.monotonic() < deadline, f"verdicts so far: {self.verdicts}"
            hub.run_once()


def _gate_connection(client: redis.Redis) -> dict[str, Any]:
    found = [c for c in client.client_list() if c.get("name") == CLIENT_NAME]
    assert len(found) == 1, found
    return found[0]


def _kill_gate_connection(client: redis.Redis) -> None:
    client.client_kill_filter(_id=_gate_connection(client)["id"])


def _leases_held(gated: _Gated) -> None:
    """Every member gated ``ok`` is running, holding the token its message carries."""
    for index, verdict in gated.verdicts.items():
        assert verdict == "ok"
        owner = gated.rt.store.owner(gated.swarm_id, index)
        assert owner is not None and owner.token == gated.headers[index][LEASE_HEADER]
    states = gated.rt.store.member_states(gated.swarm_id)
    assert all(states[index] == "r" for index in gated.verdicts)


def test_receipts_are_pipelined_and_handed_on_in_order(mageflow_app: Celery, hub: Hub) -> None:
    gated = _Gated.start(mageflow_app, hub, 5)
    calls = gated.rt.store.calls

    for index in range(5):
        gated.submit(index)
    assert gated.verdicts == {}  # nothing waited for its reply
    gated.run(hub, 5)

    assert list(gated.verdicts) == [0, 1, 2, 3, 4]
    _leases_held(gated)
    assert gated.agate.sent == 5 and gated.rt.store.calls == calls + 5
    gated.agate.close()


def test_a_copy_gated_again_is_a_duplicate(mageflow_app: Celery, hub: Hub) -> None:
    # The control for the next test: without taking over its own lease, a member gated twice is a dup
    gated = _Gated.start(mageflow_app, hub, 1)
    gated.submit(0)
    gated.run(hub, 1)

    assert gated.gate_blocking(0) == "dup"
    gated.agate.close()


def test_replies_lost_after_redis_ran_the_receipts_keep_the_deliveries_their_leases(
    mageflow_app: Celery, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gate_module, "REPLY_TIMEOUT_S", 0.2)
    monkeypatch.setattr(gate_module, "CHECK_S", 0.05)
    # Given five receipts sent, which Redis ran (the members are running)
    gated = _Gated.start(mageflow_app, hub, 5)
    for index in range(5):
        gated.submit(index)
    gated.running(5)

    # When their replies are lost: the gate's socket is swapped for a silent one before it reads them
    agate = gated.agate
    assert agate._channel is not None
    silent, _peer = socket.socketpair()
    os.dup2(silent.fileno(), agate._channel.fileno())
    gated.run(hub, 5)

    # Then the gate gave the connection up, gated each delivery again, blocking, and each took over the
    # lease its lost call took (a fresh receipt would be a duplicate: the test above)
    assert list(gated.verdicts) == [0, 1, 2, 3, 4]
    _leases_held(gated)
    # and a later delivery is pipelined on a new connection
    wait_for(lambda: time.monotonic() >= agate._closed_until, message="the reopening delay")
    swarm2 = _dispatched(mageflow_app, 1)
    gated2 = _Gated(agate, swarm2)
    gated2.submit(0)
    gated2.run(hub, 1)
    assert gated2.verdicts == {0: "ok"} and agate.sent == 6
    agate.close()
    silent.close()
    _peer.close()


def test_a_connection_killed_before_redis_ran_the_receipts_gates_them_again(
    mageflow_app: Celery, mageflow_redis_url: str, hub: Hub
) -> None:
    # Given a gate whose connection is open, and Redis holding every write back for a while
    client = redis.Redis.from_url(mageflow_redis_url)
    gated = _Gated.start(mageflow_app, hub, 3)
    gated.submit(0)
    gated.run(hub, 1)
    client.client_pause(1000, all=False)

    # When two receipts are sent and the server kills the gate's connection before running them
    gated.submit(1)
    gated.submit(2)
    _kill_gate_connection(client)
    gated.run(hub, 3)

    # Then both were gated again with the blocking call once Redis took writes again, in order
    assert list(gated.verdicts) == [0, 1, 2]
    _leases_held(gated)
    gated.agate.close()


def test_a_receipt_redis_refuses_is_gated_again(mageflow_app: Celery, mageflow_redis_url: str, hub: Hub) -> None:
    # Given a gate with its connection open, then Redis forgets the scripts (as after a restart)
    gated = _Gated.start(mageflow_app, hub, 3)
    gated.submit(0)
    gated.run(hub, 1)
    redis.Redis.from_url(mageflow_redis_url).script_flush()

    # When two more deliveries are gated: Redis answers NOSCRIPT
    gated.submit(1)
    gated.submit(2)
    gated.run(hub, 3)

    # Then both were gated with the blocking call (which loads the script again), in order
    assert list(gated.verdicts) == [0, 1, 2]
    _leases_held(gated)
    gated.agate.close()


def test_a_receipt_without_reply_is_given_up_and_gated_again(
    mageflow_app: Celery, mageflow_redis_url: str, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gate_module, "REPLY_TIMEOUT_S", 0.2)
    monkeypatch.setattr(gate_module, "CHECK_S", 0.05)
    client = redis.Redis.from_url(mageflow_redis_url)
    gated = _Gated.start(mageflow_app, hub, 2)
    gated.submit(0)
    gated.run(hub, 1)
    first = _gate_connection(client)["id"]

    # Given Redis holds the gate's writes back for a while (the reply does not come in time)
    client.client_pause(1500, all=False)
    gated.submit(1)
    gated.run(hub, 2)

    # Then the gate gave that connection up and gated the delivery again once Redis answered
    assert gated.verdicts == {0: "ok", 1: "ok"}
    _leases_held(gated)
    assert all(c["id"] != first for c in client.client_list() if c.get("name") == CLIENT_NAME)
    gated.agate.close()


def test_a_redelivery_after_the_consumer_stopped_takes_over_the_lease_its_receipt_took(
    mageflow_app: Celery, hub: Hub
) -> None:
    # Given two receipts that ran in Redis, not yet answered, when the consumer stops
    gated = _Gated.start(mageflow_app, hub, 2)
    gated.submit(0)
    gated.submit(1)
    gated.running(2)
    gated.agate.close()

    # When the broker delivers the messages again to this worker
    verdicts = [gated.gate_blocking(index) for index in range(2)]

    # Then they run (no duplicate to wait out the lease for), and nothing was handed on from the closed gate
    assert verdicts == ["ok", "ok"]
    assert gated.verdicts == {}


@pytest.mark.worker
@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_a_worker_gates_on_its_event_loop(mageflow_app: Celery, mageflow_worker: WorkerFactory, pool: str) -> None:
    worker = mageflow_worker(pool=pool, concurrency=2)
    steps = [s for s in worker.consumer.steps if isinstance(s, GateStep)]
    assert len(steps) == 1 and steps[0].async_gate is not None
    echo = mageflow_app.tasks["ga.echo"]

    s = swarm(tasks=[echo.s(i) for i in range(40)], config=SwarmConfig(max_concurrency=3), is_swarm_closed=True)
    assert sorted(s.apply_async().get(timeout=30)) == list(range(40))
    assert steps[0].async_gate.sent >= 40

"""The lease keeper's memory of deliveries it let go (no Redis: nothing here renews a lease).

When a pool process dies and Celery requeues the member's message (``reject_on_worker_lost``), the next
delivery may take the lease over at once, with the token of the delivery this worker no longer holds.
That token must still be known when the message comes back, however late: the renewal tick that
forgets let-go deliveries must not forget their tokens with them (SPEC D5, R3).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery

from mageflow_celery import install
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.worker.lease import LeaseKeeper


class _Request:
    """A request Celery no longer tracks: not in the worker state, its message acknowledged or rejected."""

    def __init__(self, task_id: str) -> None:
        self.id = task_id
        self.acknowledged = True


class _Running(_Request):
    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.acknowledged = False


@pytest.fixture
def keeper() -> Iterator[LeaseKeeper]:
    app = Celery("lease-unit", set_as_current=False)
    install(app, redis_url="redis://127.0.0.1:1/0")
    yield LeaseKeeper(runtime_for(app))
    app.close()


def test_a_let_go_delivery_is_remembered_after_the_tick_that_forgets_it(keeper: LeaseKeeper) -> None:
    # Given a delivery of member 3 this worker held and let go (its process died, the message was requeued)
    gone = _Request("s~3~a")
    keeper.track("s", 3, "tok-3", gone)
    assert keeper.released_token("s", 3) == "tok-3"
    # When the renewal tick runs before the message comes back (it forgets the delivery)
    assert keeper.held() == {}
    # Then the next delivery of member 3 still learns the token it may take over
    assert keeper.released_token("s", 3) == "tok-3"
    # And no other member inherits it
    assert keeper.released_token("s", 4) == ""
    assert keeper.released_token("t", 3) == ""


def test_a_delivery_still_held_gives_no_token_away(keeper: LeaseKeeper) -> None:
    # Given a delivery still running (its message not acknowledged; the keeper holds requests weakly)
    running = _Running("s~1~a")
    keeper.track("s", 1, "tok-1", running)
    # When the tick runs
    assert keeper.held() == {"s": [(1, "tok-1")]}
    # Then a copy of that member received now cannot take the lease over
    assert keeper.released_token("s", 1) == ""
    assert running.acknowledged is False


def test_the_let_go_copy_of_a_member_is_found_among_its_deliveries(keeper: LeaseKeeper) -> None:
    # Given two deliveries of member 2 (the first let go, a second one running) among many other members
    for i in range(100):
        keeper.track("s", 100 + i, f"tok-{100 + i}", _Running(f"s~{100 + i}~a"))
    running = _Running("s~2~b")
    keeper.track("s", 2, "tok-2a", _Request("s~2~a"))
    keeper.track("s", 2, "tok-2b", running)
    # Then the gate learns the let-go delivery's token, before and after the tick forgets it
    assert keeper.released_token("s", 2) == "tok-2a"
    held = keeper.held()
    assert (2, "tok-2b") in held["s"] and (2, "tok-2a") not in held["s"]
    assert keeper.released_token("s", 2) == "tok-2a"
    # And once the running one is let go too and forgotten, its token is the one remembered
    running.acknowledged = True
    keeper.held()
    assert keeper.released_token("s", 2) == "tok-2b"

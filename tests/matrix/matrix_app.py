"""The Celery app of the deployment matrix, also run as ``celery -A matrix_app worker`` subprocesses.

A worker subprocess reads its cell from the environment variable ``MAGEFLOW_MATRIX_CELL``: JSON with
``conf`` (every Celery setting of the cell: broker, result backend, serializers, queue ...), ``state``
(the state Redis URL given to ``install``) and ``probe`` (a plain Redis where the tasks record what they
do). The test process builds its client app with :func:`build` from the same values, so client and
worker are configured alike.

Tasks record in the probe Redis, per swarm id (keys ``matrix:*``), independently of the library's state:

``matrix:events:<swarm>``
    one list of ``start <i>`` / ``end <i>`` of every member execution, and the test's own markers
    (``paused``, ``resumed``): the order of events is Redis's order of the pushes;
``matrix:gate:<swarm>:<i>``
    a member waits (BLPOP) for the test to push its gate before it ends;
``matrix:cb:<swarm>``
    one entry per callback execution: the value it received, pickled (so the test compares exact types:
    tuples, bytes, datetimes, whatever the cell's serializer carries).
"""

from __future__ import annotations

import faulthandler
import json
import os
import pickle
import signal
import socket
from typing import Any

import redis
from celery import Celery, Task, signals

from mageflow_celery import install
from mageflow_celery.keys import MEMBER_SEP, parse_member_task_id

CELL_ENV = "MAGEFLOW_MATRIX_CELL"
#: The longest a member waits for its gate (it then fails, so a broken run ends with an assertion).
GATE_WAIT_S = 60

_probe: dict[str, Any] = {}


def probe_key(kind: str, swarm_id: str, *rest: object) -> str:
    """``matrix:<kind>:<swarm_id>[:<rest>...]``."""
    return ":".join(["matrix", kind, swarm_id, *map(str, rest)])


def ready_key(hostname: str) -> str:
    """Set by a worker once it consumes (``worker_ready``)."""
    return f"matrix:ready:{hostname}"


def probe_client(app: Celery) -> redis.Redis:
    """This process's client of the probe Redis (a forked pool process makes its own)."""
    pid = os.getpid()
    if _probe.get("pid") != pid:
        client = redis.Redis.from_url(app.conf.mageflow_matrix_probe, client_name="matrix-probe")
        _probe.update(pid=pid, client=client)
    client: redis.Redis = _probe["client"]
    return client


def build(conf: dict[str, Any], state: str, probe: str) -> Celery:
    """The app of a cell: ``conf`` applied, mageflow installed on ``state``, the matrix tasks registered."""
    app = Celery("matrix", set_as_current=False)
    app.conf.update(conf, mageflow_matrix_probe=probe)
    install(app, redis_url=state)
    _register(app)
    return app


def _register(app: Celery) -> None:
    @app.task(name="matrix.member", bind=True, shared=False)
    def member(self: Task, fail: bool = False, label: str = "", run: Any = None) -> dict[str, Any]:
        """Records its start, waits for its gate, records its end; returns what it was given (or fails)."""
        ref = parse_member_task_id(self.request.id)
        assert ref is not None, self.request.id
        r = probe_client(app)
        events = probe_key("events", ref.swarm_id)
        r.rpush(events, f"start {ref.index}")
        try:
            if r.blpop([probe_key("gate", ref.swarm_id, ref.index)], timeout=GATE_WAIT_S) is None:
                raise TimeoutError(f"member {ref.index}: its gate was never opened")
        finally:
            r.rpush(events, f"end {ref.index}")
        if fail:
            raise ValueError(f"member {ref.index} fails on purpose")
        return {"i": ref.index, "label": label, "run": run}

    @app.task(name="matrix.callback", bind=True, shared=False)
    def callback(self: Task, value: Any, kind: str = "success") -> None:
        """A success or error callback: records the value it received."""
        swarm_id = str(self.request.id).rsplit(MEMBER_SEP, 1)[0]
        probe_client(app).rpush(probe_key("cb", swarm_id), pickle.dumps({"kind": kind, "value": value}))


def _from_env() -> Celery | None:
    raw = os.environ.get(CELL_ENV)
    if not raw:
        return None
    cell = json.loads(raw)
    return build(cell["conf"], cell["state"], cell["probe"])


app = _from_env()
faulthandler.register(signal.SIGUSR2, all_threads=True)  # stack dumps of a stuck worker, into its log


@signals.worker_ready.connect
def _announce_ready(sender: Any = None, **_: Any) -> None:
    """Tell the test this worker consumes."""
    if app is not None and sender is not None:
        probe_client(app).set(ready_key(sender.hostname), f"{socket.gethostname()} {os.getpid()}")

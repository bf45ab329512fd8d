"""The Celery app of the fault-injection tests, also run as ``celery -A faults_app worker`` subprocesses.

A worker subprocess reads its settings from environment variables set by the tests:

``MAGEFLOW_FAULTS_BROKER`` / ``_BACKEND`` / ``_STATE`` / ``_PROBE``
    broker, result backend, swarm state Redis, and the standalone Redis where tasks record what they do;
``MAGEFLOW_FAULTS_CONF``
    JSON of extra Celery settings (e.g. ``{"task_acks_late": true}``).

Tasks record every execution in the probe Redis (keys ``faults:*``, per swarm id), so the tests can
count executions, callback runs and overlapping executions independently of the library's own state.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import time
from typing import Any

import redis
from celery import Celery, Task, signals
from celery.exceptions import Ignore, Reject

from mageflow_celery import install, swarm
from mageflow_celery.keys import MEMBER_SEP, parse_member_task_id
from mageflow_celery.signals import swarm_finished

ENV_PREFIX = "MAGEFLOW_FAULTS_"
#: The longest a gated task waits for its gate before giving up (it then fails).
GATE_WAIT_S = 60.0

_probe: dict[str, Any] = {}


def probe_key(kind: str, swarm_id: str) -> str:
    """``faults:<kind>:<swarm_id>``: ``start``/``ex`` (lists), ``gate`` (string), ``cb`` (list)."""
    return f"faults:{kind}:{swarm_id}"


def _probe_client(app: Celery) -> redis.Redis:
    pid = os.getpid()
    if _probe.get("pid") != pid:
        client = redis.Redis.from_url(app.conf.mageflow_faults_probe, client_name="faults-task-probe")
        _probe.update(pid=pid, client=client)
    client: redis.Redis = _probe["client"]
    return client


def build(
    broker: str, backend: str, state: str, probe: str, conf: dict[str, Any] | None = None, installed: bool = True
) -> Celery:
    """The app, with mageflow installed on ``state`` (unless ``installed`` is false: a worker whose project
    forgot ``install(app)``) and the test tasks registered."""
    app = Celery("faults", set_as_current=False)
    app.conf.update(
        broker_url=broker,
        result_backend=backend,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=3600,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        mageflow_faults_probe=probe,
        mageflow_reaper_interval_s=0.5,
    )
    app.conf.update(conf or {})
    if installed:
        install(app, redis_url=state)
    _register(app)
    return app


def _register(app: Celery) -> None:
    @app.task(name="faults.work", bind=True, shared=False)
    def work(self: Task, hold_s: float = 0.0, gate: bool = False, die: str = "", fail: bool = False) -> int:
        """A member: records its start and end; waits ``hold_s`` or for its swarm's gate; may kill its process."""
        parsed = parse_member_task_id(self.request.id)
        assert parsed is not None
        swarm_id, index = parsed.swarm_id, parsed.index
        r = _probe_client(app)
        start = time.time()
        r.rpush(probe_key("start", swarm_id), f"{index} {start} {os.getpid()}")
        if die == "always" or (die == "once" and r.set(f"faults:died:{self.request.id}", 1, nx=True)):
            os.kill(os.getpid(), signal.SIGKILL)
        deadline = time.monotonic() + GATE_WAIT_S
        while gate and not r.exists(probe_key("gate", swarm_id)):
            if time.monotonic() > deadline:
                raise TimeoutError("gate never opened")
            time.sleep(0.02)
        if hold_s:
            time.sleep(hold_s)
        if fail:
            raise ValueError(f"member {index} fails")
        r.rpush(probe_key("ex", swarm_id), f"{index} {start} {time.time()}")
        return index

    _register_endings(app)
    _register_worker_loss(app)
    _register_creators(app)

    @app.task(name="faults.callback", bind=True, shared=False)
    def callback(self: Task, value: Any, kind: str = "success") -> None:
        """A success or error callback: records the value it received."""
        swarm_id = str(self.request.id).rsplit(MEMBER_SEP, 1)[0]
        _probe_client(app).rpush(probe_key("cb", swarm_id), json.dumps({"kind": kind, "value": value}))


def _register_endings(app: Celery) -> None:
    """Tasks that end in each of the ways Celery has (S7, S8, R3)."""

    @app.task(name="faults.retry_then_ok", bind=True, shared=False, max_retries=5, default_retry_delay=0)
    def retry_then_ok(self: Task, times: int) -> str:
        if self.request.retries < times:
            raise self.retry()
        return "retried"

    @app.task(name="faults.retry_forever", bind=True, shared=False, max_retries=1, default_retry_delay=0)
    def retry_forever(self: Task) -> None:
        raise self.retry(exc=KeyError("still failing"))

    @app.task(name="faults.sleep", shared=False)
    def sleep(seconds: float) -> None:
        time.sleep(seconds)

    @app.task(name="faults.reject", shared=False)
    def reject() -> None:
        raise Reject("bad message", requeue=False)

    @app.task(name="faults.ignore", shared=False)
    def ignore() -> None:
        raise Ignore()

    @app.task(name="faults.replace", bind=True, shared=False)
    def replace(self: Task, chain: bool = False) -> Any:
        if chain:
            return self.replace(app.signature("faults.sleep", args=(0.5,)) | app.signature("faults.value", args=("c",)))
        return self.replace(app.signature("faults.value", args=("r",)))

    @app.task(name="faults.value", shared=False)
    def value(*args: Any) -> Any:
        return args[-1]

    _register_handoffs(app)


def _register_handoffs(app: Celery) -> None:
    """Members that hand their token on through the broker: a chain step, a retry, a replacement (D5)."""

    @app.task(name="faults.step", bind=True, shared=False)
    def step(self: Task, *args: Any) -> int:
        """A chain member's step: records ``index step`` of its execution."""
        ref = parse_member_task_id(self.request.id)
        assert ref is not None
        _probe_client(app).rpush(probe_key("steps", ref.swarm_id), f"{ref.index} {ref.step}")
        return ref.index

    @app.task(name="faults.retry_later", bind=True, shared=False, ignore_result=True, max_retries=3)
    def retry_later(self: Task) -> str:
        """Records its attempt, then retries once on the queue ``later`` (its RETRY is never stored)."""
        ref = parse_member_task_id(self.request.id)
        assert ref is not None
        _probe_client(app).rpush(probe_key("attempts", ref.swarm_id), f"{ref.index} {self.request.retries}")
        if self.request.retries == 0:
            raise self.retry(queue="later", countdown=0)
        return "done"

    @app.task(name="faults.replace_later", bind=True, shared=False)
    def replace_later(self: Task) -> Any:
        """Replaces itself with ``faults.value`` routed to the queue ``later``."""
        return self.replace(app.signature("faults.value", args=("r",), queue="later"))


def _register_creators(app: Celery) -> None:
    """Tasks that create a swarm and are then retried, or die and are redelivered (N5)."""

    def create(task: Task) -> str:
        result = swarm(tasks=[app.signature("faults.work")], is_swarm_closed=True, app=app).apply_async()
        _probe_client(app).rpush(f"faults:created:{task.request.id}", result.id)
        return str(result.id)

    @app.task(name="faults.create_then_retry", bind=True, shared=False, max_retries=2, default_retry_delay=0)
    def create_then_retry(self: Task) -> str:
        swarm_id = create(self)
        if self.request.retries < 2:
            raise self.retry()
        return swarm_id

    @app.task(name="faults.create_then_die", bind=True, shared=False, acks_late=True, reject_on_worker_lost=True)
    def create_then_die(self: Task) -> str:
        swarm_id = create(self)
        if _probe_client(app).set(f"faults:died:{self.request.id}", 1, nx=True):
            os.kill(os.getpid(), signal.SIGKILL)
        return swarm_id


def _register_worker_loss(app: Celery) -> None:
    @app.task(
        name="faults.die_once", bind=True, shared=False, retry_on_worker_lost=True, max_retries=3, default_retry_delay=0
    )
    def die_once(self: Task) -> str:
        if _probe_client(app).set(f"faults:died:{self.request.id}", 1, nx=True):
            os.kill(os.getpid(), signal.SIGKILL)
        return "survived"


def _from_env() -> Celery | None:
    env = os.environ
    if ENV_PREFIX + "BROKER" not in env:
        return None
    conf = json.loads(env.get(ENV_PREFIX + "CONF") or "{}")
    urls = [env[ENV_PREFIX + name] for name in ("BROKER", "BACKEND", "STATE", "PROBE")]
    return build(*urls, conf, installed=env.get(ENV_PREFIX + "NO_INSTALL") != "1")


app = _from_env()
faulthandler.register(signal.SIGUSR1, all_threads=True)  # stack dumps of a stuck worker, into its log


@signals.worker_ready.connect
def _announce_ready(sender: Any = None, **_: Any) -> None:
    """Tell the test this worker consumes: ``faults:ready:<hostname>``."""
    if app is not None and sender is not None:
        _probe_client(app).set(f"faults:ready:{sender.hostname}", os.getpid())


@swarm_finished.connect
def _record_finisher(sender: Any = None, app: Any = None, **_: Any) -> None:
    """Which process finalized a swarm: ``faults:finished_by:<swarm_id>`` = ``"<pid> <ppid>"``."""
    if app is not None and sender is not None and ENV_PREFIX + "PROBE" in os.environ:
        _probe_client(app).set(probe_key("finished_by", str(sender)), f"{os.getpid()} {os.getppid()}")

"""Helpers of the fault-injection tests: worker subprocesses, and what the tasks recorded in the probe Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from faults_app import build, probe_key

from mageflow_celery import SwarmResult
from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.engine.summary import counts
from mageflow_celery.testing import PeakSampler, wait_for

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
#: Seconds a worker subprocess gets to start consuming.
WORKER_START_S = 60.0
#: A killed pool process also loses what its reporter thread had not sent yet: outcomes of members it
#: finished just before (the reaper applies them from the result backend once their lease expires) and
#: admitted members it was publishing (re-published after the dispatch timeout). Short, for the tests.
RECOVERY = {"lease_s": 2, "dispatch_timeout_s": 5}


@dataclass
class Faults:
    """Builds client apps and worker subprocesses sharing one set of URLs; stops every worker it started."""

    redis_url: str
    logs: Path
    broker: str = ""
    state: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.broker = self.broker or self.redis_url
        self.state = self.state or self.redis_url
        self.probe = redis.Redis.from_url(self.redis_url, client_name="faults-probe")

    def app(self, **conf: Any) -> Celery:
        """A client app (tasks registered, no worker) with the same URLs as the workers."""
        return build(self.broker, self.redis_url, self.state, self.redis_url, conf)

    def worker(
        self,
        name: str,
        pool: str = "prefork",
        concurrency: int = 2,
        state: str = "",
        queues: str = "",
        installed: bool = True,
        **conf: Any,
    ) -> subprocess.Popen[bytes]:
        """Start ``celery -A faults_app worker`` in its own process group; return once it consumes.

        ``state`` overrides the state Redis URL of this worker; ``queues`` (``-Q``) the queues it consumes;
        ``installed=False`` starts it without ``install(app)``; ``conf`` are extra Celery settings.
        """
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "MAGEFLOW_FAULTS_BROKER": self.broker,
            "MAGEFLOW_FAULTS_BACKEND": self.redis_url,
            "MAGEFLOW_FAULTS_STATE": state or self.state,
            "MAGEFLOW_FAULTS_PROBE": self.redis_url,
            "MAGEFLOW_FAULTS_CONF": json.dumps(conf),
            "MAGEFLOW_FAULTS_NO_INSTALL": "" if installed else "1",
        }
        command = [sys.executable, "-m", "celery", "-A", "faults_app", "worker", "-P", pool, "-c", str(concurrency)]
        command += ["-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"]
        if queues:
            command += ["-Q", queues]
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                command,
                env=env,
                cwd=HERE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.procs.append(proc)

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"worker {name} exited with {proc.returncode}:\n{self.log(name)}")
            return bool(self.probe.keys(f"faults:ready:{name}@*"))

        wait_for(ready, timeout_s=WORKER_START_S, interval_s=0.1, message=f"worker {name} to consume")
        return proc

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL a worker and its pool children (its whole process group), as a machine loss would."""
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.procs:
            try:
                self.kill(proc)
            except ProcessLookupError:
                pass
        self.procs.clear()
        self.probe.close()

    # -- what the tasks recorded ------------------------------------------------------------------------

    def open_gate(self, swarm_id: str) -> None:
        self.probe.set(probe_key("gate", swarm_id), 1)

    def starts(self, swarm_id: str) -> list[int]:
        """Member indices in the order their executions started (killed executions included)."""
        return [int(x.split()[0]) for x in self.probe.lrange(probe_key("start", swarm_id), 0, -1)]

    def executions(self, swarm_id: str) -> list[tuple[int, float, float]]:
        """``(index, start, end)`` of every execution that ran to its end."""
        rows = [x.split() for x in self.probe.lrange(probe_key("ex", swarm_id), 0, -1)]
        return [(int(i), float(s), float(e)) for i, s, e in rows]

    def records(self, kind: str, swarm_id: str) -> list[tuple[int, int]]:
        """Pairs of ints a task recorded under ``kind`` (``steps``: index, step; ``attempts``: index, retries)."""
        rows = [x.split() for x in self.probe.lrange(probe_key(kind, swarm_id), 0, -1)]
        return [(int(a), int(b)) for a, b in rows]

    def callbacks(self, swarm_id: str) -> list[dict[str, Any]]:
        """What the callbacks recorded so far (the callback tasks may still be queued or running)."""
        return [json.loads(x) for x in self.probe.lrange(probe_key("cb", swarm_id), 0, -1)]

    def ran_callbacks(self, app: Celery, swarm_id: str, expected: int = 1) -> list[dict[str, Any]]:
        """The callbacks' records once ``expected`` of them ran and the workers went idle, so a duplicate
        published with them would have run too: the finalizer publishes the callbacks before it marks the
        swarm done, but they run later, on any worker."""
        wait_for(lambda: len(self.callbacks(swarm_id)) >= expected, timeout_s=30, message=f"{expected} callbacks")
        quiesce(app, self.probe, unacked=False)
        return self.callbacks(swarm_id)


def _die_with_parent() -> None:
    """In the worker subprocess: get SIGKILL when the test process dies (Linux), so no worker is orphaned."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def quiesce(app: Celery, r: redis.Redis, timeout_s: float = 30.0, unacked: bool = True) -> None:
    """Wait until no message is queued (or, with ``unacked``, unacknowledged) in the Redis broker and no
    live worker runs a task. A killed worker's unacknowledged messages stay until the visibility timeout.
    """
    busy: dict[str, Any] = {}

    def idle() -> bool:
        busy.clear()
        busy.update(queued=r.llen("celery"), unacked=r.hlen("unacked") if unacked else 0)
        try:
            active = active_tasks(app)
        except (redis.ConnectionError, OSError):  # a connection killed by a test: the next call reconnects
            return False
        busy["active"] = [t["id"] for tasks in active.values() for t in tasks]
        return not any(busy.values())

    try:
        wait_for(idle, timeout_s=timeout_s, interval_s=0.2, message="the workers to be idle")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}: still busy: {busy}") from None


def active_tasks(app: Celery) -> dict[str, Any]:
    """``app.control.inspect().active()`` over a connection of its own, closed here, not a pooled one.

    Inspect stops waiting for replies after its timeout while kombu's Redis BRPOP still runs (1 s): a
    connection given back to the app's pool would still owe that reply. kombu keeps the pool process-wide
    (after the app and the test), and every process forked from the test process later (the pool processes
    of an in-process prefork worker) closes the pools it inherited, reading that one reply from the shared
    socket: one child gets it, the others wait forever, and the worker runs one task at a time.
    """
    with app.connection_for_write() as conn:
        active: dict[str, Any] = app.control.inspect(timeout=0.5, connection=conn).active() or {}
        return active


def assert_counted_once(app: Celery, swarm_id: str, total: int, succeeded: set[int], failed: int = 0) -> None:
    """Every member has exactly one outcome; the results are the succeeded members, once each, in order."""
    meta = runtime_for(app).store.meta(swarm_id)
    c = counts(meta)
    assert c["total"] == total
    assert (c["succeeded"], c["failed"]) == (len(succeeded), failed), (c, runtime_for(app).store.errors(swarm_id))
    assert c["registered"] + c["queued"] + c["dispatched"] + c["running"] == 0, c
    states = Counter(runtime_for(app).store.member_states(swarm_id).values())
    assert states == Counter({"s": len(succeeded), "f": failed}), states
    if failed == 0 or meta.get("stop_after", b"0") in (b"0", b""):
        assert SwarmResult(swarm_id, app=app).get(timeout=5) == sorted(succeeded)


class TokenSampler(PeakSampler):
    """Samples the number of tokens a swarm holds (its tokens zset, minus the sentinel) in a thread."""

    def __init__(self, r: redis.Redis, tokens_key: str, interval_s: float = 0.005) -> None:
        super().__init__(lambda: max(0, int(r.zcard(tokens_key)) - 1), interval_s)


def finish(faults: Faults, app: Celery, swarm_id: str, timeout_s: float = 60.0) -> None:
    """Wait for the swarm to finish; on timeout, fail with its state, what the tasks recorded and the logs."""
    from mageflow_celery.testing import wait_for_swarm

    store = runtime_for(app).store
    try:
        wait_for_swarm(swarm_id, app, timeout_s=timeout_s)
        # the callbacks are published once the finalization claim is released
        wait_for(lambda: store.meta_field(swarm_id, "fin") == b"done", timeout_s=timeout_s, message="finalization")
    except TimeoutError as exc:
        meta = {k: v for k, v in store.meta(swarm_id).items() if k not in ("ctx", "def")}
        logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in faults.logs.glob("*.log"))
        raise AssertionError(
            f"{exc}\nmember states: {store.member_states(swarm_id)}\nmeta: {meta}\n"
            f"starts: {faults.starts(swarm_id)}\nqueued: {r_queued(faults.probe)}\n{logs}"
        ) from None


def r_queued(r: redis.Redis) -> list[str]:
    return [json.loads(m)["headers"]["id"] for m in r.lrange("celery", 0, -1)] + [f"unacked:{r.hlen('unacked')}"]

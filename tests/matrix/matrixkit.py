"""Cells of the deployment matrix and the deployment of one cell: its servers, its client app, its workers.

A :class:`Cell` names one value per dimension (serializer, pool, broker, result backend, state Redis).
A :class:`Deployment` starts what the cell needs, every part its own: a throwaway Redis for the broker,
the result backend and the probe (where the tasks record what they do), the state Redis of the cell
(standalone, Cluster, Sentinel, TLS, ACL user), a queue name and worker names of its own, so cells can
run side by side (``pytest -n 2``). RabbitMQ and PostgreSQL are the machine's services: a cell that needs
one skips when it is unreachable, and fails when ``CI`` is set.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import redis
from amqp.exceptions import ChannelError
from celery import Celery
from kombu import Connection
from matrix_app import CELL_ENV, build, probe_key, ready_key

from mageflow_celery.engine.runtime import runtime_for
from mageflow_celery.testing import RedisCluster, RedisSentinel, RedisServer, RedisTLSServer, wait_for
from mageflow_celery.testing.plugin import service_unavailable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
#: Seconds a worker subprocess gets to start consuming, and to exit after a warm shutdown (SIGTERM).
WORKER_START_S = 60.0
WORKER_STOP_S = 30.0
#: Log level of the worker subprocesses (their logs are in the test's tmp_path, shown when a cell fails).
LOGLEVEL_ENV = "MAGEFLOW_MATRIX_LOGLEVEL"
#: Seconds between reaper ticks in the cells' workers (default 10 s: it would never tick in a scenario).
REAPER_INTERVAL_S = 0.5
#: Execution slots of a cell's workers: more than the scenario's limit, so a broken limit shows.
SLOTS = 3

AMQP_URL = os.environ.get("MAGEFLOW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
#: SQLAlchemy URL of PostgreSQL; the driver is named, since SQLAlchemy 2.1 defaults to psycopg 3 (we test psycopg2).
POSTGRES_URL = os.environ.get("MAGEFLOW_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True)
class Cell:
    """One deployment: every field is a dimension; the defaults are the base cell."""

    serializer: str = "json"  # json | pickle | msgpack | yaml (task, result and accept_content)
    pool: str = "threads"  # prefork | threads | solo | gevent | eventlet
    broker: str = "redis"  # redis | rabbitmq
    backend: str = "redis"  # redis | postgresql | sqlite | none
    state: str = "standalone"  # standalone | cluster | sentinel | tls | acl

    @property
    def name(self) -> str:
        """``base``, or the one dimension that differs from the base: ``pool-gevent``."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        base = {f.name: getattr(Cell(), f.name) for f in fields(self)}
        return "+".join(f"{name}-{value}" for name, value in values.items() if value != base[name]) or "base"


def amqp_url() -> str:
    """The RabbitMQ broker URL, checked to answer (else skip, or fail in CI)."""
    try:
        with Connection(AMQP_URL, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        service_unavailable(f"RabbitMQ at {AMQP_URL} is unreachable: {exc!r}")
    return AMQP_URL


def postgres_url() -> str:
    """The PostgreSQL URL (SQLAlchemy spelling, without ``db+``), checked to answer (else skip, or fail in CI)."""
    try:
        import sqlalchemy  # test dependency (with psycopg2-binary), needed by these cells only
    except ImportError as exc:
        service_unavailable(f"the PostgreSQL cell needs sqlalchemy and psycopg2-binary: {exc}")
    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("select 1"))
        finally:
            engine.dispose()
    except Exception as exc:
        service_unavailable(f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc!r}")
    return POSTGRES_URL


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class Deployment:
    """Everything one cell runs on; :meth:`close` stops and removes all of it (also after a failure)."""

    def __init__(self, cell: Cell, tmp: Path) -> None:
        self.cell = cell
        self.tmp = tmp
        self.run = uuid.uuid4().hex[:10]
        self.queue = f"matrix-{self.run}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.hostnames: list[str] = []
        #: WARNINGs ``install`` logged when the client app was built.
        self.install_warnings: list[str] = []
        self._stack = ExitStack()
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    # -- building ----------------------------------------------------------------------------------------

    def _start(self) -> None:
        self.infra = self._server(RedisServer())
        self.probe = redis.Redis.from_url(self.infra.url)
        self._stack.callback(self.probe.close)
        self.state_url, state_conf = self._state()
        self.conf = {**self._base_conf(), **self._broker_conf(), **self._backend_conf(), **state_conf}
        capture = _Capture()
        logger = logging.getLogger("mageflow_celery")
        logger.addHandler(capture)
        try:
            self.client: Celery = build(self.conf, self.state_url, self.infra.url)
        finally:
            logger.removeHandler(capture)
        self.install_warnings = capture.messages
        self._stack.callback(self._close_client)
        workers, concurrency = (SLOTS, 1) if self.cell.pool == "solo" else (1, SLOTS)
        for n in range(workers):
            self._worker(f"{self.run}-{n}", concurrency)

    def _server(self, server: Any) -> Any:
        try:
            server.start()
        except (RuntimeError, OSError) as exc:
            service_unavailable(f"cannot start {type(server).__name__}: {exc}")
        self._stack.callback(server.stop)
        return server

    def _base_conf(self) -> dict[str, Any]:
        ser = self.cell.serializer
        return {
            "task_serializer": ser,
            "result_serializer": ser,
            "accept_content": [ser],
            "task_default_queue": self.queue,
            "worker_prefetch_multiplier": 1,
            "worker_hijack_root_logger": False,
            "broker_connection_retry_on_startup": True,
            "result_expires": 3600,
            # the reaper ticks while members hold their leases (it must leave them alone)
            "mageflow_reaper_interval_s": REAPER_INTERVAL_S,
        }

    def _broker_conf(self) -> dict[str, Any]:
        if self.cell.broker == "rabbitmq":
            url = amqp_url()
            self._stack.callback(self._delete_amqp_queue, url)
            return {"broker_url": url}
        return {"broker_url": self.infra.url}

    def _backend_conf(self) -> dict[str, Any]:
        backend = self.cell.backend
        if backend == "postgresql":
            url = postgres_url()
            tables = {"task": f"mfm_{self.run}_task", "group": f"mfm_{self.run}_group"}
            self._stack.callback(_drop_tables, url, list(tables.values()))
            return {"result_backend": f"db+{url}", "database_table_names": tables}
        if backend == "sqlite":
            return {"result_backend": f"db+sqlite:///{self.tmp / 'results.db'}"}
        if backend == "none":
            return {"result_backend": None}
        return {"result_backend": self.infra.url}

    def _state(self) -> tuple[str, dict[str, Any]]:
        """The state Redis URL of the cell, and the settings it needs."""
        state = self.cell.state
        if state == "cluster":
            return self._server(RedisCluster(masters=3)).url, {}
        if state == "sentinel":
            sentinel = self._server(RedisSentinel(master_name=f"matrix-{self.run}"))
            return sentinel.url, {"mageflow_redis_transport_options": sentinel.transport_options}
        if state == "tls":
            return self._server(RedisTLSServer()).url, {}
        if state == "acl":
            server = self._server(RedisServer())
            # only its own keys, and a password that needs percent-encoding in the URL
            url = server.add_acl_user("mf-matrix", "p@ss:w/rd %", rules=("~mageflow:*", "&*", "+@all"))
            default = server.client()
            try:  # nobody gets in without the URL's credentials
                default.acl_setuser("default", enabled=False)
            finally:
                default.close()
            return url, {}
        return self._server(RedisServer()).url, {}

    # -- workers -----------------------------------------------------------------------------------------

    def _worker(self, name: str, concurrency: int) -> None:
        """Start ``celery -A matrix_app worker`` for this cell in its own process group; return once it consumes."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")]),
            CELL_ENV: json.dumps({"conf": self.conf, "state": self.state_url, "probe": self.infra.url}),
        }
        if self.cell.serializer == "pickle" and os.geteuid() == 0:
            env["C_FORCE_ROOT"] = "1"  # Celery refuses to run a pickle-accepting worker as root otherwise
        loglevel = os.environ.get(LOGLEVEL_ENV, "WARNING")
        command = [sys.executable, "-m", "celery", "-A", "matrix_app", "worker", "-P", self.cell.pool]
        command += ["-c", str(concurrency), "-Q", self.queue, "-n", f"{name}@%h", "-l", loglevel]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        with open(self.tmp / f"{name}.log", "ab") as log:
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

        def ready() -> str:
            if proc.poll() is not None:
                raise RuntimeError(f"worker {name} exited with {proc.returncode}:\n{self.logs()}")
            return next((key.decode() for key in self.probe.keys(ready_key(f"{name}@*"))), "")

        key = wait_for(ready, timeout_s=WORKER_START_S, interval_s=0.1, message=f"worker {name} to consume")
        self.hostnames.append(key.removeprefix(ready_key("")))

    def stop_workers(self) -> list[int | None]:
        """Warm shutdown (SIGTERM) of every worker; their exit codes (``None``: had to be killed)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=WORKER_STOP_S))
            except subprocess.TimeoutExpired:
                codes.append(None)
        self._kill_workers()
        return codes

    def _kill_workers(self) -> None:
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.tmp.glob("*.log"))

    # -- what the tasks recorded, and the gates ----------------------------------------------------------

    def events(self, swarm_id: str) -> list[str]:
        return [event.decode() for event in self.probe.lrange(probe_key("events", swarm_id), 0, -1)]

    def starts(self, swarm_id: str) -> list[int]:
        """Member indices in the order their executions started."""
        return [int(e.split()[1]) for e in self.events(swarm_id) if e.startswith("start ")]

    def intervals(self, swarm_id: str) -> list[tuple[int, float, float]]:
        """``(index, start, end)`` of each execution, as positions in the event list (Redis's own order)."""
        opened: dict[int, int] = {}
        out: list[tuple[int, float, float]] = []
        for position, event in enumerate(self.events(swarm_id)):
            kind, _, index = event.partition(" ")
            if kind == "start":
                opened[int(index)] = position
            elif kind == "end":
                out.append((int(index), opened.pop(int(index)), position))
        return out

    def mark(self, swarm_id: str, what: str) -> None:
        """Append the test's own event (``paused``, ``resumed``) to the swarm's event list."""
        self.probe.rpush(probe_key("events", swarm_id), what)

    def release(self, swarm_id: str, *indices: int) -> None:
        """Open the gates of these members: each may end now."""
        for index in indices:
            self.probe.rpush(probe_key("gate", swarm_id, index), 1)

    def wait_events(self, swarm_id: str, kind: str, count: int, timeout_s: float = 30.0) -> list[int]:
        """Wait until ``count`` members recorded ``kind`` (``start``/``end``); their indices in order."""

        def seen() -> list[int]:
            found = [int(e.split()[1]) for e in self.events(swarm_id) if e.startswith(f"{kind} ")]
            return found if len(found) >= count else []

        try:
            return wait_for(seen, timeout_s=timeout_s, interval_s=0.02, message=f"{count} {kind} event(s)")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\nevents: {self.events(swarm_id)}\n{self.logs()}") from None

    def wait_renewed(self, swarm_id: str, indices: Iterable[int], times: int, timeout_s: float = 30.0) -> None:
        """Wait until the lease of each of these running members was renewed ``times`` times (its deadline in
        the state Redis moved forward): the workers' lease keeper thread runs under the cell's pool."""
        store = runtime_for(self.client).store
        tokens = store.keys(swarm_id).tokens
        seen: dict[int, set[float]] = {index: set() for index in indices}

        def renewed() -> bool:
            for index, deadlines in seen.items():
                score = store.client.zscore(tokens, str(index))
                if score is not None:
                    deadlines.add(score)
            return all(len(deadlines) > times for deadlines in seen.values())

        try:
            wait_for(renewed, timeout_s=timeout_s, interval_s=0.02, message=f"{times} lease renewals")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}: deadlines seen {seen}\n{self.logs()}") from None

    def callbacks(self, swarm_id: str) -> list[dict[str, Any]]:
        """What each execution of a callback of the swarm received (``kind``, ``value``)."""
        key = probe_key("cb", swarm_id)
        return [pickle.loads(x) for x in self.probe.lrange(key, 0, -1)]

    # -- settling ----------------------------------------------------------------------------------------

    def settle(self, timeout_s: float = 30.0) -> None:
        """Wait until the cell's queue is empty and every worker answers with nothing active or reserved."""
        busy: dict[str, Any] = {}

        def idle() -> bool:
            busy.clear()
            busy["queued"] = self._queued()
            hosts = set(self.hostnames)
            inspect = self.client.control.inspect(destination=sorted(hosts), timeout=1.0, limit=len(hosts))
            for what in ("active", "reserved"):
                replies = getattr(inspect, what)() or {}
                busy[what] = [t["id"] for tasks in replies.values() for t in tasks]
                busy[what] += [f"no reply from {host}" for host in sorted(hosts - set(replies))]
            return not any(busy.values())

        try:
            wait_for(idle, timeout_s=timeout_s, interval_s=0.2, message="the workers to be idle")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}: still busy: {busy}\n{self.logs()}") from None

    def _queued(self) -> int:
        """Messages ready in the cell's queue (kombu's Redis transport has no queue while it is empty)."""
        with self.client.connection_for_write() as conn:
            try:
                _, count, _ = conn.default_channel.queue_declare(self.queue, passive=True)
            except ChannelError as exc:
                if str(exc.reply_code) != "404" or self.cell.broker != "redis":
                    raise
                return 0
            return int(count)

    # -- teardown ----------------------------------------------------------------------------------------

    def close(self) -> None:
        try:
            self._kill_workers()
        finally:
            self._stack.close()

    def _close_client(self) -> None:
        gc.collect()  # unreferenced AsyncResults unsubscribe from the result backend in __del__
        self.client.close()

    def _delete_amqp_queue(self, url: str) -> None:
        with Connection(url, connect_timeout=3) as conn:
            channel = conn.default_channel
            channel.queue_delete(self.queue)
            channel.exchange_delete(self.queue)


def _drop_tables(url: str, tables: list[str]) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            for table in tables:
                conn.execute(sqlalchemy.text(f'drop table if exists "{table}"'))
    finally:
        engine.dispose()


def _die_with_parent() -> None:
    """In the worker subprocess: get SIGKILL when the test process dies (Linux), so no worker is orphaned."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass

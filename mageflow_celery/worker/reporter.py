"""The background reporter: records members' outcomes off the pool slot's critical path.

Worker hooks hand each outcome to :meth:`Reporter.submit` and return at once; one thread per process
encodes the outcomes in batches, reports each batch (one ``report`` script call per swarm, then publishes
what it admitted), or, when the worker forked a reporting process (:mod:`.reporting`, by :mod:`.offload`),
writes the batch to that process, which reports it. Redis errors are retried with backoff and logged; what
still fails is left to the reaper, which reconciles from the result backend (R4).

Layer: ``worker`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections import defaultdict
from typing import Any

from ..engine.dispatch import follow
from ..engine.retry import with_retries
from ..engine.runtime import Runtime
from ..engine.summary import error_record
from ..errors import MageflowError
from .reporting import STOP_TIMEOUT_S, Outcome, ReportingProcess

logger = logging.getLogger("mageflow_celery")

#: Outcomes handled in one batch at most.
BATCH_MAX = 500
_OUTCOMES = {"s": "succeeded", "f": "failed", "x": "revoked"}


class Reporter:
    """One per (app, process): a queue of outcomes and the thread that reports them, or hands them to the
    worker's reporting process."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        #: Outcomes for the thread: (swarm id, index, kind, value, whether value is encoded already).
        self._queue: queue.SimpleQueue[tuple[str, int, str, Any, bool]] = queue.SimpleQueue()
        self._pending = 0
        self._cond = threading.Condition()
        self._pid = -1
        self._thread: threading.Thread | None = None
        #: The producer the thread publishes admitted members with, on a broker connection of its own held
        #: across batches (taking one from the app's pool per batch re-binds a connection and a channel each
        #: time; holding a pool's one could starve the app's other publishers); closed after an error.
        self._producer: Any = None
        #: The worker's reporting process, which the thread hands its batches to when there is one.
        self._process: ReportingProcess | None = None
        #: Whether processes forked from this one (prefork pool processes) hand their batches to it too.
        self._shared = False
        #: A reporting process closed while pool processes may still write to it, joined at shutdown.
        self._closing: ReportingProcess | None = None

    def submit(self, swarm_id: str, index: int, kind: str, value: Any) -> None:
        """Queue one final outcome: kind ``s`` (value = result), ``f`` (value = error record) or ``x``.

        With a reporting process, the outcome is encoded and written to it at once when that cannot block
        (:meth:`~.reporting.ReportingProcess.send_now`), without waking the thread."""
        encoded = False
        process = self._process
        if process is not None:
            swarm_id, index, kind, value = self._encoded(swarm_id, index, kind, value)
            encoded = True
            if process.send_now([(swarm_id, index, kind, value)]):
                return
        self._ensure_thread()
        with self._cond:
            self._pending += 1
        self._queue.put((swarm_id, index, kind, value, encoded))

    def offload(self, shared: bool = False) -> None:
        """Hand batches to a reporting process forked now (in the worker's main process, before its pool
        starts); with ``shared``, the processes forked from this one afterwards (prefork pool processes) hand
        theirs to it too."""
        if self._process is None:
            self._process = ReportingProcess(self._handle, BATCH_MAX)
            self._shared = shared

    def close_offload(self, wait: bool = True) -> None:
        """Hand no more batches to the reporting process (the thread reports them from now on). With ``wait``,
        wait until it reported what it holds and exited; else :meth:`join_closed` waits for that, once the
        pool processes that write to it are gone."""
        process, self._process = self._process, None
        if process is None:
            return
        process.close()
        self._closing = process
        if wait:
            self.join_closed(STOP_TIMEOUT_S)

    def join_closed(self, timeout_s: float) -> None:
        """Wait until a reporting process closed by :meth:`close_offload` exited (worker shutdown)."""
        process, self._closing = self._closing, None
        if process is not None:
            process.join(timeout_s)

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every outcome submitted in this process was reported, or handed to the reporting
        process and reported there (asked in the process that made it); ``False`` on timeout."""
        with self._cond:
            done = self._cond.wait_for(lambda: self._pending == 0, timeout=timeout_s)
        process = self._process
        if process is not None and process.owner == os.getpid():
            done = process.drained(timeout_s) and done
        return done

    def after_fork(self) -> None:
        """In a forked child: the parent's queue, lock and thread are not ours (its lock may have been held).
        Its reporting process is the child's too only when shared with the pool processes; any other child
        closes its copy of the pipe."""
        self._cond = threading.Condition()
        self._thread = None
        self._closing = None
        process, self._process = self._process, None
        if process is not None and self._shared:
            self._process = process
        elif process is not None:
            process.abandon()
        self._leave_parents()

    def _leave_parents(self) -> None:
        """Forget what belongs to the parent process: its queued outcomes and its producer (whose connection is
        not ours to use or release)."""
        self._queue = queue.SimpleQueue()
        self._pending = 0
        self._producer = None
        self._pid = os.getpid()

    def _ensure_thread(self) -> None:
        if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
            with self._cond:
                if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                    if self._pid != os.getpid():  # forked without after_fork
                        self._leave_parents()
                    self._pid = os.getpid()
                    self._thread = threading.Thread(target=self._loop, name="mageflow-reporter", daemon=True)
                    self._thread.start()

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            encoded = [(s, i, k, v) if done else self._encoded(s, i, k, v) for s, i, k, v, done in batch]
            if not self._hand_over(encoded):
                self._handle(encoded)
            with self._cond:
                self._pending -= len(batch)
                self._cond.notify_all()

    def _encoded(self, swarm_id: str, index: int, kind: str, value: Any) -> Outcome:
        """The outcome as the ``report`` script takes it: a result the app's serializer cannot encode fails
        the member."""
        if kind == "s":
            try:
                value = self.runtime.result_codec.dumps(value, "member result")
            except MageflowError as exc:
                kind, value = "f", error_record(swarm_id, index, None, exc)
        return swarm_id, index, kind, value

    def _hand_over(self, batch: list[Outcome]) -> bool:
        """Give the batch to the reporting process, if there is one that takes it. When it is gone, this
        process reports from its thread from then on."""
        process = self._process
        if process is None:
            return False
        sent = process.send(batch)
        if sent == "gone" and self._process is process:
            self._process = None
            logger.warning("mageflow_celery: the reporting process is gone; reporting from a thread from now on")
        return sent == "sent"

    def _handle(self, batch: list[Outcome]) -> None:
        """Report a batch of outcomes: one ``report`` call per swarm, then follow what it admitted."""
        by_swarm: dict[str, list[tuple[int, str, bytes]]] = defaultdict(list)
        for swarm_id, index, kind, value in batch:
            by_swarm[swarm_id].append((index, kind, value))
        for swarm_id, outcomes in by_swarm.items():
            try:
                self._report(swarm_id, outcomes)
            except Exception:
                logger.exception(
                    "swarm %s: reporting %d outcome(s) failed; the reaper reconciles", swarm_id, len(outcomes)
                )

    def _report(self, swarm_id: str, encoded: list[tuple[int, str, bytes]]) -> None:
        rt = self.runtime
        want_ctx = rt.cached_ctx(swarm_id) is None
        tr = with_retries(f"swarm {swarm_id}: report", rt.store.report, swarm_id, encoded, want_ctx)
        if tr.status == "unknown":
            logger.warning("swarm %s: outcome reported for an unknown or expired swarm; ignored", swarm_id)
            return
        if logger.isEnabledFor(logging.DEBUG):
            for index, kind, _ in encoded:
                logger.debug("swarm %s: member %d reported %s", swarm_id, index, _OUTCOMES.get(kind, kind))
        if self._producer is None:
            self._producer = rt.app.amqp.Producer(rt.app.connection_for_write(), auto_declare=False)
        try:
            follow(rt, swarm_id, tr, producer=self._producer)
        except Exception:
            self._drop_producer()
            raise

    def _drop_producer(self) -> None:
        """Close the held producer's connection (after an error: the next batch opens a fresh one)."""
        producer, self._producer = self._producer, None
        try:
            producer.connection.close()
        except Exception:
            logger.debug("closing the reporter's broker connection failed", exc_info=True)

"""The reporting process: a forked process that reports the outcomes of a worker whose tasks run in its
main process (solo, threads and gevent pools), so reporting and publishing use a core of their own.

On a prefork worker the pool processes run the tasks and each reports from a thread, beside the main
process that consumes. On a single-process pool, that thread would share one interpreter (and its GIL,
or gevent's hub) with the consumer and every task: a swarm member then costs the worker's one busy
process about twice what a plain Celery task does. The :class:`OutboxStep` bootstep forks one
reporting process when such a worker starts; the process's :class:`~.reporter.Reporter` then writes
each encoded outcome to a pipe, and the reporting process runs the same batches (``report`` script,
publish the admitted members, finalize) as the reporter thread would.

If the reporting process is gone (killed, or its pipe broken), outcomes fall back to the reporter
thread; outcomes it had not reported yet are recovered like those of a lost worker process: their
lease expires and the reaper reconciles them from the result backend (R4).

Layer: ``worker`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

logger = logging.getLogger("mageflow_celery")

#: Seconds between two looks at whether the worker (the reporting process's parent) is still alive.
ORPHAN_CHECK_S = 1.0
#: Seconds the worker waits for its reporting process to report what it holds, then to exit.
STOP_TIMEOUT_S = 10.0

#: One outcome as the pipe carries it: (swarm id, index, kind, encoded value).
Outcome = tuple[str, int, str, bytes]
#: What the reporting process runs: reports one batch of outcomes.
BatchHandler = Callable[[list[Outcome]], None]


class ReportingProcess:
    """The worker's end of a reporting process: the pipe it writes outcomes to, and how far the process got."""

    def __init__(self, handle: BatchHandler, batch_max: int) -> None:
        ctx = multiprocessing.get_context("fork")
        reader, self._writer = ctx.Pipe(duplex=False)
        self._reported = ctx.RawValue("q", 0)  # shared memory: outcomes the process has reported
        self._sent = 0
        self._lock = threading.Lock()
        self.owner = os.getpid()
        self._process = ctx.Process(
            target=_serve,
            args=(handle, batch_max, reader, self._writer, self._reported, self.owner),
            name="mageflow-reporting",
            daemon=True,
        )
        with warnings.catch_warnings():
            # Python >= 3.12 warns about forking a process with threads. The reporting process only reports:
            # it opens its own broker and Redis connections (both libraries reset theirs after a fork) and
            # never touches what the worker's other threads hold, as with Celery's own prefork pool.
            warnings.filterwarnings("ignore", message=r".*multi-threaded.*fork", category=DeprecationWarning)
            self._process.start()
        reader.close()
        logger.debug("mageflow_celery: reporting process %s started", self._process.pid)

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def alive(self) -> bool:
        return os.getpid() == self.owner and self._process.is_alive()

    def send(self, outcome: Outcome) -> bool:
        """Hand one outcome over; ``False`` when the process cannot take it (gone, pipe closed)."""
        with self._lock:
            try:
                self._writer.send(outcome)
            except (OSError, ValueError):
                return False
            self._sent += 1
            return True

    def drained(self, timeout_s: float) -> bool:
        """Wait until the process reported every outcome sent so far; ``False`` on timeout or if it is gone."""
        deadline = time.monotonic() + timeout_s
        while self._reported.value < self._sent:
            if not self._process.is_alive() or time.monotonic() >= deadline:
                return False
            time.sleep(0.005)  # polls shared memory: the process writes no acknowledgements
        return True

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Let the process report what it holds, then exit: closing the pipe is the signal (it reads to the
        end, then sees end-of-file). After ``timeout_s`` it is terminated, then killed."""
        with self._lock:
            self._writer.close()
        self._process.join(timeout_s)
        if self._process.is_alive():
            logger.warning("mageflow_celery: reporting process %s did not exit; terminating it", self._process.pid)
            self._process.terminate()
            self._process.join(1.0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(1.0)


def _serve(
    handle: BatchHandler, batch_max: int, reader: Connection, writer: Connection, reported: Any, parent: int
) -> None:
    """The reporting process: report batches as they come until told to stop or the worker is gone.

    SIGINT is ignored (Ctrl-C reaches the whole process group; the worker stops this process when it has
    sent everything). SIGTERM or SIGQUIT (a service manager stopping the group, or ``terminate()``) make it
    report what the pipe holds already, then exit.
    """
    writer.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asked_to_stop: list[bool] = []
    for signum in (signal.SIGTERM, signal.SIGQUIT):
        signal.signal(signum, lambda *_: asked_to_stop.append(True))
    while True:
        if not reader.poll(0 if asked_to_stop else ORPHAN_CHECK_S):
            if asked_to_stop or os.getppid() != parent:
                return
            continue
        batch: list[Outcome] = []
        ended = False
        try:
            while len(batch) < batch_max and (not batch or reader.poll(0)):
                batch.append(reader.recv())
        except EOFError:  # the worker closed the pipe: it sent everything
            ended = True
        if batch:
            handle(batch)
            reported.value += len(batch)
        if ended:
            return

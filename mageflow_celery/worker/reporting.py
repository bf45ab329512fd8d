"""The reporting process: a forked process that records a worker's outcomes, publishes the members they
admit and finalizes, on a core of its own, while the worker's processes run tasks.

Without it, each process that runs tasks would report from a thread of its own. On a single-process pool
(solo, threads, gevent) that thread shares one interpreter (its GIL, or gevent's hub) with the consumer and
every task, and a swarm member costs that one busy process about twice what a plain Celery task costs. On
prefork, every pool process would run its own reporter beside its tasks. The :mod:`.offload` bootstep forks
one reporting process when the worker starts, before the pool: the main process and every pool process
then write each encoded outcome to one pipe (under a lock shared by the processes), and the reporting
process runs the batches (``report`` script, publish, finalize) the reporter thread would run.

If the reporting process is gone (killed, its pipe broken, or the pipe's lock not taken in time),
outcomes go to the reporter thread of the process that has them; outcomes it had not reported yet are
recovered like those of a lost worker process: their lease expires and the reaper reconciles them from
the result backend (R4).

Layer: ``worker`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
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
#: Seconds a process waits for the pipe's lock before it reports from its own thread instead.
LOCK_TIMEOUT_S = 5.0

#: One outcome as the pipe carries it: (swarm id, index, kind, encoded value).
Outcome = tuple[str, int, str, bytes]
#: What the reporting process runs: reports one batch of outcomes.
BatchHandler = Callable[[list[Outcome]], None]


class ReportingProcess:
    """A reporting process, as the worker's processes see it: the pipe they write outcomes to, how many they
    wrote and how many it reported (both in shared memory). Made in the worker's main process, inherited by
    the pool processes it forks afterwards; only the process that made it stops it."""

    def __init__(self, handle: BatchHandler, batch_max: int) -> None:
        ctx = multiprocessing.get_context("fork")
        reader, self._writer = ctx.Pipe(duplex=False)
        self._lock = ctx.Lock()  # one writer at a time: a message over PIPE_BUF is not written atomically
        self._sent = ctx.RawValue("q", 0)  # outcomes written to the pipe, by every process
        self._reported = ctx.RawValue("q", 0)  # outcomes the reporting process has reported
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
        self.pid: int = self._process.pid or 0
        logger.debug("mageflow_celery: reporting process %s started", self.pid)

    def alive(self) -> bool:
        """Whether the reporting process runs (from any process of the worker)."""
        if os.getpid() == self.owner:
            return self._process.is_alive()
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return True

    def send(self, outcome: Outcome) -> bool:
        """Hand one outcome over; ``False`` when the process cannot take it (gone, pipe closed, or the lock
        not free within :data:`LOCK_TIMEOUT_S`: a process killed while writing still holds it)."""
        if not self._lock.acquire(timeout=LOCK_TIMEOUT_S):
            return False
        try:
            self._writer.send(outcome)
        except (OSError, ValueError):
            return False
        else:
            self._sent.value += 1
            return True
        finally:
            self._lock.release()

    def drained(self, timeout_s: float) -> bool:
        """Wait until the process reported every outcome written so far (by any process of the worker);
        ``False`` on timeout or if it is gone."""
        deadline = time.monotonic() + timeout_s
        while self._reported.value < self._sent.value:
            if not self.alive() or time.monotonic() >= deadline:
                return False
            time.sleep(0.005)  # polls shared memory: the process writes no acknowledgements
        return True

    def close(self) -> None:
        """Write no more (in the process that made it): once every process that holds the pipe closed it or
        exited (the pool processes, when the pool stops), the reporting process reports what it read and
        exits."""
        if os.getpid() == self.owner:
            self._writer.close()

    def join(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Wait until the process exited (after :meth:`close`); after ``timeout_s`` terminate it (it then
        reports what the pipe holds and exits), then kill it."""
        if os.getpid() != self.owner:
            return
        self._process.join(timeout_s)
        if self._process.is_alive():
            logger.warning("mageflow_celery: reporting process %s did not exit; terminating it", self.pid)
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
        except EOFError:  # every process of the worker closed the pipe: they sent everything
            ended = True
        except Exception:  # a message cut short (its writer was killed): the stream cannot be trusted
            logger.exception("mageflow_celery: the reporting process cannot read its pipe; it exits")
            ended = True
        if batch:
            handle(batch)
            reported.value += len(batch)
        if ended:
            return

"""The reporting process: a forked process that records a worker's outcomes, publishes the members they
admit and finalizes, on a core of its own, while the worker's processes run tasks.

Without it, each process that runs tasks reports from its reporter thread. On a single-process pool (solo,
threads, gevent) that thread shares one interpreter (its GIL, or gevent's hub) with the consumer and every
task, and a swarm member costs that one busy process about twice what a plain Celery task costs. The
:mod:`.offload` bootstep forks one reporting process when the worker is built, before its pool starts. The
reporter thread of each process that runs tasks then writes each batch of encoded outcomes to the process's
pipe (under a lock shared by the processes, for prefork pool processes that inherit the pipe) instead of
reporting it, and the reporting process runs those batches (``report`` script, publish, finalize).

A task's outcome is written to the pipe by the thread that ran the task when that cannot block: a small
batch (one atomic pipe write), the pipe with room, its lock free (:meth:`ReportingProcess.send_now`);
otherwise it goes to the reporter thread, which may wait. On a single-process pool that saves waking the
reporter thread for each outcome (measured in docs/performance.md).

A batch the pipe does not take (the process is gone, the pipe closed, or its lock not free in time) is
reported by the thread that has it, so none is lost on the worker's side; a batch the reporting process had
read and not reported when it died is recovered like the outcomes of a lost worker: their lease expires and
the reaper reconciles them from the result backend (R4).

The process is started with billiard (Celery's fork of :mod:`multiprocessing`), so Celery's own after-fork
cleanup of the app (its connection and producer pools) runs in it, as in a prefork pool process.

Layer: ``worker`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import pickle
import select
import signal
import time
import warnings
from collections.abc import Callable
from typing import Any, Literal

import billiard
import billiard.process

logger = logging.getLogger("mageflow_celery")

#: Seconds between two looks at whether the worker (the reporting process's parent) is still alive.
ORPHAN_CHECK_S = 1.0
#: Seconds the worker waits for its reporting process to report what it holds, then to exit.
STOP_TIMEOUT_S = 10.0
#: Seconds a reporter waits for the pipe's lock before it reports the batch itself.
LOCK_TIMEOUT_S = 5.0
#: Largest pickled batch :meth:`ReportingProcess.send_now` writes: with the 4-byte length header it is one
#: write of at most ``PIPE_BUF`` bytes, which the kernel writes whole and at once when the pipe has room.
SEND_NOW_MAX = select.PIPE_BUF - 4

#: One outcome, encoded: (swarm id, index, kind, encoded result or error record).
Outcome = tuple[str, int, str, bytes]
#: What the reporting process runs: reports one batch of outcomes.
BatchHandler = Callable[[list[Outcome]], None]
#: What :meth:`ReportingProcess.send` did: the pipe took the batch, its lock was busy, or the process is gone.
Sent = Literal["sent", "busy", "gone"]


class ReportingProcess:
    """A reporting process, as the worker's processes see it: the pipe they write batches to, how many
    outcomes they wrote and how many it reported (both in shared memory). Made in the worker's main process;
    prefork pool processes forked afterwards may keep it (:meth:`~.reporter.Reporter.after_fork`); only the
    process that made it closes and joins it."""

    def __init__(self, handle: BatchHandler, batch_max: int) -> None:
        ctx: Any = billiard.get_context("fork")
        reader, self._writer = ctx.Pipe(duplex=False)
        self._lock = ctx.Lock()  # one writer at a time: a message over PIPE_BUF is not written atomically
        self._sent = ctx.RawValue(ctypes.c_longlong, 0)  # outcomes written to the pipe, by every process
        self._reported = ctx.RawValue(ctypes.c_longlong, 0)  # outcomes the reporting process has reported
        self.owner = os.getpid()
        self._process = ctx.Process(
            target=_serve,
            args=(handle, batch_max, reader, self._writer, self._reported, self.owner),
            name="mageflow-reporting",
            daemon=True,
        )
        with warnings.catch_warnings():
            # Python >= 3.12 warns about forking a process with threads. The reporting process opens its own
            # broker and Redis connections (Celery, kombu and redis-py reset theirs after a fork), as a prefork
            # pool process does.
            warnings.filterwarnings("ignore", message=r".*multi-threaded.*fork", category=DeprecationWarning)
            self._process.start()
        reader.close()
        assert self._process.pid is not None
        self.pid: int = self._process.pid
        logger.debug("mageflow_celery: reporting process %s started", self.pid)

    def alive(self) -> bool:
        """Whether the reporting process runs (asked by the process that made it)."""
        return os.getpid() == self.owner and bool(self._process.is_alive())

    def send(self, batch: list[Outcome]) -> Sent:
        """Hand a batch over: ``"busy"`` when the pipe's lock is not free within :data:`LOCK_TIMEOUT_S` (a
        process killed while writing still holds it), ``"gone"`` when the pipe is closed or broken."""
        if not self._lock.acquire(timeout=LOCK_TIMEOUT_S):
            return "busy"
        try:
            self._writer.send(batch)
        except (OSError, ValueError, TypeError):  # closed (by close(), or the process died): gone
            return "gone"
        else:
            self._sent.value += len(batch)
            return "sent"
        finally:
            self._lock.release()

    def send_now(self, batch: list[Outcome]) -> bool:
        """Hand a batch over if that cannot block: it pickles to at most :data:`SEND_NOW_MAX` bytes, the
        pipe's lock is free and the pipe has room. ``False`` otherwise (nothing written): :meth:`send` it."""
        if sum(len(value) for *_, value in batch) > SEND_NOW_MAX:  # do not pickle a large result for nothing
            return False
        data = pickle.dumps(batch)  # what send() writes for plain tuples; recv() unpickles either
        if len(data) > SEND_NOW_MAX or not self._lock.acquire(False):
            return False
        try:
            if not select.select([], [self._writer], [], 0)[1]:
                return False
            self._writer.send_bytes(data)
        except (OSError, ValueError):  # closed or broken: send() finds out and says "gone"
            return False
        else:
            self._sent.value += len(batch)
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
        """Write no more from this process (taking the lock, so no write is cut in half). Once every process
        that holds the pipe closed it or exited, the reporting process reports what it read and exits."""
        locked = self._lock.acquire(timeout=LOCK_TIMEOUT_S)  # not free in time: a killed writer holds it
        try:
            self._writer.close()
        finally:
            if locked:
                self._lock.release()

    def abandon(self) -> None:
        """In a process forked from the worker that does not report through it: close this copy of the pipe
        (so the reporting process still sees its end), and do not count it among this process's children
        (whose exit would terminate it)."""
        self._writer.close()
        billiard.process._children.discard(self._process)  # type: ignore[attr-defined]

    def join(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Wait until the process exited (after :meth:`close`); after ``timeout_s`` terminate it (it then
        reports what the pipe holds and exits), then kill it. Only in the process that made it."""
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


def _serve(handle: BatchHandler, batch_max: int, reader: Any, writer: Any, reported: Any, parent: int) -> None:
    """The reporting process: report batches as they come until every writer closed the pipe, or the worker
    is gone.

    SIGINT is ignored (Ctrl-C reaches the whole process group; the worker closes the pipe once it has sent
    everything). SIGTERM or SIGQUIT (a service manager stopping the group, or ``terminate()``) make it report
    what the pipe holds already, then exit.
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
                batch += reader.recv()
        except EOFError:  # every process of the worker closed the pipe: they sent everything
            ended = True
        except Exception:  # a message that cannot be read (its writer was killed mid-write)
            logger.exception("mageflow_celery: the reporting process cannot read its pipe; it exits")
            ended = True
        if batch:
            try:
                handle(batch)
            except Exception:
                logger.exception("mageflow_celery: reporting %d outcome(s) failed; the reaper reconciles", len(batch))
            reported.value += len(batch)
        if ended:
            return

"""The reaper: finds what is due and reconciles it (R2, R3, D6); one active per key prefix.

Every live worker runs a :class:`ReaperStep` (a bootstep with its own thread); one of them at a time per
key prefix is active, elected by a Redis lock with a TTL. The active one asks the **due index**
(``<p>:due``, a zset of swarm id -> the next time to look at it) what is due, every ``poll_s``
(``mageflow_reaper_poll_s``, default 0.05 s), and hands each due swarm to the
:class:`~mageflow_celery.worker.reconcile.Reconciler`, then moves its entry to the swarm's next deadline
(or drops it). So its cost follows the work that is due, not the number of swarms (P5).

The index is kept without a write per member transition: a client call that admits members indexes the
swarm "soon", and the reaper moves the entry to the swarm's real next deadline when it looks; a swarm
whose entry was lost (a client that died between its admission and indexing it) is found by a sweep that
reads one small page of the index of unfinished swarms per tick (``mageflow_reaper_interval_s``).

Layer: ``worker`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import weakref
from typing import Any

from celery import Celery, bootsteps

from ..engine.flow import POOL_GRACE_S
from ..engine.pools import configure_pool, configured_pools
from ..engine.runtime import Runtime, installed_runtime, runtime_for
from ..keys import pool_due_member
from ..state.store import IndexCursor
from .checks import warn_tasks_ignoring_results
from .parts import existing_leases
from .reconcile import ReapReport, Reconciler, reconcile_pools, restate_demand, wake_pool_at

logger = logging.getLogger("mageflow_celery")

#: Seconds between two sweeps of the index of unfinished swarms (``app.conf.mageflow_reaper_interval_s``).
DEFAULT_INTERVAL_S = 10.0
#: Seconds between two looks at the due index (``app.conf.mageflow_reaper_poll_s``).
DEFAULT_POLL_S = 0.05
#: The reaper lock lives this many sweep intervals without renewal (a dead reaper's lock passes on).
LOCK_TICKS = 3
#: Due entries handled per look.
DUE_BATCH = 200
#: Unfinished swarms the sweep reads per tick (bounded cost, a whole index over many ticks).
SWEEP_PAGE = 200
#: A swarm whose handling raised is looked at again this much later.
RETRY_AFTER_S = 5.0
#: The due index's members for pools start with this (``keys.pool_due_member``).
POOL_MEMBER_PREFIX = pool_due_member("")
_SWEEP_FIELDS = ("dispatched", "running", "fin", "state", "paused", "pool", "queued", "limit")

__all__ = ["ReapReport", "Reaper", "ReaperStep", "add_to", "reap_once"]


def reap_once(app: Celery) -> ReapReport:
    """Run one full reaper pass for ``app`` now, without the lock (tests, ``celery swarm reap``): every
    unfinished swarm holding a token or a finalization claim is looked at, whatever the due index says."""
    reaper = Reaper(runtime_for(app))
    reaper.sweep(full=True, now=True)
    return reaper.tick()


class Reaper:
    """Looks at what the due index says is due, and sweeps the index of unfinished swarms page by page."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.reconciler = Reconciler(runtime)
        self._cursor: IndexCursor | None = None

    def tick(self) -> ReapReport:
        """Handle every due swarm (in batches), then record what was done in the stats."""
        report = ReapReport()
        store = self.rt.store
        while True:
            now, entries = store.due(DUE_BATCH)
            for member, score in entries:
                report.swarms += 1
                try:
                    if member.startswith(POOL_MEMBER_PREFIX):
                        next_at = wake_pool_at(self.rt, member[len(POOL_MEMBER_PREFIX) :], report)
                    else:
                        next_at = self.reconciler.reap_swarm(member, report)
                except Exception:
                    report.errors += 1
                    next_at = now + RETRY_AFTER_S
                    logger.exception("swarm %s: the reaper failed; looking again in %.0fs", member, RETRY_AFTER_S)
                store.reschedule(member, score, next_at)
            if len(entries) < DUE_BATCH:
                break
        if report:
            self._record(report)
        return report

    def sweep(self, full: bool = False, now: bool = False) -> int:
        """Index the unfinished swarms that hold a token or a claim and have no due entry (one page, or
        ``full``: all); ``now``: due at once instead of soon. Pool tokens whose holder is gone are freed.
        Returns how many swarms were indexed."""
        store = self.rt.store
        report = ReapReport()
        waiting = reconcile_pools(self.rt, POOL_GRACE_S, report)
        found = 0
        while True:
            rows, self._cursor = store.unfinished_page(_SWEEP_FIELDS, self._cursor, SWEEP_PAGE)
            busy = [sid for sid, row in rows if _held(row) or row.get("fin") == b"claimed"]
            for swarm_id in busy if now else store.unscheduled(busy):
                store.schedule_soon(swarm_id, 0.0 if now else 1.0)
                found += 1
            for swarm_id in _stalled_on_pool(rows, waiting):  # its demand never reached its pool
                restate_demand(self.rt, swarm_id, report)
            if not full or self._cursor is None:
                if report:
                    self._record(report)
                return found

    def _record(self, report: ReapReport) -> None:
        logger.info("reaper: %s", report)
        counts = {f"reaper_{k}": v for k, v in dataclasses.asdict(report).items() if v and k != "swarms"}
        try:
            self.rt.store.add_stats(counts)
        except Exception:
            logger.warning("reaper: could not count its actions in the metrics", exc_info=True)


def _held(row: dict[str, bytes]) -> bool:
    return any(int(float(row.get(name) or b"0")) for name in ("dispatched", "running"))


def _stalled_on_pool(rows: list[tuple[str, dict[str, bytes]]], waiting: dict[str, set[str]]) -> list[str]:
    """Running pooled swarms with queued members and room under their own limit that their pool does not
    know are waiting (a process died between their admission step and telling the pool)."""

    def num(row: dict[str, bytes], name: str) -> int:
        return int(float(row.get(name) or b"0"))

    out = []
    for swarm_id, row in rows:
        pool = row.get("pool", b"").decode()
        if not pool or row.get("state") != b"running" or row.get("paused") == b"1" or num(row, "queued") == 0:
            continue
        if num(row, "dispatched") + num(row, "running") < num(row, "limit") and swarm_id not in waiting.get(pool, ()):
            out.append(swarm_id)
    return out


# -- the worker bootstep ------------------------------------------------------------------------------


class ReaperStep(bootsteps.StartStopStep):
    """Runs the reaper in a worker's main process; one worker per key prefix is active (Redis lock)."""

    label = "mageflow reaper"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, parent: Any) -> None:
        rt = installed_runtime(parent.app)
        if rt is None:
            return
        warn_tasks_ignoring_results(parent.app)
        conf = parent.app.conf
        for name, (limit, rate) in configured_pools(conf).items():  # app.conf.mageflow_pools (F1)
            configure_pool(rt, name, limit, rate)
        if not conf.get("mageflow_reaper", True):
            return
        interval = float(conf.get("mageflow_reaper_interval_s") or DEFAULT_INTERVAL_S)
        poll = float(conf.get("mageflow_reaper_poll_s") or DEFAULT_POLL_S)
        rt.store  # noqa: B018 - connect in this thread, not in the reaper's
        self._stop.clear()
        self._thread = threading.Thread(
            target=_run, args=(weakref.ref(rt), interval, poll, self._stop), name="mageflow-reaper", daemon=True
        )
        self._thread.start()

    def stop(self, parent: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None
        rt = installed_runtime(parent.app)
        keeper = existing_leases(rt) if rt is not None else None
        if keeper is not None:
            keeper.stop()

    terminate = stop


def _run(rt_ref: weakref.ref[Runtime], interval: float, poll: float, stop: threading.Event) -> None:
    """While this worker holds the lock: look at the due index every ``poll``, sweep every ``interval``."""
    rt = rt_ref()
    if rt is None:
        return
    reaper = Reaper(rt)
    lock = rt.store.reaper_lock(max(interval * LOCK_TICKS, 1.0))
    next_sweep = check_lock_at = 0.0
    holding = False
    try:
        while not stop.wait(poll):
            try:
                now = time.monotonic()
                if now >= check_lock_at:  # hold (or extend) the lock a few times per interval, not every poll
                    holding = lock.hold()
                    check_lock_at = now + interval / 3
                if not holding:
                    continue  # another worker's reaper is the active one
                if now >= next_sweep:
                    reaper.sweep()
                    next_sweep = now + interval
                reaper.tick()
            except Exception:
                logger.exception("reaper tick failed; retrying in %.1fs", interval)
                stop.wait(interval)
    finally:
        lock.release()


def add_to(app: Celery) -> None:
    """Add the reaper bootstep to the app's workers (idempotent)."""
    steps = app.steps["worker"]
    if ReaperStep not in steps:
        steps.add(ReaperStep)

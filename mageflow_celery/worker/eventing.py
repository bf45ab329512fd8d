"""Whether this worker's task events are on, for the swarm events (SPEC O3), in every process of the worker.

Celery decides in the worker's main process: the consumer's event dispatcher (``c.event_dispatcher``)
sends a task event when it is enabled and its ``groups`` are empty (``-E`` /
``worker_send_task_events``: every group) or hold ``"task"`` (``celery control enable_events`` adds it,
``disable_events`` removes it; a worker started with neither gossip nor heartbeat nor ``-E`` has a
disabled dispatcher, which remote control does not enable). The dispatcher is rebuilt when the
consumer reconnects, keeping its groups, so it is read afresh every time.

Prefork pool processes have no consumer, and remote control reaches only the main process. So the
main process mirrors the answer into one byte of shared memory, mapped before the pool and the reporting
process fork (:func:`switch_for`, from the consumer step's constructor or, earlier, the reporting process's
step) and rewritten at the consumer's start and every :data:`SYNC_INTERVAL_S`
seconds on its timer; a pool process reads that byte. A change made by remote control reaches the
pool processes within that interval.

Layer: ``worker`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import mmap
import os
import weakref
from typing import Any

from celery import bootsteps

from ..engine.events import set_task_events_probe
from ..engine.runtime import Runtime, installed_runtime

#: Seconds between two copies of the main process's answer into the shared byte (remote changes).
SYNC_INTERVAL_S = 0.5


def task_events_on(consumer: Any) -> bool:
    """Whether the consumer's event dispatcher sends task events now (Celery's own rule)."""
    dispatcher = getattr(consumer, "event_dispatcher", None)
    if dispatcher is None or not dispatcher.enabled:
        return False
    groups = dispatcher.groups
    return not groups or "task" in groups


class EventsSwitch:
    """The answer for one app in one worker: live in the main process, shared memory in pool processes."""

    def __init__(self) -> None:
        self._shared = mmap.mmap(-1, 1)  # anonymous and MAP_SHARED: forked pool processes see each write
        self._pid = os.getpid()
        self._consumer: Any = None

    def bind(self, consumer: Any) -> None:
        self._pid = os.getpid()
        self._consumer = consumer
        self.sync()

    def unbind(self) -> None:
        self._consumer = None
        self.sync()

    def sync(self) -> None:
        """Copy the main process's answer into the shared byte."""
        self._shared[0] = 1 if self._consumer is not None and task_events_on(self._consumer) else 0

    def __call__(self) -> bool:
        if os.getpid() == self._pid and self._consumer is not None:
            return task_events_on(self._consumer)
        return self._shared[0] == 1


_switches: weakref.WeakKeyDictionary[Runtime, EventsSwitch] = weakref.WeakKeyDictionary()


def switch_for(rt: Runtime, hostname: str | None = None) -> EventsSwitch:
    """The switch of the app of ``rt`` in this worker, made and registered with the swarm events on first use.

    Whatever is forked after this call (the pool processes, the reporting process) shares its byte, so the
    reporting process forks only after making it (:mod:`.offload`).
    """
    switch = _switches.get(rt)
    if switch is None:
        switch = _switches[rt] = EventsSwitch()
    set_task_events_probe(rt, switch, hostname=hostname)
    return switch


class EventsSwitchStep(bootsteps.StartStopStep):
    """Consumer bootstep: registers the app's :class:`EventsSwitch` with the engine's swarm events."""

    label = "mageflow swarm events"
    requires = ("celery.worker.consumer.events:Events",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        # Built with the consumer, before the pool forks, so pool processes share the byte.
        rt = installed_runtime(parent.app)
        hostname = getattr(parent, "hostname", None)
        self.switch = switch_for(rt, hostname) if rt is not None else EventsSwitch()
        self._timer: Any = None

    def start(self, parent: Any) -> None:
        self.switch.bind(parent)
        if self._timer is None and getattr(parent, "timer", None) is not None:
            self._timer = parent.timer.call_repeatedly(SYNC_INTERVAL_S, self.switch.sync)

    def stop(self, parent: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def shutdown(self, parent: Any) -> None:
        self.stop(parent)
        self.switch.unbind()


def add_to(app: Any) -> None:
    """Add the switch to the app's worker consumers (idempotent)."""
    steps = app.steps["consumer"]
    if EventsSwitchStep not in steps:
        steps.add(EventsSwitchStep)

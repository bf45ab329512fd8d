"""Swarm transitions as Celery events (SPEC O3): ``swarm-started``, ``swarm-closed``, ``swarm-paused``,
``swarm-resumed`` and ``swarm-finished``, for event consumers (``celery events``, Flower's event stream).

Receivers of the transition signals (:mod:`mageflow_celery.signals`), connected by
:func:`mageflow_celery.install`, so an event leaves the process that made the transition, and only when
events are on there:

* anywhere, when the app sets ``task_send_sent_event`` (the setting that makes a client send
  ``task-sent``);
* in a worker, when its task events are on (``-E``, ``worker_send_task_events``, or
  ``celery control enable_events``): the worker layer registers a probe per app
  (:func:`set_task_events_probe`) that answers in the main process and in prefork pool processes.

Each event carries ``swarm_id``, ``name``, ``state``, ``closed``, ``paused``, ``max_concurrency`` and the
counts of :class:`~mageflow_celery.SwarmProgress` (``total``, ``registered``, ``queued``, ``dispatched``,
``running``, ``succeeded``, ``failed``, ``cancelled``, ``done``), read in one round trip after the
transition. Events are published through the app's producer pool with one dispatcher per process and
app; a failure to send is logged, never raised: the transition already happened.

Layer: ``engine`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

from celery import Celery

from ..signals import swarm_closed, swarm_finished, swarm_paused, swarm_resumed, swarm_started
from .runtime import Runtime, installed_runtime
from .summary import COUNTS, counts

logger = logging.getLogger("mageflow_celery")

#: Event types, by the signal that triggers them.
EVENT_TYPES = {
    swarm_started: "swarm-started",
    swarm_closed: "swarm-closed",
    swarm_paused: "swarm-paused",
    swarm_resumed: "swarm-resumed",
    swarm_finished: "swarm-finished",
}
_FIELDS = ("state", "paused", "closed", "limit", *COUNTS)

_lock = threading.Lock()
_probes: weakref.WeakKeyDictionary[Runtime, Callable[[], bool]] = weakref.WeakKeyDictionary()
#: One dispatcher per app in this process (``(pid, dispatcher)``: a forked child makes its own).
_dispatchers: weakref.WeakKeyDictionary[Runtime, tuple[int, Any]] = weakref.WeakKeyDictionary()
_hostnames: weakref.WeakKeyDictionary[Runtime, str] = weakref.WeakKeyDictionary()


def set_task_events_probe(rt: Runtime, probe: Callable[[], bool] | None, hostname: str | None = None) -> None:
    """Register (or, with ``None``, remove) what tells whether this worker's task events are on for the app
    of ``rt``; ``hostname`` names the worker in the events it sends."""
    with _lock:
        if probe is None:
            _probes.pop(rt, None)
        else:
            _probes[rt] = probe
        if hostname:
            _hostnames[rt] = hostname


def events_enabled(rt: Runtime) -> bool:
    """Whether this process sends swarm events for the app of ``rt`` (see the module docstring)."""
    if rt.app.conf.task_send_sent_event:
        return True
    probe = _probes.get(rt)
    return bool(probe is not None and probe())


def _dispatcher(rt: Runtime) -> Any:
    """This process's event dispatcher for the app: no connection of its own, it publishes through the
    app's producer pool (as Celery's ``task-sent`` events do)."""
    pid = os.getpid()
    found = _dispatchers.get(rt)
    if found is None or found[0] != pid:
        with _lock:
            found = _dispatchers.get(rt)
            if found is None or found[0] != pid:
                dispatcher = rt.app.events.Dispatcher(
                    hostname=_hostnames.get(rt), enabled=False, buffer_while_offline=False
                )
                found = _dispatchers[rt] = (pid, dispatcher)
    return found[1]


def event_fields(rt: Runtime, swarm_id: str, name: str | None, state: str | None = None) -> dict[str, Any]:
    """The fields of a swarm event: the swarm's state, flags and counts now (one round trip)."""
    meta = rt.store.metas([swarm_id], _FIELDS)[0]
    got = counts(meta)
    paused = meta.get("paused", b"0") == b"1"
    current = meta.get("state", b"").decode() or "unknown"
    if current == "running" and paused:
        current = "paused"
    return {
        "swarm_id": swarm_id,
        "name": name,
        "state": state or current,
        "closed": meta.get("closed", b"0") == b"1",
        "paused": paused,
        "max_concurrency": int(float(meta.get("limit", b"0") or 0)),
        **got,
        "done": got["succeeded"] + got["failed"] + got["cancelled"],
    }


def send_swarm_event(app: Celery, event_type: str, swarm_id: str, name: str | None, state: str | None = None) -> bool:
    """Send one swarm event if events are on in this process; ``True`` if it was published."""
    rt = installed_runtime(app)
    if rt is None or not events_enabled(rt):
        return False
    try:
        fields = event_fields(rt, swarm_id, name, state)
        dispatcher = _dispatcher(rt)
        with app.producer_or_acquire() as producer:
            dispatcher.publish(event_type, fields, producer, retry=False)
    except Exception as exc:
        logger.warning("swarm %s: sending the %s event failed: %r", swarm_id, event_type, exc)
        return False
    return True


def _receiver(event_type: str) -> Callable[..., None]:
    def receive(sender: Any = None, app: Any = None, name: str | None = None, **kwargs: Any) -> None:
        if app is not None and isinstance(sender, str):
            send_swarm_event(app, event_type, sender, name, kwargs.get("state"))

    receive.__name__ = f"send_{event_type.replace('-', '_')}"
    return receive


_RECEIVERS = {signal: _receiver(event_type) for signal, event_type in EVENT_TYPES.items()}


def connect() -> None:
    """Connect the receivers that turn transition signals into events (idempotent)."""
    for signal, receiver in _RECEIVERS.items():
        signal.connect(receiver, weak=False, dispatch_uid=f"mageflow_celery.events.{EVENT_TYPES[signal]}")


__all__ = ["EVENT_TYPES", "connect", "event_fields", "events_enabled", "send_swarm_event", "set_task_events_probe"]

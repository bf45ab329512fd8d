"""Consume Celery events with Celery's own ``app.events.Receiver`` in a thread, for the O3 tests.

The Redis transport's event exchange is a fanout: an event sent before the receiver's queue is bound is
lost. :meth:`EventLog.start` returns once a marker event it sent itself came back; a marker sent after the
events under test, once seen, proves every earlier event was seen too (one queue keeps their order).
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from celery import Celery

from mageflow_celery.testing import wait_for

MARKER = "mageflowtest-marker"


class EventLog:
    """Every event of ``app``'s broker, in arrival order (as dicts)."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.events: list[dict[str, Any]] = []
        self._conn = app.connection_for_read()
        self._receiver = app.events.Receiver(self._conn, handlers={"*": self.events.append})
        self._thread = threading.Thread(target=self._run, name="event-log", daemon=True)
        self._markers = itertools.count()

    def _run(self) -> None:
        try:
            self._receiver.capture(limit=None, timeout=None, wakeup=False)
        except Exception:
            if not self._receiver.should_stop:
                raise

    def start(self) -> EventLog:
        self._thread.start()
        wait_for(self._marker_seen(), timeout_s=20, message="the event receiver to consume")
        return self

    def _marker_seen(self) -> Any:
        sent: list[int] = []

        def seen() -> bool:
            n = next(self._markers)
            sent.append(n)
            with self.app.events.default_dispatcher() as dispatcher:
                dispatcher.send(MARKER, n=n)
            return any(e["type"] == MARKER and e.get("n") in sent for e in self.events)

        return seen

    def sync(self) -> None:
        """Return once every event sent before this call was received."""
        n = next(self._markers)
        with self.app.events.default_dispatcher() as dispatcher:
            dispatcher.send(MARKER, n=n)
        wait_for(lambda: any(e["type"] == MARKER and e.get("n") == n for e in self.events), timeout_s=20)

    def of(self, prefix: str = "swarm-", swarm_id: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in list(self.events)
            if e["type"].startswith(prefix) and (swarm_id is None or e.get("swarm_id") == swarm_id)
        ]

    def stop(self) -> None:
        self._receiver.should_stop = True
        self._thread.join(timeout=10)
        self._conn.close()

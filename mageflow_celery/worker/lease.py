"""Lease renewal: a thread of each worker's main process keeps the leases of the members it holds.

The start gate (:mod:`.gate`) gives each delivery it lets through a lease token; ``task_received`` (the
worker's main process) records the request with it; every ``lease_s / 3`` (the shortest ``lease_s`` among
the swarms held) the thread renews, in one call, the leases of every delivery the worker still holds,
by token: a member handed on (next chain step, retry, replace) or re-published is not renewed. A
request is held while Celery tracks it
(``celery.worker.state.requests``: reserved, waiting for its ETA, or executing) or while its message
is not acknowledged yet (received but not yet reserved, e.g. waiting for a rate-limit token).

One round trip per tick on a standalone Redis (a pipeline); on Redis Cluster one call per swarm held,
because the keys of different swarms live on different slots. The thread never runs on the consumer's
event loop, so a slow Redis cannot stall message consumption; it works for every pool (prefork,
threads, solo, gevent/eventlet monkey-patch the thread into a greenlet).

Layer: ``worker`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Any

from celery.worker import state as worker_state

from ..engine.runtime import Runtime

logger = logging.getLogger("mageflow_celery")

#: Seconds before the first renewal of a swarm whose ``lease_s`` this worker does not know yet (the
#: shortest allowed lease is 1 s, so this is safe for every swarm).
FIRST_RENEW_S = 0.3
#: Seconds before retrying after a failed renewal.
RETRY_RENEW_S = 1.0
#: Longest sleep of the thread when nothing is held.
IDLE_WAIT_S = 5.0
#: Seconds (at least; a longer lease keeps it longer) a let-go delivery's token is remembered, so the
#: member's requeued message can take its lease over at once however late it comes back.
RELEASED_KEEP_S = 30.0


class _Held:
    """One member delivery held by this worker, with the lease token the start gate gave it."""

    __slots__ = ("index", "ref", "swarm_id", "task_id", "token")

    def __init__(self, swarm_id: str, index: int, token: str, request: Any) -> None:
        self.swarm_id = swarm_id
        self.index = index
        self.token = token
        self.task_id = str(getattr(request, "id", ""))
        try:
            self.ref: Any = weakref.ref(request)
        except TypeError:  # not weak-referenceable: rely on the worker state only
            self.ref = lambda: None

    def still_held(self) -> bool:
        """Celery still tracks the request (reserved, waiting for its ETA, executing), or has not
        acknowledged its message yet (received, waiting for a rate-limit token)."""
        request = self.ref()
        tracked = worker_state.requests.get(self.task_id)
        if tracked is not None and (request is None or tracked is request):
            return True
        return request is not None and not getattr(request, "acknowledged", True)


class LeaseKeeper:
    """Tracks the member deliveries of one app in this process and renews their leases."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._held: dict[str, _Held] = {}
        #: (swarm id, index) -> tokens of that member's deliveries in ``_held``: the start gate looks a member
        #: up on every delivery, and ``_held`` keeps every delivery since the last renewal tick.
        self._tokens: dict[tuple[str, int], list[str]] = {}
        #: (swarm id, index) -> (token, monotonic deadline) of deliveries this worker stopped holding (the
        #: renewal tick forgets them in ``_held``), kept for ``RELEASED_KEEP_S`` or one lease if longer.
        self._released: dict[tuple[str, int], tuple[str, float]] = {}
        self._lease_s: dict[str, float] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._pid = -1
        self._thread: threading.Thread | None = None
        self._next_at = float("inf")
        #: Renewal round trips made (for tests and benchmarks).
        self.ticks = 0

    def track(self, swarm_id: str, index: int, token: str, request: Any) -> None:
        """Hold a member delivery the start gate let through with ``token`` (called from ``task_received``)."""
        with self._lock:
            self._held[token] = _Held(swarm_id, index, token, request)
            self._tokens.setdefault((swarm_id, index), []).append(token)
            unknown = swarm_id not in self._lease_s
            if unknown:
                self._lease_s[swarm_id] = 3 * FIRST_RENEW_S
                self._next_at = min(self._next_at, time.monotonic() + FIRST_RENEW_S)
        self._ensure_thread()
        if unknown:
            self._wake.set()

    def released_token(self, swarm_id: str, index: int) -> str:
        """The lease token of a delivery of this member this worker held and no longer holds (its pool
        process died and Celery requeued the message): the member's next delivery may take over at once."""
        with self._lock:
            for token in self._tokens.get((swarm_id, index), ()):
                if not self._held[token].still_held():
                    return token
            token, deadline = self._released.get((swarm_id, index), ("", 0.0))
        return token if deadline > time.monotonic() else ""

    def let_go(self, swarm_id: str, index: int, token: str) -> None:
        """A delivery that took ``token`` at receipt and that this worker let go before Celery took it (the
        consumer stopped): the member's next delivery here may take that lease over at once."""
        keep_s = max(self._lease_s.get(swarm_id, 0.0), RELEASED_KEEP_S)
        with self._lock:
            self._released[(swarm_id, index)] = (token, time.monotonic() + keep_s)

    def held(self) -> dict[str, list[tuple[int, str]]]:
        """``(index, token)`` of the deliveries still held, by swarm; finished ones are forgotten."""
        out: dict[str, list[tuple[int, str]]] = {}
        now = time.monotonic()
        with self._lock:
            self._released = {k: v for k, v in self._released.items() if v[1] > now}
            for token, h in list(self._held.items()):
                if h.still_held():
                    out.setdefault(h.swarm_id, []).append((h.index, token))
                else:
                    self._forget(token)
                    keep_s = max(self._lease_s.get(h.swarm_id, 0.0), RELEASED_KEEP_S)
                    self._released[(h.swarm_id, h.index)] = (token, now + keep_s)
            for swarm_id in set(self._lease_s) - set(out):
                del self._lease_s[swarm_id]
        return out

    def renew(self) -> int:
        """Renew the leases of every delivery held now (one round trip); returns how many were renewed."""
        held = self.held()
        if not held:
            return 0
        replies = self.runtime.store.renew_many(held)
        self.ticks += 1
        renewed = 0
        with self._lock:
            for swarm_id, reply in replies.items():
                gone = {index for index, _ in held[swarm_id]} if reply is None else reply.gone
                if reply is not None:
                    self._lease_s[swarm_id] = reply.lease_s
                renewed += len(held[swarm_id]) - len(gone)
                for index, token in held[swarm_id]:
                    if index in gone:
                        self._forget(token)
        return renewed

    def _forget(self, token: str) -> None:
        """Stop tracking the delivery holding ``token`` (the caller holds the lock)."""
        h = self._held.pop(token, None)
        if h is None:
            return
        key = (h.swarm_id, h.index)
        tokens = self._tokens.get(key, [])
        if token in tokens:
            tokens.remove(token)
        if not tokens:
            self._tokens.pop(key, None)

    def stop(self) -> None:
        """Stop the thread (it starts again with the next received member)."""
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        self._thread = None

    def _interval(self) -> float:
        with self._lock:
            leases = list(self._lease_s.values())
        return min(leases) / 3 if leases else IDLE_WAIT_S

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="mageflow-leases", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stopping:
            self._wake.wait(min(IDLE_WAIT_S, max(0.0, self._next_at - time.monotonic())))
            self._wake.clear()
            if self._stopping:
                return
            if time.monotonic() < self._next_at:
                continue
            try:
                self.renew()
                delay = self._interval()
            except Exception:
                logger.exception("renewing member leases failed; retrying in %.1fs", RETRY_RENEW_S)
                delay = RETRY_RENEW_S
            with self._lock:
                self._next_at = time.monotonic() + delay

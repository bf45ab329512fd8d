"""The start gate: every delivery of a member passes it in the worker's consumer before Celery reserves it.

A consumer bootstep wraps the task strategies Celery built for the worker (the functions that turn a
message into a request). For a member's message it runs ``receive.lua`` first (one round trip, the
one S2 names "receipt"), which answers:

* ``ok``: this delivery holds the member's lease; a fresh lease token is put in the message headers
  (``mageflow_lease``), so the request carries it to ``task_received`` (lease renewal) and into the
  task (hand-offs, see :mod:`.endings`);
* ``drop``: the swarm was cancelled or failed; the member is revoked the way Celery revokes (REVOKED
  stored, ``task_revoked`` sent), never executed;
* ``dup``: another delivery of the same step holds a live lease, the copy is stale (an older publish
  epoch, an earlier chain step) or the member already finished: the message is acknowledged and
  discarded: nothing runs, nothing is stored, no signal is sent (SPEC D5);
* ``ignore`` / ``unknown``: not a tracked member (a copy applied outside its swarm, an expired swarm):
  Celery runs it as usual.

On a worker whose consumer runs Celery's event loop (the hub: prefork, solo and threads pools on a Redis or
AMQP broker) and a state Redis the call can be pipelined on (:func:`~..state.receipts.pipelinable`), the
gate does not wait for the reply (:class:`AsyncGate`): it writes the call on a connection of its own and
hands the message to Celery's strategy when the verdict is read, so the consumer reads the next message
meanwhile. A message still runs only after its verdict. When that connection fails, a reply errs or none
comes within :data:`REPLY_TIMEOUT_S`, the waiting messages are gated again with the blocking call, each
allowed to take over the lease its lost call may have taken.

Layer: ``worker`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import bootsteps
from celery.exceptions import InvalidTaskError
from celery.worker import state as worker_state
from kombu.exceptions import ContentDisallowed, DecodeError

from ..engine.dispatch import follow
from ..engine.flow import apply_grants
from ..engine.members import EPOCH_HEADER, LEASE_HEADER
from ..engine.retry import with_retries
from ..engine.runtime import Runtime, installed_runtime
from ..keys import MemberRef, parse_member_task_id
from ..state.receipts import ReceiptChannel, pipelinable
from ..state.records import Receipt
from .parts import leases

logger = logging.getLogger("mageflow_celery")
_GATED = "_mageflow_gated"
#: Backoff of a failing receipt call: the consumer waits for it, so it gives up sooner than a report.
RECEIVE_RETRY_DELAYS_S = (0.05, 0.2, 0.5)
#: Seconds a receipt sent without waiting may go unanswered before the gate gives its connection up.
REPLY_TIMEOUT_S = 10.0
#: Seconds between two looks for an unanswered receipt; also how long a failed connection is not reopened.
CHECK_S = 1.0


def _epoch(headers: dict[str, Any]) -> int | None:
    raw = headers.get(EPOCH_HEADER)
    return int(raw) if isinstance(raw, (int, str)) and str(raw).isdigit() else None


def gate(rt: Runtime, ref: MemberRef, headers: dict[str, Any], previous: str | None = None) -> str:
    """Run the start gate for one delivery whose message headers are ``headers`` (updated in place), waiting
    for the verdict. ``previous``: a lease token this delivery may take over (default: one of a delivery of
    the member this worker let go)."""
    token, previous = _prepare(rt, ref, headers, previous)
    try:
        receipt = with_retries(
            f"swarm {ref.swarm_id}: receive",
            rt.store.receive_full,
            ref.swarm_id,
            ref.index,
            ref.step,
            token,
            _epoch(headers),
            previous,
            delays=RECEIVE_RETRY_DELAYS_S,
        )
    except Exception:
        logger.exception("swarm %s: recording receipt of member %d failed; it runs untracked", ref.swarm_id, ref.index)
        return "error"
    return _settle(rt, headers, token, receipt)


def _prepare(rt: Runtime, ref: MemberRef, headers: dict[str, Any], previous: str | None) -> tuple[str, str]:
    """Before a receipt: drop a lease token the message carries from an earlier run, and give the delivery a
    fresh one; also the token it may take over (``previous``, or one of a delivery this worker let go)."""
    headers.pop(LEASE_HEADER, None)
    if previous is None:
        previous = leases(rt).released_token(ref.swarm_id, ref.index)
    return uuid.uuid4().hex, previous


def _settle(rt: Runtime, headers: dict[str, Any], token: str, receipt: Receipt) -> str:
    verdict, released, pool = receipt
    if verdict == "ok":
        headers[LEASE_HEADER] = token
    if released and pool:  # a member dropped at receipt gives its pool token back
        _give_back(rt, pool, released)
    return verdict


def _give_back(rt: Runtime, pool: str, grants: list[str]) -> None:
    try:
        for swarm_id, tr in apply_grants(rt, pool, rt.store.pool_settle(pool, "", 0, 1, grants)):
            follow(rt, swarm_id, tr)
    except Exception:
        logger.exception("pool %s: giving back %d grant(s) failed; the reaper reconciles the pool", pool, len(grants))


@dataclass(slots=True)
class _Waiting:
    """A delivery whose receipt was sent and not answered yet."""

    ref: MemberRef
    headers: dict[str, Any]
    token: str
    proceed: Callable[[str], None]
    sent_at: float


class AsyncGate:
    """The start gate on the consumer's event loop: receipts pipelined on a :class:`ReceiptChannel`, each
    message handed on (``proceed(verdict)``) when its reply is read, in the order the messages came."""

    def __init__(self, rt: Runtime, hub: Any) -> None:
        self.rt = rt
        self.hub = hub
        self._channel: ReceiptChannel | None = None
        self._fd = -1
        self._pending: deque[_Waiting] = deque()
        self._closed_until = 0.0
        self._stopped = False
        #: When the gate last handed a message on (a solo pool runs the task meanwhile, on this thread).
        self._progress_at = 0.0
        self._timer = hub.call_repeatedly(CHECK_S, self._check)
        #: Receipts sent without waiting (for tests and benchmarks).
        self.sent = 0

    def submit(self, ref: MemberRef, headers: dict[str, Any], proceed: Callable[[str], None]) -> None:
        """Gate one delivery; ``proceed`` gets its verdict, later or (when the connection fails) now."""
        token, previous = _prepare(self.rt, ref, headers, None)
        channel = self._open()
        if channel is not None:
            try:
                channel.send(ref.swarm_id, ref.index, ref.step, token, _epoch(headers), previous)
            except Exception:
                logger.warning("mageflow start gate: sending a receipt failed; gating while waiting", exc_info=True)
                self._break()
            else:
                self._pending.append(_Waiting(ref, headers, token, proceed, time.monotonic()))
                self.sent += 1
                return
        _proceed(proceed, gate(self.rt, ref, headers, previous))

    def close(self) -> None:
        """The consumer stops: the messages still waiting are not run (their deliveries go back to the broker
        with the consumer's connection); a redelivery to this worker may take over the lease each may hold."""
        self._stopped = True
        self._timer.cancel()
        keeper = leases(self.rt)
        while self._pending:
            waiting = self._pending.popleft()
            keeper.let_go(waiting.ref.swarm_id, waiting.ref.index, waiting.token)
        self._drop_channel()

    def _open(self) -> ReceiptChannel | None:
        if self._channel is None and not self._stopped and time.monotonic() >= self._closed_until:
            try:
                channel = ReceiptChannel(self.rt.store)
            except Exception:
                logger.warning("mageflow start gate: no connection of its own to the state Redis", exc_info=True)
                self._closed_until = time.monotonic() + CHECK_S
                return None
            self._channel, self._fd = channel, channel.fileno()
            self.hub.add_reader(self._fd, self._on_readable)
        return self._channel

    def _on_readable(self) -> None:
        channel = self._channel
        if channel is None:
            return
        try:
            for reply in channel.replies():
                waiting = self._pending.popleft()
                if isinstance(reply, Exception):
                    logger.debug("mageflow start gate: receipt answered %r; gating again", reply)
                    verdict = self._again(waiting)
                else:
                    verdict = _settle(self.rt, waiting.headers, waiting.token, reply)
                _proceed(waiting.proceed, verdict)
                self._progress_at = time.monotonic()
        except Exception:
            logger.warning("mageflow start gate: its Redis connection failed; gating while waiting", exc_info=True)
            self._break()

    def _check(self) -> None:
        if not self._pending:
            return
        waited = time.monotonic() - max(self._pending[0].sent_at, self._progress_at)
        if waited > REPLY_TIMEOUT_S:
            logger.warning("mageflow start gate: no receipt for %.1f s; gating while waiting", REPLY_TIMEOUT_S)
            self._break()

    def _break(self) -> None:
        """Give the connection up; gate what was waiting on it again, blocking, in order (each may take over
        the lease its lost call took)."""
        self._drop_channel()
        self._closed_until = time.monotonic() + CHECK_S
        while self._pending and not self._stopped:
            waiting = self._pending.popleft()
            _proceed(waiting.proceed, self._again(waiting))

    def _again(self, waiting: _Waiting) -> str:
        """Gate a delivery whose receipt got no usable reply again, blocking: it may take over the lease its
        lost call took."""
        return gate(self.rt, waiting.ref, waiting.headers, waiting.token)

    def _drop_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            self.hub.remove_reader(self._fd)
            try:
                channel.close()
            except Exception:
                logger.debug("closing the start gate's connection failed", exc_info=True)


def _proceed(proceed: Callable[[str], None], verdict: str) -> None:
    try:
        proceed(verdict)
    except Exception:  # on the event loop: an error must not stop the consumer
        logger.exception("mageflow start gate: handling a member's message after its receipt failed")


def _after(consumer: Any, headers: dict[str, Any], ref: MemberRef, verdict: str, ack: Any) -> bool:
    """Act on a verdict; whether the message goes on to Celery's strategy."""
    if verdict == "dup":
        logger.debug("swarm %s: a copy of member %d discarded (D5)", ref.swarm_id, ref.index)
        ack(logger, consumer.connection_errors)
        return False
    if verdict == "drop":
        worker_state.revoked.add(headers["id"])
        logger.debug("swarm %s: member %d dropped at receipt (swarm ended)", ref.swarm_id, ref.index)
    return True


def _gated(strategy: Callable[..., Any], rt: Runtime, consumer: Any, step: GateStep) -> Callable[..., Any]:
    def handler(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **kwargs: Any) -> Any:
        headers = message.headers
        ref = parse_member_task_id(headers.get("id")) if isinstance(headers, dict) else None
        if ref is None:
            return strategy(message, body, ack, reject, callbacks, **kwargs)
        agate = step.async_gate
        if agate is None:
            if _after(consumer, headers, ref, gate(rt, ref, headers), ack):
                return strategy(message, body, ack, reject, callbacks, **kwargs)
            return None

        def proceed(verdict: str) -> None:  # later, on the event loop: as Celery's consumer handles errors
            if not _after(consumer, headers, ref, verdict, ack):
                return
            try:
                strategy(message, body, ack, reject, callbacks, **kwargs)
            except (InvalidTaskError, ContentDisallowed) as exc:
                consumer.on_invalid_task(body, message, exc)
            except DecodeError as exc:
                consumer.on_decode_error(message, exc)

        agate.submit(ref, headers, proceed)
        return None

    setattr(handler, _GATED, True)
    return handler


class GateStep(bootsteps.StartStopStep):
    """Consumer bootstep: wraps the consumer's task strategies with the start gate (after they are built),
    and runs the gate on the consumer's event loop where it can (:class:`AsyncGate`)."""

    label = "mageflow start gate"
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.async_gate: AsyncGate | None = None

    def start(self, c: Any) -> None:
        rt = installed_runtime(c.app)
        if rt is None:
            return
        self._close()
        hub = getattr(c, "hub", None)
        if hub is not None and pipelinable(rt.store.client):
            self.async_gate = AsyncGate(rt, hub)
        for name, strategy in list(c.strategies.items()):
            if not getattr(strategy, _GATED, False):
                c.strategies[name] = _gated(strategy, rt, c, self)

    def stop(self, c: Any) -> None:
        self._close()

    def shutdown(self, c: Any) -> None:
        self._close()

    def _close(self) -> None:
        agate, self.async_gate = self.async_gate, None
        if agate is not None:
            agate.close()


def add_to(app: Any) -> None:
    """Add the start gate to the app's worker consumers (idempotent)."""
    steps = app.steps["consumer"]
    if GateStep not in steps:
        steps.add(GateStep)

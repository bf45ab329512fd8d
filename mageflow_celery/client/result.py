"""SwarmResult (a handle on a swarm by id) and SwarmProgress (a snapshot of its counts).

Layer: ``client`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from celery import states
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult
from pydantic import BaseModel, ConfigDict

from .._compat import assert_will_not_block
from ..engine.finalize import outcome_value
from ..engine.runtime import Runtime, runtime_for
from ..engine.summary import COUNTS, counts
from ..errors import SwarmCancelledError, SwarmFailedError, SwarmNotFoundError
from ..keys import member_task_id
from ..signals import swarm_closed, swarm_paused, swarm_resumed
from .definition import DEF_KEY
from .drive import advance

logger = logging.getLogger("mageflow_celery")

if TYPE_CHECKING:
    _AsyncResultBase = AsyncResult[Any]
else:
    _AsyncResultBase = AsyncResult

_CELERY_STATE = {
    "pending": states.PENDING,
    "running": states.STARTED,
    "paused": states.STARTED,
    "succeeded": states.SUCCESS,
    "failed": states.FAILURE,
    "cancelled": states.REVOKED,
}
_FIN = {"succeeded": "s", "failed": "f", "cancelled": "c"}
#: Meta fields a :class:`SwarmProgress` is built from (read with one HMGET, never the blobs).
PROGRESS_FIELDS = (
    "state",
    "paused",
    "name",
    "closed",
    "limit",
    "created_at",
    "finished_at",
    "pool",
    "rate_limit",
    "rate_int",
    "tat",
    *COUNTS,
)


class SwarmProgress(BaseModel):
    """Counts per member state plus the swarm's state, flags and timestamps (epoch seconds)."""

    model_config = ConfigDict(frozen=True)

    swarm_id: str
    name: str | None
    state: Literal["pending", "running", "paused", "succeeded", "failed", "cancelled"]
    closed: bool
    paused: bool
    max_concurrency: int
    total: int
    registered: int
    queued: int
    dispatched: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    created_at: float | None
    finished_at: float | None
    #: The pool its members share tokens of (F1), or ``None``.
    pool: str | None = None
    #: Its rate limit as configured (F3), or ``None``.
    rate_limit: str | None = None
    #: When its rate lets the next member in, while the rate holds admission back (epoch seconds), or ``None``.
    next_admission_at: float | None = None

    @property
    def done(self) -> int:
        """Members that finished (succeeded, failed or cancelled)."""
        return self.succeeded + self.failed + self.cancelled

    def bar(self, width: int = 30) -> str:
        """A one-line progress bar, e.g. ``[#########---------------------] 12/40``.

        Example:
            >>> print(result.progress().bar())
        """
        return progress_bar(self.done, self.total, width) + f" {self.done}/{self.total}"

    def __repr__(self) -> str:
        return (
            f"<SwarmProgress {self.swarm_id} {self.state}{' closed' if self.closed else ''}: "
            f"{self.done}/{self.total} done (ok {self.succeeded}, failed {self.failed}, cancelled {self.cancelled}), "
            f"running {self.running + self.dispatched}/{self.max_concurrency}, queued {self.queued}, "
            f"registered {self.registered}>"
        )

    __str__ = __repr__


def progress_bar(done: int, total: int, width: int = 30) -> str:
    """``[####------]``: ``done`` of ``total`` as a bar ``width`` characters wide (full when done)."""
    filled = width if total and done >= total else (width * done // total if total else 0)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _float(meta: dict[str, bytes], name: str) -> float | None:
    raw = meta.get(name)
    return float(raw) if raw else None


def progress_from_meta(swarm_id: str, meta: dict[str, bytes]) -> SwarmProgress:
    state = meta["state"].decode()
    paused = meta.get("paused", b"0") == b"1"
    if state == "running" and paused:
        state = "paused"
    return SwarmProgress(
        swarm_id=swarm_id,
        name=meta.get("name", b"").decode() or None,
        state=state,  # type: ignore[arg-type]
        closed=meta.get("closed", b"0") == b"1",
        paused=paused,
        max_concurrency=int(float(meta.get("limit", b"0"))),
        created_at=_float(meta, "created_at"),
        finished_at=_float(meta, "finished_at"),
        pool=meta.get("pool", b"").decode() or None,
        rate_limit=meta.get("rate_limit", b"").decode() or None,
        next_admission_at=_next_admission(meta),
        **counts(meta),
    )


def _next_admission(meta: dict[str, bytes]) -> float | None:
    """The rate's next slot while it holds queued members back (F3)."""
    tat = _float(meta, "tat") or 0.0
    held = float(meta.get("rate_int") or 0) > 0 and int(float(meta.get("queued") or 0)) > 0
    return tat if held and tat > time.time() else None


#: Member state names (S2) by the letter the state Redis stores ("" = registered).
MEMBER_STATES = {
    "": "registered",
    "q": "queued",
    "d": "dispatched",
    "r": "running",
    "s": "succeeded",
    "f": "failed",
    "c": "cancelled",
}
#: Largest page :meth:`SwarmResult.members` returns.
MEMBERS_PAGE_MAX = 10_000


class MemberInfo(BaseModel):
    """One member of a swarm (:meth:`SwarmResult.members`): where it is, what it runs, how it ended."""

    model_config = ConfigDict(frozen=True)

    #: Position in the swarm (order of adding).
    index: int
    #: Its Celery task id (``AsyncResult(task_id)`` works); a nested swarm's id.
    task_id: str
    #: The task it runs (``a | b`` for a chain, the swarm's name for a nested swarm).
    name: str
    state: Literal["registered", "queued", "dispatched", "running", "succeeded", "failed", "cancelled"]
    #: The failure record of a failed member (``task_id``, ``index``, ``exc_type``, ``message``); the
    #: first ``summary_max_failures`` failures keep one.
    error: dict[str, Any] | None = None


def member_name(data: Any) -> str:
    """A readable name for a stored member signature."""
    if not isinstance(data, dict):
        return "?"
    if data.get("subtask_type") == "swarm":
        definition = (data.get("kwargs") or {}).get(DEF_KEY) or {}
        return str(definition.get("name") or "swarm")
    if data.get("subtask_type") == "chain":
        return " | ".join(member_name(step) for step in (data.get("kwargs") or {}).get("tasks") or [])
    return str(data.get("task", "?"))


class SwarmResult(_AsyncResultBase):
    """Handle on a swarm by id; stands in for an :class:`~celery.result.AsyncResult`.

    ``SwarmResult(swarm_id, app=app)`` rebuilds it anywhere (a web request, a script). The state is
    read from the swarm state in Redis, so it works with any result backend.

    Example:
        >>> res = SwarmResult(swarm_id, app=app)
        >>> res.progress().succeeded
        >>> res.get(timeout=60)
    """

    def __init__(
        self,
        id: str,
        backend: Any = None,
        task_name: str | None = None,
        app: Any = None,
        parent: Any = None,
        created_later: bool = False,
    ):
        super().__init__(id, backend=backend, task_name=task_name, app=app, parent=parent)
        #: A handle from ``freeze()`` on a swarm that may be created later (a later step of a chain):
        #: ``get()`` waits for it. Any other handle on an id with no state raises ``SwarmNotFoundError``.
        self.created_later = created_later

    def __repr__(self) -> str:
        return f"<SwarmResult: {self.id}>"

    @property
    def _rt(self) -> Runtime:
        return runtime_for(self.app)

    def _swarm_state(self) -> str:
        """The swarm's state field alone (one HGET, not the whole meta hash); ``""`` when absent."""
        raw = self._rt.store.meta_field(self.id, "state")
        return raw.decode() if raw else ""

    def _meta(self) -> dict[str, bytes]:
        meta = self._rt.store.meta(self.id)
        if not meta:
            raise SwarmNotFoundError(self.id)
        return meta

    # -- AsyncResult protocol -----------------------------------------------------------------------

    @property
    def state(self) -> str:  # type: ignore[override]
        """PENDING, STARTED, SUCCESS, FAILURE or REVOKED (PENDING also for an unknown id, as Celery)."""
        state = self._swarm_state()
        return _CELERY_STATE[state] if state else states.PENDING

    status = state  # type: ignore[assignment]

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    @property
    def result(self) -> Any:
        """The result list once succeeded, the failure summary once failed, else ``None``."""
        meta = self._rt.store.meta(self.id)
        fin = _FIN.get(meta["state"].decode()) if meta else None
        return outcome_value(self._rt, self.id, fin, meta) if fin else None

    info = result

    def get(  # type: ignore[override]
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.1,
        disable_sync_subtasks: bool = True,
        **_: Any,
    ) -> Any:
        """Wait for the swarm to finish and return the result list the success callbacks receive.

        A handle from ``freeze()`` on a swarm not created yet (a swarm later in a chain) waits for it, as
        ``AsyncResult.get`` does; any other id with no state raises ``SwarmNotFoundError``.

        Raises:
            SwarmNotFoundError: no swarm has that id (never created, or expired).
            SwarmFailedError: the failure threshold was reached (``.summary`` has the details).
            SwarmCancelledError: the swarm was cancelled.
            celery.exceptions.TimeoutError: not finished within ``timeout`` seconds.
            RuntimeError: called inside a task (as ``AsyncResult.get``).
        """
        if disable_sync_subtasks:
            assert_will_not_block()
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        while True:
            state = self._swarm_state()
            if state in _FIN:
                break
            if not state and not self.created_later:
                raise SwarmNotFoundError(self.id)
            if deadline is not None and time.monotonic() >= deadline:
                raise CeleryTimeoutError(f"swarm {self.id} did not finish within {timeout}s")
            time.sleep(delay)
            delay = min(delay * 2, interval)
        value = outcome_value(self._rt, self.id, _FIN[state], self._rt.store.meta(self.id))
        if state == "cancelled":
            raise SwarmCancelledError(f"swarm {self.id} was cancelled")
        if state == "failed" and propagate:
            raise SwarmFailedError(value)
        return value

    wait = get  # type: ignore[assignment]

    def progress(self) -> SwarmProgress:
        """Counts per member state, the swarm state, flags and timestamps (one round trip)."""
        meta = self._rt.store.metas([self.id], PROGRESS_FIELDS)[0]
        if "state" not in meta:
            raise SwarmNotFoundError(self.id)
        return progress_from_meta(self.id, meta)

    def members(self, state: str | None = None, offset: int = 0, limit: int = 100) -> list[MemberInfo]:
        """One page of the swarm's members, in member order (queued ones: in queue order).

        ``state`` keeps only members in that state (S2's names); ``offset``/``limit`` count the rows after
        the filter. One round trip; the cost follows ``limit``, not the swarm's size.

        Raises:
            ValueError: an unknown state, a negative offset, or a limit outside 1..10,000.
            SwarmNotFoundError: no swarm has this id.

        Example:
            >>> [m.error["message"] for m in res.members(state="failed", limit=10)]
        """
        if state is not None and state not in MEMBER_STATES.values():
            raise ValueError(f"unknown member state {state!r}; one of {', '.join(MEMBER_STATES.values())}")
        if offset < 0 or not 1 <= limit <= MEMBERS_PAGE_MAX:
            raise ValueError(f"offset must be >= 0 and limit 1..{MEMBERS_PAGE_MAX} (got {offset}, {limit})")
        rows = self._rt.store.member_rows(self.id, state or "", offset, limit)
        if rows is None:
            raise SwarmNotFoundError(self.id)
        codec = self._rt.task_codec
        return [
            MemberInfo(
                index=row.index,
                task_id=member_task_id(self.id, row.index),
                name=member_name(codec.loads(row.sig)) if row.sig else "?",
                state=MEMBER_STATES.get(row.letter, "registered"),  # type: ignore[arg-type]
                error=json.loads(row.error) if row.error else None,
            )
            for row in rows
        ]

    # -- lifecycle by id ----------------------------------------------------------------------------

    def _name(self) -> str | None:
        raw = self._rt.store.meta_field(self.id, "name")
        return raw.decode() or None if raw else None

    def close_swarm(self) -> bool:
        """Accept no more members. ``True`` if this call closed it."""
        rt = self._rt
        tr = rt.store.close(self.id)
        if tr.status == "unknown":
            raise SwarmNotFoundError(self.id)
        if tr.status == "ok":
            name = self._name()
            logger.info("swarm %s (%s) closed", self.id, name)
            swarm_closed.send(sender=self.id, app=self.app, name=name)
            advance(rt, self.id, tr)
        return tr.status == "ok"

    def pause(self) -> bool:
        """Stop admitting members (also in nested swarms); running members finish. ``True`` if this call
        paused it."""
        tr = self._rt.store.pause(self.id)
        if tr.status == "unknown":
            raise SwarmNotFoundError(self.id)
        if tr.status == "ok":
            name = self._name()
            logger.info("swarm %s (%s) paused", self.id, name)
            swarm_paused.send(sender=self.id, app=self.app, name=name)
        self._each_child(lambda child: child.pause())
        return tr.status == "ok"

    def resume(self) -> bool:
        """Admit again (also in nested swarms), refilling up to the limit at once. ``True`` if this call
        resumed it."""
        rt = self._rt
        tr = rt.store.resume(self.id, want_ctx=rt.cached_ctx(self.id) is None)
        if tr.status == "unknown":
            raise SwarmNotFoundError(self.id)
        if tr.status == "ok":
            name = self._name()
            logger.info("swarm %s (%s) resumed", self.id, name)
            swarm_resumed.send(sender=self.id, app=self.app, name=name)
            advance(rt, self.id, tr)
        self._each_child(lambda child: child.resume())
        return tr.status == "ok"

    def set_max_concurrency(self, n: int) -> bool:
        """Change the swarm's limit (F4): raising it admits at once, lowering it lets running members finish.
        ``True`` if this call changed it.

        Raises:
            ValueError: ``n`` < 1.
            SwarmNotFoundError: no swarm has this id.

        Example:
            >>> SwarmResult(swarm_id, app=app).set_max_concurrency(50)
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"max_concurrency must be an int >= 1, not {n!r}")
        rt = self._rt
        tr = rt.store.resize(self.id, n, want_ctx=rt.cached_ctx(self.id) is None)
        if tr.status == "unknown":
            raise SwarmNotFoundError(self.id)
        if tr.status == "ok":
            logger.info("swarm %s resized to max_concurrency=%d", self.id, n)
            advance(rt, self.id, tr)
        return tr.status == "ok"

    def cancel(self, terminate: bool = False) -> bool:
        """Cancel the swarm and its nested swarms (see S9). ``True`` if this call cancelled it."""
        rt = self._rt
        tr = rt.store.cancel(self.id)
        if tr.status == "unknown":
            raise SwarmNotFoundError(self.id)
        try:
            if tr.status == "ok":
                advance(rt, self.id, tr, terminate=terminate)
        finally:
            self._each_child(lambda child: child.cancel(terminate=terminate))
        return tr.status == "ok"

    def _each_child(self, call: Callable[[SwarmResult], object]) -> None:
        """Apply a lifecycle call to every nested swarm started as a member (N1), depth first."""
        for child_id in self._rt.store.children(self.id):
            try:
                call(SwarmResult(child_id, app=self.app))
            except SwarmNotFoundError:
                pass  # expired, or not created yet

    def revoke(self, connection: Any = None, terminate: bool = False, signal: Any = None, **_: Any) -> bool:  # type: ignore[override]
        """Same as :meth:`cancel` (revoking a swarm cancels it)."""
        return self.cancel(terminate=terminate)

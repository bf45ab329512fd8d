"""Testing code that starts swarms, with no Redis and no worker: :class:`SwarmRecorder` (N6).

While a recorder is active, starting a swarm (``apply_async``, ``delay``, ``aio_run_no_wait``), adding
members to it and queueing them, closing, pausing, resuming or cancelling it are recorded instead of
being performed; nothing is written anywhere and no message is sent. The pytest fixture
``swarm_recorder`` (from the ``mageflow`` plugin) gives one.

Example:
    >>> def test_the_view_starts_the_thumbnails_swarm(swarm_recorder):
    ...     client.post("/swarms", json={"album": "a", "images": ["x.jpg", "y.jpg"]})
    ...     recorded = swarm_recorder.assert_swarm_dispatched(
    ...         "thumbnails:a", tasks=["tasks.make_thumbnail"] * 2, kwargs={"size": 128}
    ...     )
    ...     assert recorded.config.max_concurrency == 3

Layer: ``testing`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import itertools
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from celery import Celery
from celery.canvas import Signature, signature
from celery.result import AsyncResult

from ..client import membership, signing
from ..client.adding import MembersMixin
from ..client.canvas import Swarm
from ..client.definition import strict_names, to_signature
from ..client.messages import as_kwargs
from ..client.result import SwarmResult, member_name
from ..config import SwarmConfig
from ..keys import member_task_id


@dataclass
class RecordedSwarm:
    """A swarm the code under test built and started (or only changed) while the recorder was active."""

    id: str
    name: str | None
    #: The members' task names, in member order (``a | b`` for a chain, the name of a nested swarm).
    tasks: list[str]
    #: Bound kwargs and run kwargs, merged as members receive them (run kwargs win).
    kwargs: dict[str, Any]
    config: SwarmConfig
    success_callbacks: list[str]
    error_callbacks: list[str]
    #: The members' signatures, in member order.
    members: list[Signature[Any]] = field(default_factory=list)
    #: Indices of members queued to run (given to ``swarm()``, run by ``run_in_swarm`` or by their handle).
    queued: list[int] = field(default_factory=list)
    started: bool = False
    closed: bool = False
    paused: bool = False
    cancelled: bool = False


class SwarmRecorder:
    """Records swarms instead of running them (no Redis, no worker), for ``app`` or for every app.

    Use it as a context manager or through the ``swarm_recorder`` pytest fixture.
    """

    def __init__(self, app: Celery | None = None) -> None:
        self.app = app
        self.swarms: list[RecordedSwarm] = []
        self._by_id: dict[str, RecordedSwarm] = {}
        self._stack = ExitStack()

    # -- assertions ---------------------------------------------------------------------------------

    def assert_swarm_dispatched(
        self, name: str | None, tasks: list[str] | None = None, kwargs: dict[str, Any] | None = None
    ) -> RecordedSwarm:
        """The started swarm named ``name`` whose member task names are exactly ``tasks`` (when given) and
        whose kwargs include ``kwargs`` (when given); raise ``AssertionError`` saying what was recorded."""
        started = [s for s in self.swarms if s.started and s.name == name]
        for recorded in started:
            if tasks is not None and recorded.tasks != list(tasks):
                continue
            if kwargs is not None and any(recorded.kwargs.get(k, _MISSING) != v for k, v in kwargs.items()):
                continue
            return recorded
        seen = [(s.name, s.tasks, s.kwargs) for s in self.swarms if s.started]
        raise AssertionError(f"no swarm {name!r} started with tasks={tasks!r} kwargs={kwargs!r}; started: {seen}")

    def get(self, swarm_id: str) -> RecordedSwarm:
        """The recorded swarm with this id."""
        return self._by_id[swarm_id]

    # -- switching on and off -----------------------------------------------------------------------

    def __enter__(self) -> SwarmRecorder:
        patches = {
            (Swarm, "apply_async"): self._apply_async,
            (Swarm, "close_swarm"): self._flag("closed"),
            (Swarm, "pause"): self._flag("paused"),
            (Swarm, "resume"): self._unflag("paused"),
            (Swarm, "cancel"): self._flag("cancelled"),
            (MembersMixin, "add_tasks"): self._add_tasks,
            (MembersMixin, "add_task"): self._add_task,
            (MembersMixin, "run_in_swarm"): self._run_in_swarm,
            (membership, "queue_member"): self._queue_member,
            (signing, "queue_member"): self._queue_member,
        }
        for (target, attribute), replacement in patches.items():
            self._stack.enter_context(mock.patch.object(target, attribute, _as_function(replacement)))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    # -- what the patched calls do ------------------------------------------------------------------

    def _mine(self, app: Any) -> bool:
        return self.app is None or app is self.app

    def _record(self, s: Swarm) -> RecordedSwarm:
        s.freeze()
        recorded = self._by_id.get(s.swarm_id)
        if recorded is None:
            definition = s.definition
            members = [signature(t, app=s.app) for t in definition["tasks"]]
            recorded = RecordedSwarm(
                id=s.swarm_id,
                name=s.swarm_name,
                tasks=[member_name(dict(m)) for m in members],
                kwargs=dict(s.bound_kwargs),
                config=s.config,
                success_callbacks=[member_name(c) for c in definition["success_callbacks"]],
                error_callbacks=[member_name(c) for c in definition["error_callbacks"]],
                members=members,
                closed=bool(definition["closed"]),
            )
            self.swarms.append(recorded)
            self._by_id[s.swarm_id] = recorded
        return recorded

    def _apply_async(self, s: Swarm, args: Any = None, kwargs: Any = None, route_name: Any = None, **_: Any) -> Any:
        if not self._mine(s.app):
            return _ORIGINAL_APPLY(s, args, kwargs, route_name, **_)
        recorded = self._record(s)
        recorded.kwargs.update(as_kwargs(kwargs))
        if not recorded.started:
            recorded.queued.extend(range(len(s.definition["tasks"])))
        recorded.started = True
        return SwarmResult(recorded.id, app=s.app)

    def _flag(self, name: str) -> Any:
        def call(s: Swarm, *_: Any, **__: Any) -> bool:
            recorded = self._record(s)
            changed = not getattr(recorded, name)
            setattr(recorded, name, True)
            return changed

        return call

    def _unflag(self, name: str) -> Any:
        def call(s: Swarm, *_: Any, **__: Any) -> bool:
            recorded = self._record(s)
            changed = bool(getattr(recorded, name))
            setattr(recorded, name, False)
            return changed

        return call

    def _add(self, s: Any, tasks: list[Any], run: bool, message: Any = None) -> list[Any]:
        recorded = self._record(s)
        handles = []
        for task in tasks:
            sig = to_signature(task, s.app, "member", strict_names(s.app))
            if message is not None:
                sig = sig.clone(kwargs=as_kwargs(message))
            index = len(recorded.members)
            recorded.members.append(sig)
            recorded.tasks.append(member_name(dict(sig)))
            if run:
                recorded.queued.append(index)
            handles.append(membership.adopt(task, sig, recorded.id, index, s.app))
        return handles

    def _add_task(self, s: Any, task: Any) -> Any:
        return self._add(s, [task], run=False)[0]

    def _add_tasks(self, s: Any, tasks: Any, batch_size: int = 0, close_on_max_task: bool = True) -> list[Any]:
        return self._add(s, list(itertools.chain(tasks)), run=False)

    def _run_in_swarm(self, s: Any, task: Any, kwargs: Any = None, close_on_max_task: bool = True) -> Any:
        many = isinstance(task, (list, tuple))
        handles = self._add(s, list(task) if many else [task], run=True, message=kwargs)
        return handles if many else handles[0]

    def _queue_member(
        self, sig: Any, app: Any, swarm_id: str, index: int, args: Any, kwargs: Any, options: Any
    ) -> AsyncResult[Any]:
        recorded = self._by_id.get(swarm_id)
        if recorded is not None:
            if kwargs:
                recorded.members[index] = recorded.members[index].clone(kwargs=as_kwargs(kwargs))
            recorded.queued.append(index)
        return AsyncResult(member_task_id(swarm_id, index), app=app)


def _as_function(call: Any) -> Any:
    """A plain function calling ``call``: set on a class, it is bound like a method (``self`` passed on)."""

    def function(*args: Any, **kwargs: Any) -> Any:
        return call(*args, **kwargs)

    return function


_MISSING = object()
_ORIGINAL_APPLY = Swarm.apply_async

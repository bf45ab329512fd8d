"""Adding members to a swarm: one (``add_task``, ``run_in_swarm``) or many at once (N4).

A list is added in one atomic step, all or nothing: a list that would go beyond ``max_task_allowed``,
or with one member the app's serializer cannot encode, writes nothing. An iterator (for very large
swarms) is added batch by batch, each batch all or nothing, with the client's memory bounded by the
batch; its handles are built on demand.

Layer: ``client`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, overload

from celery import Celery
from celery.canvas import Signature

from ..engine.runtime import Runtime, runtime_for
from ..errors import SwarmClosedError, TooManyTasksError
from ..signals import swarm_closed
from .definition import strict_names, to_signature
from .drive import advance
from .membership import SwarmMember, adopt, check_status, from_stored
from .messages import as_kwargs

logger = logging.getLogger("mageflow_celery")

#: Members per atomic add when an iterator is given.
DEFAULT_BATCH = 1000


class _Swarmish(Protocol):
    """What :class:`MembersMixin` needs from the swarm it is mixed into."""

    @property
    def app(self) -> Any: ...

    @property
    def definition(self) -> dict[str, Any]: ...

    @property
    def swarm_id(self) -> str: ...

    @property
    def swarm_name(self) -> str | None: ...

    def _ensure_created(self, parent: Any = None) -> tuple[Runtime, str]: ...


class AddedMembers(Sequence[SwarmMember]):
    """Handles of members added from an iterator: ``len()``, indexing and iteration, built on demand from
    the stored members (so a million of them cost nothing until used)."""

    def __init__(self, app: Celery, swarm_id: str, indices: list[range]) -> None:
        self._app, self._swarm_id, self._ranges = app, swarm_id, indices

    def __len__(self) -> int:
        return sum(len(r) for r in self._ranges)

    @overload
    def __getitem__(self, i: int) -> SwarmMember: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[SwarmMember]: ...

    def __getitem__(self, i: int | slice) -> SwarmMember | Sequence[SwarmMember]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        flat = itertools.chain.from_iterable(self._ranges)
        index = next(itertools.islice(flat, i if i >= 0 else len(self) + i, None), None)
        if index is None:
            raise IndexError(i)
        return from_stored(self._app, self._swarm_id, index)

    def __iter__(self) -> Iterator[SwarmMember]:
        for index in itertools.chain.from_iterable(self._ranges):
            yield from_stored(self._app, self._swarm_id, index)


class MembersMixin:
    """``add_task``, ``run_in_swarm``, ``add_tasks`` and ``aio_run_tasks_in_swarm`` of a swarm."""

    def add_task(self: _Swarmish, task: Any) -> SwarmMember:
        """Register a member; queue it with its own ``apply_async()``/``delay()``.

        Raises:
            SwarmClosedError: the swarm is closed, failed, cancelled or finished.
            TooManyTasksError: the swarm already has ``max_task_allowed`` members.

        Example:
            >>> member = s.add_task(process.s("c.csv"))
            >>> member.delay(priority="high")
        """
        return _add(self, [task], run=False, messages=None)[0]

    @overload
    def run_in_swarm(
        self, task: list[Any] | tuple[Any, ...], kwargs: Any = None, close_on_max_task: bool = True
    ) -> list[SwarmMember]: ...

    @overload
    def run_in_swarm(self, task: Any, kwargs: Any = None, close_on_max_task: bool = True) -> SwarmMember: ...

    def run_in_swarm(self: _Swarmish, task: Any, kwargs: Any = None, close_on_max_task: bool = True) -> Any:
        """Register and queue a member, or a list of them, in one atomic step (all or nothing).

        ``kwargs`` (a dict or a pydantic model) is each member's run message. With
        ``close_on_max_task=False`` reaching ``max_task_allowed`` leaves the swarm open (further adds are
        still refused).

        Example:
            >>> s.run_in_swarm([process.s(p) for p in paths], kwargs={"batch": 7})
        """
        many = isinstance(task, (list, tuple))
        messages = None if kwargs is None else [kwargs] * (len(task) if many else 1)
        added = _add(self, list(task) if many else [task], run=True, messages=messages, close=close_on_max_task)
        return added if many else added[0]

    def add_tasks(
        self: _Swarmish, tasks: Iterable[Any], batch_size: int = DEFAULT_BATCH, close_on_max_task: bool = True
    ) -> Sequence[SwarmMember]:
        """Register many members; queue each returned handle as with ``add_task``.

        A list (or tuple) is added in one atomic step, all or nothing. Any other iterable is added in
        batches of ``batch_size``, each batch all or nothing, and gives handles built on demand.

        Example:
            >>> for handle in s.add_tasks(process.s(p) for p in huge_listing()):
            ...     handle.delay()
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        if isinstance(tasks, (list, tuple)):
            return _add(self, list(tasks), run=False, messages=None, close=close_on_max_task)
        if isinstance(tasks, (Mapping, str, Signature)):
            raise TypeError("add_tasks() takes an iterable of members, not a single one: use add_task()")
        ranges: list[range] = []
        iterator = iter(tasks)
        while batch := list(itertools.islice(iterator, batch_size)):
            added = _add(self, batch, run=False, messages=None, close=close_on_max_task, keep_handles=False)
            ranges.append(range(added.first, added.first + len(batch)))
        return AddedMembers(self.app, self.swarm_id, ranges)

    async def aio_run_tasks_in_swarm(
        self: _Swarmish, tasks: Sequence[Any], msgs: Sequence[Any], close_on_max_task: bool = True
    ) -> list[SwarmMember]:
        """Register and queue ``tasks``, each with its own message ``msgs[i]``, in one atomic step.

        Raises:
            ValueError: ``tasks`` and ``msgs`` differ in length (nothing is written).
        """
        if len(tasks) != len(msgs):
            raise ValueError(f"{len(tasks)} tasks but {len(msgs)} messages: give one message per task")
        return await asyncio.to_thread(_add, self, list(tasks), True, list(msgs), close_on_max_task)


class _Batch(list[SwarmMember]):
    """Handles of one batch, and the index of its first member."""

    first: int = 0


def _add(
    swarm: _Swarmish,
    tasks: list[Any],
    run: bool,
    messages: list[Any] | None,
    close: bool = True,
    keep_handles: bool = True,
) -> _Batch:
    """Validate and encode every member first, then add them all in one script call."""
    app = swarm.app
    strict = strict_names(app)
    sigs = [to_signature(t, app, "member", strict) for t in tasks]
    if messages is not None:
        sigs = [sig.clone(kwargs=as_kwargs(msg)) for sig, msg in zip(sigs, messages, strict=True)]
    codec = runtime_for(app).task_codec
    blobs = [codec.dumps(dict(sig), f"swarm member {i}") for i, sig in enumerate(sigs)]
    _refuse_locally(swarm, len(sigs))
    rt, swarm_id = swarm._ensure_created()
    tr = rt.store.add(swarm_id, blobs, run=run, want_ctx=rt.cached_ctx(swarm_id) is None, close_on_max=close)
    check_status(tr.status, swarm_id)
    first, closed_now = int(tr.extra[0]), int(tr.extra[1])
    if closed_now:
        logger.info("swarm %s (%s) closed: max_task_allowed reached", swarm_id, swarm.swarm_name)
        swarm_closed.send(sender=swarm_id, app=app, name=swarm.swarm_name)
    advance(rt, swarm_id, tr)
    logger.debug("swarm %s: %d member(s) %s from %d", swarm_id, len(sigs), "queued" if run else "registered", first)
    out = _Batch()
    out.first = first
    if keep_handles:
        out.extend(adopt(t, sig, swarm_id, first + k, app) for k, (t, sig) in enumerate(zip(tasks, sigs, strict=True)))
    return out


def _refuse_locally(swarm: _Swarmish, n: int) -> None:
    """Refuse before creating anything what the swarm's own definition already forbids."""
    definition = swarm.definition
    if definition["closed"]:
        raise SwarmClosedError(f"swarm {swarm.swarm_id or '(not started)'} was created closed")
    limit = definition["config"].get("max_task_allowed")
    if limit is not None and len(definition["tasks"]) + n > limit:
        raise TooManyTasksError(f"adding {n} member(s) would go beyond max_task_allowed={limit}")


if TYPE_CHECKING:
    _: type[Sequence[SwarmMember]] = AddedMembers

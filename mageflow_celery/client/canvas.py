"""The ``swarm`` canvas primitive: :class:`Swarm` (a registered Signature type) and :func:`swarm`.

Layer: ``client`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from celery import Celery, states
from celery.canvas import Signature, signature
from celery.result import EagerResult
from pydantic import BaseModel

from .._compat import from_dict, merge, this_app
from ..config import SwarmConfig, rate_interval_s, result_ttl_default
from ..eager import inline_members, inline_wanted
from ..engine.finalize import NESTED
from ..engine.members import MEMBER_DEFAULT_OPTIONS
from ..engine.runtime import Runtime, runtime_for
from ..errors import MageflowError, SwarmCancelledError, SwarmFailedError, SwarmNotFoundError, TooManyTasksError
from ..keys import parse_member_task_id
from ..signals import swarm_started
from ..state.codec import Codec
from .adding import MembersMixin
from .definition import DEF_KEY, SCHEMA_VERSION, START_KEY, SWARM_TASK, app_of, as_list, build_definition
from .drive import advance
from .messages import as_kwargs
from .nesting import Parent, join_parent, task_scoped_id
from .oncommit import OnCommitMixin, on_commit
from .result import SwarmResult

logger = logging.getLogger("mageflow_celery")

#: Canvas options carried by the swarm's result task.
_CARRIED = ("chain", "chord", "group_id", "group_index", "link", "link_error")


def swarm(
    tasks: Iterable[Any] = (),
    success_callbacks: Iterable[Any] = (),
    error_callbacks: Iterable[Any] = (),
    config: SwarmConfig | Mapping[str, Any] | None = None,
    is_swarm_closed: bool = False,
    task_name: str | None = None,
    app: Celery | None = None,
    kwargs: Mapping[str, Any] | BaseModel | None = None,
    options: Mapping[str, Any] | None = None,
    immutable: bool = False,
    **bound_kwargs: Any,
) -> Swarm:
    """Build a swarm signature (no I/O; everything is validated in memory).

    Args:
        tasks: members: signatures, chains, task objects or registered task names.
        success_callbacks: published once when the closed swarm's members all finished; they receive
            the list of the succeeded members' results (prepended to their args).
        error_callbacks: published once when ``stop_after_n_failures`` is reached, with a failure summary.
        config: a :class:`SwarmConfig` (or a dict of its fields).
        is_swarm_closed: create the swarm closed (no member can be added).
        task_name: a display name for the swarm.
        app: the Celery app (default: the app of the first member or callback that knows it, else the
            current app).
        kwargs: bound kwargs for every member (a dict or a pydantic model); also accepted as ``**bound_kwargs``.
        options: execution options that are defaults for every member (queue, priority, ...).
        immutable: an immutable swarm ignores the parent result in a chain.

    Raises:
        MageflowError: a member or callback is not a task or chain.
        NotSerializableError: a member cannot be encoded with the app's task serializer.
        TooManyTasksError: more tasks than ``max_task_allowed``.

    Example:
        >>> s = swarm(tasks=[process.s(path) for path in paths], success_callbacks=[report.s()],
        ...           config=SwarmConfig(max_concurrency=5), is_swarm_closed=True)
        >>> s.apply_async(kwargs={"batch": 7}).get()
    """
    tasks = as_list(tasks, "tasks")
    success_callbacks = as_list(success_callbacks, "success_callbacks")
    error_callbacks = as_list(error_callbacks, "error_callbacks")
    the_app = app or app_of([*tasks, *success_callbacks, *error_callbacks]) or this_app()
    cfg = config if isinstance(config, SwarmConfig) else SwarmConfig(**dict(config or {}))
    if cfg.max_task_allowed is not None and len(tasks) > cfg.max_task_allowed:
        raise TooManyTasksError(f"{len(tasks)} tasks given, max_task_allowed is {cfg.max_task_allowed}")
    definition = build_definition(tasks, success_callbacks, error_callbacks, cfg, is_swarm_closed, task_name, the_app)
    all_kwargs = {**as_kwargs(kwargs), **bound_kwargs}
    s = Swarm(
        SWARM_TASK,
        args=(),
        kwargs={DEF_KEY: definition, **all_kwargs},
        options=dict(options or {}),
        subtask_type="swarm",
        immutable=immutable,
        app=the_app,
    )
    s._validate(the_app)
    return s


@Signature.register_type(name="swarm")
class Swarm(MembersMixin, OnCommitMixin, Signature):
    """A group of tasks run with a concurrency limit, growable until closed, with callbacks.

    Build it with :func:`swarm`. It is a Celery signature: JSON round-trips, works in chains, groups,
    chords and beat entries. Its state lives in Redis under its id (``options['task_id']``).
    """

    _blobs: list[bytes] | None = None
    _created_with: Any = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Celery | None = None) -> Swarm:
        s: Swarm = from_dict(cls, {**d, "args": tuple(d.get("args") or ())}, app=app)
        s.definition  # noqa: B018 - validates
        return s

    # -- definition ---------------------------------------------------------------------------------

    @property
    def definition(self) -> dict[str, Any]:
        try:
            definition: dict[str, Any] = self["kwargs"][DEF_KEY]
        except KeyError:
            raise MageflowError(f"not a swarm signature: kwargs has no {DEF_KEY!r}") from None
        if definition.get("v") != SCHEMA_VERSION:
            raise MageflowError(f"unsupported swarm definition version {definition.get('v')!r}")
        return definition

    @property
    def config(self) -> SwarmConfig:
        return SwarmConfig(**self.definition["config"])

    @property
    def tasks(self) -> list[Signature]:
        return [signature(t, app=self.app) for t in self.definition["tasks"]]

    @property
    def success_callbacks(self) -> list[Signature]:
        return [signature(t, app=self.app) for t in self.definition["success_callbacks"]]

    @property
    def error_callbacks(self) -> list[Signature]:
        return [signature(t, app=self.app) for t in self.definition["error_callbacks"]]

    @property
    def swarm_name(self) -> str | None:
        name: str | None = self.definition.get("name")
        return name

    @property
    def bound_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self["kwargs"].items() if k != DEF_KEY}

    # -- identity -----------------------------------------------------------------------------------

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Any = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> SwarmResult:
        """Assign the swarm id (no I/O), like :meth:`celery.canvas.Signature.freeze`.

        Inside an executing task, a swarm without an id gets one derived from the task's id and the order
        of creation (N5): a retried or redelivered task finds the swarms it created before.
        """
        if _id is None and not self.options.get("task_id"):
            _id = task_scoped_id()
        super().freeze(_id, group_id, chord, root_id, parent_id, group_index)
        return SwarmResult(self.swarm_id, app=self.app, created_later=True)

    @property
    def swarm_id(self) -> str:
        """The swarm id (``options['task_id']``); empty until frozen."""
        return str(self.options.get("task_id") or "")

    def fresh(self) -> Swarm:
        """An unfrozen copy: applying it creates a new swarm."""
        copy = self.clone()
        copy.options.pop("task_id", None)
        assert isinstance(copy, Swarm)
        return copy

    # -- state --------------------------------------------------------------------------------------

    def _member_blobs(self, app: Celery) -> list[bytes]:
        if self._blobs is None:
            codec = Codec(app.conf.task_serializer)
            self._blobs = [codec.dumps(t, f"swarm member {i}") for i, t in enumerate(self.definition["tasks"])]
        return self._blobs

    def _meta(self, rt: Runtime, parent: Parent | None = None) -> dict[str, Any]:
        cfg = self.config
        n = len(self.definition["tasks"])
        closed = self.definition["closed"] or (cfg.max_task_allowed is not None and n >= cfg.max_task_allowed)
        return {
            "v": SCHEMA_VERSION,
            "name": self.swarm_name or "",
            "state": "pending",
            "closed": int(closed),
            "paused": int(bool(parent and parent.paused)),
            "parent": parent.ref.swarm_id if parent else "",
            "limit": cfg.max_concurrency,
            "stop_after": cfg.stop_after_n_failures or 0,
            "max_tasks": cfg.max_task_allowed or 0,
            "total": n,
            "n_initial": n,
            "registered": n,
            **{c: 0 for c in ("queued", "dispatched", "running", "succeeded", "failed", "cancelled", "nerr")},
            "idle_ttl": cfg.idle_ttl_s,
            "result_ttl": cfg.result_ttl_s or result_ttl_default(rt.app.conf),
            "dispatch_to": cfg.dispatch_timeout_s,
            "lease_s": cfg.lease_s,
            "on_lost": cfg.on_lost,
            "fin": "",
            "max_err": cfg.summary_max_failures,
            "revoke_on_fail": int(cfg.revoke_on_failure),
            "results_mode": cfg.results,
            "pool": cfg.pool or "",
            "pool_on": int(cfg.pool is not None),
            "weight": cfg.weight,
            "rate_int": rate_interval_s(cfg.rate_limit),
            "rate_limit": cfg.rate_limit or "",
            "tat": 0,
        }

    def _ensure_created(self, parent: Parent | None = None) -> tuple[Runtime, str]:
        """Freeze if needed and create the state (create-if-absent); returns the runtime and the id."""
        rt = runtime_for(self.app)
        self.freeze()
        if self._created_with is not rt.store:
            blobs = self._member_blobs(self.app)
            if self.config.pool:
                rt.store.register_pool(self.config.pool)
            rt.store.create(self.swarm_id, self._meta(rt, parent), blobs)
            self._created_with = rt.store
        return rt, self.swarm_id

    def _validate(self, app: Celery) -> None:
        """Everything the app's serializer must encode, encoded once (members, callbacks, kwargs)."""
        self._member_blobs(app)
        codec = Codec(app.conf.task_serializer)
        definition = self.definition
        codec.dumps([definition["success_callbacks"], definition["error_callbacks"]], "swarm callbacks")
        codec.dumps(self.bound_kwargs, "swarm kwargs")

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | BaseModel | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> SwarmResult:
        """Start the swarm: queue its members and admit up to ``max_concurrency`` of them.

        ``kwargs`` (a dict or a pydantic model) are merged into every member's kwargs. Applying a swarm
        that already started creates nothing and returns its result (with a WARNING). With ``countdown``
        or ``eta`` the swarm is created now and started then, by a worker (the ``mageflow.swarm`` task).
        """
        run_kwargs = as_kwargs(kwargs)
        options = {k: v for k, v in options.items() if v is not None}
        if options.get("task_id") and not self.swarm_id:
            self.options["task_id"] = options["task_id"]
        later: dict[str, Any] = {k: options.pop(k) for k in ("countdown", "eta") if k in options}
        if later and not inline_wanted(self.app):
            return self._start_later(tuple(args or ()), run_kwargs, options, later)
        rt = runtime_for(self.app)
        swarm_id = self.freeze().id
        ctx, def_blob = self._start_context(rt, tuple(args or ()), run_kwargs, options)
        parent = join_parent(rt, swarm_id)  # a nested swarm (N1): its parent records it, or has ended
        result = SwarmResult(swarm_id, app=self.app)
        if parent is not None and not parent.start:
            logger.info("swarm %s not started: its parent swarm %s has ended", swarm_id, parent.ref.swarm_id)
            return result
        self._ensure_created(parent)  # only once everything is validated and encoded
        tr = rt.store.start(swarm_id, rt.task_codec.dumps(ctx, "swarm arguments"), def_blob, want_ctx=False)
        if tr.status == "started":
            logger.warning("swarm %s already started (state %s); applying it again starts nothing", swarm_id, tr.fin)
            return result
        if tr.status == "unknown":
            raise SwarmNotFoundError(swarm_id)
        rt.cache_ctx(swarm_id, ctx)
        logger.info("swarm %s (%s) started with %d member(s)", swarm_id, self.swarm_name, len(self.definition["tasks"]))
        swarm_started.send(sender=swarm_id, app=self.app, name=self.swarm_name)
        advance(rt, swarm_id, tr)
        if inline_wanted(self.app) and self.app.conf.task_eager_propagates and result.failed():
            result.get(disable_sync_subtasks=False)  # raises SwarmFailedError with the summary
        return result

    def _start_context(
        self, rt: Runtime, args: tuple[Any, ...], run_kwargs: dict[str, Any], options: dict[str, Any]
    ) -> tuple[dict[str, Any], bytes]:
        """The run context members get (args, kwargs, default options, root id) and the encoded finalizer
        definition (callbacks, canvas options), both validated before anything is written."""
        merged_args, merged_kwargs, opts = merge(self, args, run_kwargs, options)
        swarm_id = self.swarm_id
        root_id = opts.get("root_id") or swarm_id
        ctx = {
            "args": list(merged_args),
            "kwargs": {k: v for k, v in merged_kwargs.items() if k != DEF_KEY},
            "options": {k: v for k, v in opts.items() if k in MEMBER_DEFAULT_OPTIONS},
            "root_id": root_id,
        }
        canvas = {k: opts[k] for k in _CARRIED if opts.get(k) is not None}
        if canvas:
            canvas.update({k: opts[k] for k in ("parent_id", "root_id", "reply_to") if opts.get(k)})
        if parse_member_task_id(swarm_id) is not None and not inline_wanted(self.app):
            canvas[NESTED] = True  # its result task carries its outcome to its parent, also a cancel
        definition = {
            "success": self.definition["success_callbacks"],
            "error": self.definition["error_callbacks"],
            "canvas": canvas,
            "root_id": root_id,
        }
        rt.task_codec.dumps(ctx, "swarm arguments")
        return ctx, rt.task_codec.dumps(definition, "swarm callbacks and canvas options")

    def _start_later(
        self, args: tuple[Any, ...], run_kwargs: dict[str, Any], options: dict[str, Any], later: dict[str, Any]
    ) -> SwarmResult:
        """Create the swarm now (pending) and send ``mageflow.swarm`` to start it at ``countdown``/``eta``."""
        rt = runtime_for(self.app)
        swarm_id = self.freeze().id
        start = {"id": swarm_id, "args": list(args), "kwargs": run_kwargs, "options": options}
        kwargs = {**self["kwargs"], START_KEY: start}
        rt.task_codec.dumps(kwargs, "swarm arguments")  # refuse before writing anything
        self._ensure_created()
        self.app.send_task(SWARM_TASK, kwargs=kwargs, **later)
        logger.info("swarm %s (%s) created; it starts %s", swarm_id, self.swarm_name, later)
        return SwarmResult(swarm_id, app=self.app)

    def apply(
        self, args: Iterable[Any] | None = None, kwargs: Mapping[str, Any] | BaseModel | None = None, **options: Any
    ) -> EagerResult[Any]:
        """Run the swarm inline in this process (members one at a time), like ``Signature.apply``."""
        with inline_members():
            result = self.apply_async(args, kwargs, **options)
        try:
            value = result.get(disable_sync_subtasks=False)
        except SwarmCancelledError as exc:
            return EagerResult(result.id, exc, states.REVOKED)
        except SwarmFailedError as exc:
            return EagerResult(result.id, exc, states.FAILURE)
        return EagerResult(result.id, value, states.SUCCESS)

    def apply_async_on_commit(self, *args: Any, **kwargs: Any) -> SwarmResult:  # type: ignore[override]
        """Start the swarm when the current Django transaction commits; the id is known at once.

        Example:
            >>> with transaction.atomic():
            ...     order = Order.objects.create(...)
            ...     swarm_id = s.apply_async_on_commit(kwargs={"order": order.pk}).id
        """
        result = self.freeze()
        on_commit(self.apply_async, *args, **kwargs)
        return result

    def delay_on_commit(self, *args: Any, **kwargs: Any) -> SwarmResult:  # type: ignore[override]
        """``delay`` when the current Django transaction commits; returns the (frozen) result at once."""
        result = self.freeze()
        on_commit(self.delay, *args, **kwargs)
        return result

    def delay(self, *args: Any, **kwargs: Any) -> SwarmResult:
        """Start the swarm; ``s.delay(model)`` takes a pydantic model as the message."""
        if len(args) == 1 and isinstance(args[0], BaseModel) and not kwargs:
            return self.apply_async(kwargs=args[0])
        return self.apply_async(args, kwargs)

    # -- lifecycle ----------------------------------------------------------------------------------

    def _result(self) -> SwarmResult:
        self._ensure_created()
        return SwarmResult(self.swarm_id, app=self.app)

    def close_swarm(self) -> bool:
        """Accept no more members; the swarm finishes once its members did. ``True`` if it changed."""
        return self._result().close_swarm()

    def pause(self) -> bool:
        """Stop admitting members (running ones finish)."""
        return self._result().pause()

    def resume(self) -> bool:
        """Admit again, up to the limit."""
        return self._result().resume()

    def cancel(self, terminate: bool = False) -> bool:
        """Cancel: queued and registered members never run, running ones are revoked, no callback runs."""
        return self._result().cancel(terminate=terminate)


__all__ = ["DEF_KEY", "START_KEY", "SWARM_TASK", "Swarm", "swarm"]

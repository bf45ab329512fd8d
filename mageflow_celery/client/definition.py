"""A swarm's definition: normalizing members and callbacks, and the JSON-shaped dict that travels with it.

Members may be given as signatures, task objects, task names, chains, swarms, groups or chords (SPEC §1,
N1). A group becomes a nested swarm that runs all its parts at once and fails at its first failure (its
result is the list of its parts' results); a chord becomes a chain of that nested swarm and its body (its
result is the body's). Nested swarms are built as plain signature dicts of the registered ``swarm`` type,
so this module never needs the :class:`~mageflow_celery.client.canvas.Swarm` class itself.

Layer: ``client`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from celery import Celery, Task
from celery.canvas import Signature, _chain, group, signature

from .._compat import ChordType, known_app
from ..config import SwarmConfig
from ..engine.members import CANVAS_OPTIONS, MEMBER_DEFAULT_OPTIONS
from ..engine.runtime import installed_runtime
from ..errors import MageflowError

#: The one reserved kwarg under which a swarm's definition travels.
DEF_KEY = "__mageflow_swarm__"
#: Version of the definition's schema.
SCHEMA_VERSION = 1
#: Registered task that starts a swarm from a plain message (beat, ``send_task``, countdown/eta).
SWARM_TASK = "mageflow.swarm"
#: Reserved kwarg of ``mageflow.swarm`` saying which created swarm to start, and how (countdown/eta).
START_KEY = "__mageflow_start__"
#: A member keeps its own ``link``/``link_error`` (N2: run as Celery runs them); a callback keeps them too.
_KEPT_OPTIONS = frozenset({"link", "link_error"})


def strict_names(app: Celery) -> bool:
    """Whether member and callback names given as strings are checked against ``app`` (``install`` option)."""
    rt = installed_runtime(app)
    return bool(rt and rt.settings.strict_task_names)


def app_of(items: Iterable[Any]) -> Celery | None:
    """The app of the first member or callback that knows its app (a task, or a signature of one)."""
    for item in items:
        if isinstance(item, Task):
            return item.app
        if isinstance(item, Signature):
            app = known_app(item)
            if app is not None:
                return app  # type: ignore[no-any-return]
    return None


def as_list(items: Iterable[Any], what: str) -> list[Any]:
    """``items`` as a list; one signature, task or name where a list is expected is a mistake (D6)."""
    kind = "signature" if isinstance(items, Mapping) else "task name" if isinstance(items, str) else "task"
    if isinstance(items, (Mapping, str, Task)):
        raise TypeError(f"swarm({what}=...) takes a list, not a single {kind}: pass [{kind}]")
    return list(items)


def build_definition(
    tasks: Iterable[Any],
    success_callbacks: Iterable[Any],
    error_callbacks: Iterable[Any],
    config: SwarmConfig,
    closed: bool,
    name: str | None,
    app: Celery,
) -> dict[str, Any]:
    """The definition dict (JSON-shaped, versioned) of a swarm with these members and callbacks."""
    strict = strict_names(app)
    return {
        "v": SCHEMA_VERSION,
        "tasks": [plain(to_signature(t, app, "member", strict)) for t in tasks],
        "success_callbacks": [plain(to_signature(c, app, "success callback", strict)) for c in success_callbacks],
        "error_callbacks": [plain(to_signature(c, app, "error callback", strict)) for c in error_callbacks],
        "config": config.model_dump(mode="json"),
        "closed": bool(closed),
        "name": name,
    }


def to_signature(obj: Any, app: Celery, what: str = "member", strict: bool = False) -> Signature[Any]:
    """A fresh signature for a member or callback given in any of the accepted forms.

    Raises:
        MageflowError: ``obj`` is not a task, a signature, a chain, a swarm, a group or a chord, or an
            unknown task name with ``strict``.
    """
    if isinstance(obj, str):
        if strict and obj not in app.tasks:
            raise MageflowError(f"unknown task name {obj!r} for swarm {what}")
        return Signature(obj, app=app)
    if isinstance(obj, Task):
        return obj.s()
    if isinstance(obj, Mapping) and not isinstance(obj, Signature):
        obj = signature(dict(obj), app=app)
    if not isinstance(obj, Signature):
        msg = (
            f"swarm {what} must be a task, a signature, a chain, a swarm, a group or a chord, not {type(obj).__name__}"
        )
        raise MageflowError(msg)
    if not what.startswith("member"):
        return _stripped(obj)  # a callback: Celery applies any canvas as it is
    kind = obj.get("subtask_type")
    if isinstance(obj, group) or kind == "group":
        return _group_swarm(obj, app, strict)
    if isinstance(obj, ChordType) or kind == "chord":
        c: Any = obj
        header = c.tasks if isinstance(c.tasks, Signature) else group(list(c.tasks), app=app)
        return _chain(_group_swarm(header, app, strict), to_signature(c.body, app, what, strict), app=app)
    if isinstance(obj, _chain):
        steps = [to_signature(signature(step, app=app), app, f"{what} chain step", strict) for step in obj.tasks]
        flat = [part for step in steps for part in (step.tasks if isinstance(step, _chain) else [step])]
        built: Signature[Any] = _chain(*flat, app=app)
        built.options.update(_stripped(obj).options)
        return built
    if kind == "swarm" and DEF_KEY not in obj.kwargs:
        raise MageflowError(f"not a swarm signature: kwargs has no {DEF_KEY!r}")
    return _stripped(obj)


def _stripped(sig: Signature[Any]) -> Signature[Any]:
    """A clone without the options that place a signature in a canvas (its id, its chord ...)."""
    clone = sig.clone()
    for key in CANVAS_OPTIONS & set(clone.options):
        if key not in _KEPT_OPTIONS:
            del clone.options[key]
    return clone


def _group_swarm(g: Signature[Any], app: Celery, strict: bool) -> Signature[Any]:
    """A group as a nested swarm: its parts all at once, failing at the first failure, closed."""
    parts = list(g.tasks) if isinstance(g, group) else list(g.get("kwargs", {}).get("tasks") or [])
    config = SwarmConfig(max_concurrency=max(1, len(parts)), stop_after_n_failures=1)
    definition = build_definition(parts, [], [], config, True, "group", app)
    options = {k: v for k, v in g.options.items() if k in MEMBER_DEFAULT_OPTIONS}
    d = {
        "task": SWARM_TASK,
        "args": [],
        "kwargs": {DEF_KEY: definition},
        "options": options,
        "subtask_type": "swarm",
        "immutable": bool(g.immutable),
    }
    return signature(d, app=app)


def plain(sig: Signature[Any]) -> dict[str, Any]:
    """The signature as a JSON-shaped dict (args as lists, chain steps too), so a JSON round trip is equal."""
    d = dict(sig)
    d["args"] = list(d.get("args") or ())
    if d.get("subtask_type") == "chain":
        d["kwargs"] = {**d["kwargs"], "tasks": [plain(signature(t)) for t in d["kwargs"]["tasks"]]}
    return d

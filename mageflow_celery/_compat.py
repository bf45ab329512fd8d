"""Typed access to Celery/kombu internals that the ``celery-types`` stubs do not declare."""

from __future__ import annotations

from typing import Any

import celery
import celery.canvas
import celery.result
import kombu.serialization
from celery.canvas import Signature

#: ``celery.canvas._chord`` (the class behind ``chord``).
ChordType: type[Any] = celery.canvas._chord  # type: ignore[attr-defined]
#: kombu's serializer registry.
serializer_registry: Any = kombu.serialization.registry  # type: ignore[attr-defined]


def assert_will_not_block() -> None:
    """Raise RuntimeError inside a task, as ``AsyncResult.get`` does."""
    celery.result.assert_will_not_block()  # type: ignore[attr-defined]


def merge(
    sig: Signature[Any], args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
    """``Signature._merge``: partial args prepended, kwargs and options merged (immutable-aware)."""
    merged: tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]] = sig._merge(args, kwargs, options)  # type: ignore[attr-defined]
    return merged


def known_app(sig: Signature[Any]) -> Any:
    """The app a signature was bound to (or its task's app), without falling back to current_app."""
    raw: Any = sig
    if raw._app is not None:
        return raw._app
    return raw._type.app if raw._type is not None else None


def from_dict(cls: type[Any], d: dict[str, Any], app: Any = None) -> Any:
    """Instantiate a Signature subclass from its dict form (the stubs only accept task names)."""
    return cls(d, app=app)


def this_app() -> Any:
    """The current app as an object, resolved now in the calling thread (``current_app`` is a proxy that
    a later call from another thread, e.g. ``asyncio.to_thread``, would resolve to that thread's app)."""
    return celery.current_app._get_current_object()  # type: ignore[attr-defined]

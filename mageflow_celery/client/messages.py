"""Run kwargs given as a dict or as a pydantic model (the seed's message), in one shape.

Layer: ``client`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from ..errors import MageflowError


def as_kwargs(value: Any) -> dict[str, Any]:
    """Run kwargs from a dict or a pydantic model (``model_dump(mode="json", exclude_unset=True)``)."""
    if value is None:
        return {}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    if isinstance(value, Mapping):
        return dict(value)
    raise MageflowError(f"kwargs must be a dict or a pydantic model, not {type(value).__name__}")


def model_or_kwargs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], Any]:
    """``delay(model)`` spelling: a single pydantic-model argument is the message."""
    if len(args) == 1 and isinstance(args[0], BaseModel) and not kwargs:
        return (), args[0]
    return args, kwargs

"""Django integration: ``apply_async_on_commit`` / ``delay_on_commit``, as Celery's ``DjangoTask``.

Layer: ``client`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import functools
from typing import Any


def on_commit(fn: Any, *args: Any, **kwargs: Any) -> None:
    """Run ``fn(*args, **kwargs)`` when the current Django transaction commits (at once outside one)."""
    from django.db import transaction  # deferred: Django is optional (only *_on_commit callers have it)

    transaction.on_commit(functools.partial(fn, *args, **kwargs))


class OnCommitMixin:
    """Adds the Django ``*_on_commit`` spellings to swarms and member handles."""

    def apply_async_on_commit(self, *args: Any, **kwargs: Any) -> None:
        """``apply_async`` once the current Django transaction commits."""
        on_commit(self.apply_async, *args, **kwargs)  # type: ignore[attr-defined]

    def delay_on_commit(self, *args: Any, **kwargs: Any) -> None:
        """``delay`` once the current Django transaction commits."""
        on_commit(self.delay, *args, **kwargs)  # type: ignore[attr-defined]

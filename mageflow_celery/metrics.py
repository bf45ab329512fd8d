"""Prometheus metrics of swarms (SPEC O2): ``collector(app)`` for your own ``prometheus_client`` registry.

Needs ``prometheus_client`` (the ``dashboard`` extra: ``pip install 'mageflow-celery[dashboard]'``). The
implementation and the list of metric names and labels live in :mod:`mageflow_celery.ops.metrics`.

Example:
    >>> from prometheus_client import CollectorRegistry
    >>> from mageflow_celery.metrics import collector
    >>> registry = CollectorRegistry()
    >>> registry.register(collector(app))
"""

from __future__ import annotations

try:
    from .ops.metrics import SwarmCollector, collector
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"mageflow_celery.metrics needs prometheus_client (missing module {exc.name!r}): "
        "pip install 'mageflow-celery[dashboard]'"
    ) from exc

__all__ = ["SwarmCollector", "collector"]

"""Prometheus metrics of swarms (SPEC O2): a ``prometheus_client`` collector built on
:func:`~mageflow_celery.ops.inspect.metrics_snapshot` and :func:`~mageflow_celery.ops.inspect.list_pools`.

Each scrape reads the state Redis in O(unfinished swarms), never O(members). Every metric has the label
``prefix`` (the key prefix of the app's swarms), so several deployments can share one Prometheus:

===================================  =========  ===============  =============================================
name                                 type       labels           what
===================================  =========  ===============  =============================================
``mageflow_up``                      gauge      prefix           1 if the state Redis was read, else 0
``mageflow_swarms``                  gauge      prefix, state    unfinished swarms (pending, running, paused)
``mageflow_swarms_finished_total``   counter    prefix, outcome  finished swarms (succeeded, failed, cancelled)
``mageflow_members``                 gauge      prefix, state    members of unfinished swarms (registered,
                                                                 queued, dispatched, running)
``mageflow_members_admitted_total``  counter    prefix           members admitted (given a token)
``mageflow_members_finished_total``  counter    prefix, outcome  members finished (succeeded, failed, cancelled)
``mageflow_handoff_latency_seconds`` histogram  prefix           admission -> receipt by a worker
``mageflow_pool_tokens_in_use``      gauge      prefix, pool     tokens of a shared pool held now
``mageflow_pool_limit``              gauge      prefix, pool     a pool's limit (pools without one: absent)
``mageflow_reaper_actions_total``    counter    prefix, action   reaper actions (recovered, republished, ...)
===================================  =========  ===============  =============================================

Needs the ``dashboard`` extra (``pip install 'mageflow-celery[dashboard]'``), which brings ``prometheus_client``.

Example:
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> from mageflow_celery.metrics import collector
    >>> registry = CollectorRegistry()
    >>> registry.register(collector(app))
    >>> print(generate_latest(registry).decode())

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

from celery import Celery
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

from ..engine.runtime import runtime_for
from ..errors import StateStoreError
from . import inspect
from .inspect import MetricsSnapshot, PoolInfo, metrics_snapshot

logger = logging.getLogger("mageflow_celery")

_P = "prefix"


#: What :meth:`SwarmCollector.describe` builds its families from: no samples.
_EMPTY = MetricsSnapshot({}, {}, {}, 0, {}, [], 0.0, {})


class SwarmCollector:
    """A ``prometheus_client`` collector of one app's swarms (register it in a ``CollectorRegistry``)."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    @property
    def prefix(self) -> str:
        return runtime_for(self.app).settings.key_prefix

    def describe(self) -> list[Metric]:
        """The metric families without samples: registering reads nothing from Redis."""
        return [_up(self.prefix, None), *families(self.prefix, _EMPTY, [], samples=False)]

    def collect(self) -> Iterator[Metric]:
        prefix = self.prefix
        try:
            snap, pools = metrics_snapshot(self.app), inspect.list_pools(self.app)
        except StateStoreError as exc:
            logger.warning("metrics: reading the swarm state failed: %s", exc)
            yield _up(prefix, False)
            return
        yield _up(prefix, True)
        yield from families(prefix, snap, pools)


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _up(prefix: str, ok: bool | None) -> Metric:
    family = GaugeMetricFamily("mageflow_up", "1 if the swarm state Redis was read, else 0", labels=[_P])
    if ok is not None:
        family.add_metric([prefix], 1 if ok else 0)
    return family


def _by(family: GaugeMetricFamily | CounterMetricFamily, prefix: str, values: dict[str, int]) -> Metric:
    for key, value in values.items():
        family.add_metric([prefix, key], value)
    return family


def families(prefix: str, snap: MetricsSnapshot, pools: list[PoolInfo], samples: bool = True) -> list[Metric]:
    """The metric families of one snapshot (``samples=False``: the families alone)."""
    admitted = CounterMetricFamily("mageflow_members_admitted", "Members admitted (given a token)", labels=[_P])
    handoff = HistogramMetricFamily(
        "mageflow_handoff_latency_seconds", "Member admission to receipt by a worker", labels=[_P]
    )
    in_use = GaugeMetricFamily("mageflow_pool_tokens_in_use", "Tokens of a shared pool held now", labels=[_P, "pool"])
    limit = GaugeMetricFamily("mageflow_pool_limit", "Limit of a shared pool", labels=[_P, "pool"])
    if samples:
        admitted.add_metric([prefix], snap.members_admitted_total)
        buckets = [(_le(le), float(count)) for le, count in snap.handoff_buckets]
        handoff.add_metric([prefix], buckets, snap.handoff_sum)
        for pool in pools:
            in_use.add_metric([prefix, pool.name], pool.in_use)
            if pool.limit is not None:
                limit.add_metric([prefix, pool.name], pool.limit)
    return [
        _by(
            GaugeMetricFamily("mageflow_swarms", "Unfinished swarms by state", labels=[_P, "state"]),
            prefix,
            snap.swarms,
        ),
        _by(
            CounterMetricFamily("mageflow_swarms_finished", "Finished swarms by outcome", labels=[_P, "outcome"]),
            prefix,
            snap.swarms_finished_total,
        ),
        _by(
            GaugeMetricFamily("mageflow_members", "Members of unfinished swarms by state", labels=[_P, "state"]),
            prefix,
            snap.members,
        ),
        admitted,
        _by(
            CounterMetricFamily("mageflow_members_finished", "Members finished by outcome", labels=[_P, "outcome"]),
            prefix,
            snap.members_finished_total,
        ),
        handoff,
        in_use,
        limit,
        _by(
            CounterMetricFamily("mageflow_reaper_actions", "Reaper actions by kind", labels=[_P, "action"]),
            prefix,
            snap.reaper_actions_total,
        ),
    ]


def collector(app: Celery) -> SwarmCollector:
    """A ``prometheus_client`` collector of the swarms of ``app`` (O2), for your own registry.

    Example:
        >>> registry = CollectorRegistry()
        >>> registry.register(collector(app))
    """
    return SwarmCollector(app)


def registry_for(app: Celery) -> CollectorRegistry:
    """A new registry holding only the swarms collector of ``app`` (what the dashboard's ``/metrics`` serves)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector(app))
    return registry


__all__ = ["SwarmCollector", "collector", "families", "registry_for"]

"""Signals for swarm transitions, so users can emit metrics.

Each is sent with ``sender=<swarm id>`` and keyword arguments ``app`` and ``name``;
``swarm_finished`` also sends ``state`` ("succeeded", "failed" or "cancelled").

Example:
    >>> from mageflow_celery.signals import swarm_finished
    >>> @swarm_finished.connect
    ... def on_done(sender, state, **kw):
    ...     statsd.incr(f"swarm.{state}")
"""

from __future__ import annotations

from celery.utils.dispatch import Signal

swarm_started = Signal(name="swarm_started", providing_args=["app", "name"])
swarm_closed = Signal(name="swarm_closed", providing_args=["app", "name"])
swarm_paused = Signal(name="swarm_paused", providing_args=["app", "name"])
swarm_resumed = Signal(name="swarm_resumed", providing_args=["app", "name"])
swarm_finished = Signal(name="swarm_finished", providing_args=["app", "name", "state"])

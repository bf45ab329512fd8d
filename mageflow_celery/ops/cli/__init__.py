"""The ``celery swarm`` command: list, inspect, watch and steer swarms.

Celery loads it through the ``celery.commands`` entry point, so once mageflow_celery is installed::

    celery -A proj swarm ls [--all] [--json]
    celery -A proj swarm show ID [--json]
    celery -A proj swarm watch ID
    celery -A proj swarm members ID [--state S] [--offset N] [--limit N] [--json]
    celery -A proj swarm pause ID | resume ID
    celery -A proj swarm cancel ID [--terminate] [--yes] | close ID [--yes]
    celery -A proj swarm reap
    celery -A proj swarm resize ID N
    celery -A proj swarm pool set NAME N [--rate 10/s] | pool ls [--json]
    celery -A proj swarm dashboard [--bind 127.0.0.1] [--port 5566] [--token T | --read-only]

Output is built on :mod:`mageflow_celery.ops.inspect` and :class:`~mageflow_celery.SwarmResult`, never on
raw keys. Results go to stdout, messages and errors to stderr. Exit codes: 0 success; 1 the watched
swarm failed or was cancelled, a confirmation was declined, or another mageflow error; 2 bad usage;
3 no swarm has that id; 69 the state Redis (or the broker) is unreachable; 130 ``watch`` interrupted (Ctrl-C).

Layer: ``ops`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from . import dashboard, pools, reading, steering
from ._group import (
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    EXIT_UNSUCCESSFUL,
    CommandError,
    StateUnavailableError,
    SwarmGroup,
    UnknownSwarmError,
    swarm,
)

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_UNAVAILABLE",
    "EXIT_UNSUCCESSFUL",
    "CommandError",
    "StateUnavailableError",
    "SwarmGroup",
    "UnknownSwarmError",
    "dashboard",
    "pools",
    "reading",
    "steering",
    "swarm",
]

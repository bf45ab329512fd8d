"""mageflow_celery: swarms for Celery.

A swarm is a group of Celery tasks run with a per-swarm concurrency limit, that accepts new tasks
while it runs until it is closed, stops after N failures, and then runs success or error callbacks
that receive the members' results.
"""

from __future__ import annotations

from ._version import __version__
from .canvas import Swarm, swarm
from .client import Mageflow, MageflowSignature
from .config import SwarmConfig
from .errors import (
    MageflowError,
    NotSerializableError,
    StateStoreError,
    SwarmCancelledError,
    SwarmClosedError,
    SwarmFailedError,
    SwarmNotFoundError,
    TooManyTasksError,
)
from .membership import SwarmMember
from .model import ReturnValue
from .result import SwarmProgress, SwarmResult
from .runtime import install

__all__ = [
    "__version__",
    # Canvas
    "Swarm",
    "SwarmMember",
    "swarm",
    "Mageflow",
    "MageflowSignature",
    "ReturnValue",
    # Configuration
    "SwarmConfig",
    # Worker integration
    "install",
    # Inspection
    "SwarmProgress",
    "SwarmResult",
    # Errors
    "MageflowError",
    "NotSerializableError",
    "StateStoreError",
    "SwarmCancelledError",
    "SwarmClosedError",
    "SwarmFailedError",
    "SwarmNotFoundError",
    "TooManyTasksError",
]

"""mageflow_celery: swarms for Celery.

A swarm is a group of Celery tasks run with a per-swarm concurrency limit, that accepts new tasks
while it runs until it is closed, stops after N failures, and then runs success or error callbacks
that receive the members' results. The package's layers are described in ``docs/architecture.md``.
"""

from __future__ import annotations

from ._version import __version__
from .client.canvas import Swarm, swarm
from .client.membership import SwarmMember
from .client.pools import PoolInfo, get_pool, list_pools, set_pool_limit
from .client.result import MemberInfo, SwarmProgress, SwarmResult
from .client.signing import MageflowSignature
from .config import SwarmConfig
from .engine.model import ReturnValue
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
from .install import install
from .seed import Mageflow

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
    "set_pool_limit",
    # Worker integration
    "install",
    # Inspection
    "MemberInfo",
    "SwarmProgress",
    "SwarmResult",
    "PoolInfo",
    "get_pool",
    "list_pools",
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

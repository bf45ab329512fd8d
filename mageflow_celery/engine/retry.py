"""Retrying state-store calls made by worker hooks and the reporter (R4).

Layer: ``engine`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..errors import MageflowError

logger = logging.getLogger("mageflow_celery")

#: Backoff between attempts of a failing state call, seconds.
RETRY_DELAYS_S = (0.05, 0.2, 0.5, 1.0, 2.0, 4.0)


def with_retries(what: str, fn: Any, *args: Any, delays: tuple[float, ...] = RETRY_DELAYS_S, **kwargs: Any) -> Any:
    """Call ``fn``, retrying state-store errors with backoff (``delays``, seconds); the last error propagates."""
    for delay in (*delays, None):
        try:
            return fn(*args, **kwargs)
        except MageflowError as exc:
            if delay is None:
                raise
            logger.warning("%s failed (%s); retrying in %.2fs", what, exc, delay)
            time.sleep(delay)

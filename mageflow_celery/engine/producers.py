"""Cheaper publishing of admitted members: one Redis client per kombu channel, and batched publishes.

kombu's Redis transport builds a new ``redis.Redis`` for every message it publishes (its constructor
fills a table of response callbacks: about 70 µs of CPU per message, a fifth of a publish). The
channels of the producers this package uses get a client they reuse while their connection pool stays
the same. Several members admitted at once are published in one kombu publish batch (kombu ≥ 5.7): one
round trip to the broker instead of one per member. Other transports publish as before.

Layer: ``engine`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_REUSING = "_mageflow_reuses_client"
#: Most publishes buffered before kombu flushes a batch (it flushes at the end anyway).
BATCH_MAX = 1000


def reuse_redis_client(producer: Any) -> None:
    """Have the producer's Redis channel reuse one client for its publishes (idempotent, per channel).
    Does nothing when the channel cannot be opened now (the publish reports the broker's error)."""
    try:
        channel = producer.channel
    except Exception:
        return
    if getattr(channel, _REUSING, False):
        return
    make = getattr(channel, "Client", None)
    if make is None or not type(channel).__module__.startswith("kombu.transport.redis"):
        return
    cached: list[Any] = []

    def client(**kwargs: Any) -> Any:
        pool = kwargs.get("connection_pool")
        if pool is None or pool is not getattr(channel, "_pool", None) or "credential_provider" in kwargs:
            return make(**kwargs)  # the consumer's async pool, a credential provider: as kombu does
        if not cached or cached[0].connection_pool is not pool:
            cached[:] = [make(**kwargs)]
        return cached[0]

    channel.Client = client
    setattr(channel, _REUSING, True)


def batches(producer: Any) -> bool:
    """Whether the producer's transport buffers publishes in a batch (kombu ≥ 5.7, Redis); ``False`` when
    the channel cannot be opened now."""
    try:
        channel = producer.channel
    except Exception:
        return False
    if not hasattr(producer, "batch") or getattr(channel, "create_publish_batch", None) is None:
        return False
    return bool(getattr(channel, "supports_batch_publish", True))


@contextlib.contextmanager
def batched(producer: Any, enabled: bool) -> Iterator[None]:
    """Publish everything in the block in one batch (sent when it ends; discarded if it raises)."""
    if not enabled:
        yield
        return
    with producer.batch(max_size=BATCH_MAX):
        yield

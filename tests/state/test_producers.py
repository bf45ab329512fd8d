"""engine.producers on a real Redis broker: a producer's channel reuses one Redis client while its connection
pool stays, and a batch publishes every message at its end (or none when it fails)."""

from __future__ import annotations

import kombu
import pytest
import redis
from celery import Celery

from mageflow_celery.engine.producers import batched, batches, reuse_redis_client

pytestmark = [pytest.mark.redis]
#: kombu 5.7 added publish batches; the oldest supported Celery (5.4) comes with kombu 5.6.
KOMBU_BATCHES = hasattr(kombu.Producer, "batch")


def test_a_channel_reuses_one_client_until_its_pool_changes(mageflow_app: Celery, mageflow_redis: redis.Redis) -> None:
    with mageflow_app.connection_for_write() as connection:
        producer = connection.Producer()  # a fresh channel, never patched before
        channel = producer.channel
        assert channel._create_client() is not channel._create_client()  # kombu: a new client per call

        reuse_redis_client(producer)
        reuse_redis_client(producer)  # idempotent
        first = channel._create_client()
        assert channel._create_client() is first
        # the consumer's asynchronous pool is left alone
        assert channel._create_client(asynchronous=True) is not channel._create_client(asynchronous=True)

        # a reconnect gives the channel a new pool: a new client follows it
        channel._pool = None
        second = channel._create_client()
        assert second is not first and second.connection_pool is channel._pool

        # and messages still reach the queue
        producer.publish({"n": 1}, routing_key="reuse-q", exchange="", serializer="json")
    assert mageflow_redis.llen("reuse-q") == 1


@pytest.mark.skipif(not KOMBU_BATCHES, reason=f"kombu {kombu.__version__} has no publish batches (5.7 added them)")
def test_a_batch_sends_its_messages_at_its_end(mageflow_app: Celery, mageflow_redis: redis.Redis) -> None:
    with mageflow_app.producer_or_acquire() as producer:
        assert batches(producer)
        with batched(producer, True):
            for n in range(3):
                producer.publish({"n": n}, routing_key="batch-q", exchange="", serializer="json")
            assert mageflow_redis.llen("batch-q") == 0  # buffered
        assert mageflow_redis.llen("batch-q") == 3

        with pytest.raises(RuntimeError), batched(producer, True):
            producer.publish({"n": 9}, routing_key="batch-q", exchange="", serializer="json")
            raise RuntimeError("a member could not be built")
    assert mageflow_redis.llen("batch-q") == 3  # the failed batch sent nothing


@pytest.mark.skipif(KOMBU_BATCHES, reason=f"kombu {kombu.__version__} has publish batches: the test above covers it")
def test_without_kombu_batches_every_message_is_sent_at_once(mageflow_app: Celery, mageflow_redis: redis.Redis) -> None:
    with mageflow_app.producer_or_acquire() as producer:
        assert not batches(producer)
        with batched(producer, False):  # what the dispatcher asks for when batches() is False
            producer.publish({"n": 0}, routing_key="batch-q", exchange="", serializer="json")
            assert mageflow_redis.llen("batch-q") == 1

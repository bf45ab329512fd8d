"""The ``RedisCluster`` test helper forms a working cluster, so Cluster-clean scripts can be tested."""

from __future__ import annotations

import pytest
import redis
import redis.cluster

from mageflow_celery.testing import RedisCluster

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_redis_cluster_forms_and_stores_keys_sharing_a_hash_tag() -> None:
    # Given a started three-master cluster
    with RedisCluster() as cluster:
        assert len(cluster.ports) == 3

        # Then every node reports an ok cluster
        for port in cluster.ports:
            node = redis.Redis(host="127.0.0.1", port=port)
            try:
                assert node.execute_command("CLUSTER INFO")["cluster_state"] == "ok"
            finally:
                node.close()

        # When keys with one hash tag are written by one script through a cluster client (as the state
        # scripts do; a script's keys must share a slot; redis-py < 6 has no cluster MULTI to test this with)
        client = redis.cluster.RedisCluster.from_url(cluster.url)
        try:
            client.eval(
                "redis.call('SET', KEYS[1], 'm'); return redis.call('RPUSH', KEYS[2], '0')",
                2,
                "mageflow:swarm:{s1}:meta",
                "mageflow:swarm:{s1}:queue",
            )

            # Then they live in one slot and read back
            assert client.keyslot("mageflow:swarm:{s1}:meta") == client.keyslot("mageflow:swarm:{s1}:queue")
            assert client.get("mageflow:swarm:{s1}:meta") == b"m"
            assert client.lrange("mageflow:swarm:{s1}:queue", 0, -1) == [b"0"]
        finally:
            client.close()

    # And the nodes are gone once it is stopped
    assert cluster.nodes == []

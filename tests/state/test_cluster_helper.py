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

        # When keys with one hash tag are written in one transaction through a cluster client
        client = redis.cluster.RedisCluster.from_url(cluster.url)
        try:
            with client.pipeline(transaction=True) as pipe:
                pipe.set("mageflow:swarm:{s1}:meta", "m")
                pipe.rpush("mageflow:swarm:{s1}:queue", "0")
                pipe.execute()

            # Then they live in one slot and read back
            assert client.keyslot("mageflow:swarm:{s1}:meta") == client.keyslot("mageflow:swarm:{s1}:queue")
            assert client.get("mageflow:swarm:{s1}:meta") == b"m"
            assert client.lrange("mageflow:swarm:{s1}:queue", 0, -1) == [b"0"]
        finally:
            client.close()

    # And the nodes are gone once it is stopped
    assert cluster.nodes == []

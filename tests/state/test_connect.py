"""``connect()`` against real servers: TLS, ACL users, Unix sockets, Sentinel (with a failover) and Cluster.

Each test starts the throwaway server it needs (``mageflow_celery.testing``), so what is proved is
what a deployment with that kind of Redis gets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
import redis.cluster
import trustme

from mageflow_celery.errors import MageflowError, StateStoreError
from mageflow_celery.state.connect import connect
from mageflow_celery.testing import (
    RedisCluster,
    RedisSentinel,
    RedisServer,
    RedisTLSServer,
    find_free_port,
    wait_for,
)

pytestmark = pytest.mark.redis

INCR_BY_SCRIPT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


def assert_works(client: redis.Redis, key: str = "mageflow:test:k") -> None:
    """SET/GET round-trip and a Lua script run on ``client``."""
    client.delete(key, f"{key}:n")
    assert client.set(key, "v1") is True
    assert client.get(key) == b"v1"
    assert client.eval(INCR_BY_SCRIPT, 1, f"{key}:n", 5) == 5  # type: ignore[no-untyped-call]
    assert client.eval(INCR_BY_SCRIPT, 1, f"{key}:n", 2) == 7  # type: ignore[no-untyped-call]


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as started:
        yield started


@pytest.fixture(scope="module")
def tls_server() -> Iterator[RedisTLSServer]:
    with RedisTLSServer() as started:
        yield started


def tls_url(server: RedisTLSServer, cert_reqs: str, ca: Path) -> str:
    return f"rediss://127.0.0.1:{server.port}/0?ssl_cert_reqs={cert_reqs}&ssl_ca_certs={quote(str(ca), safe='')}"


@pytest.fixture
def other_ca(tmp_path: Path) -> Path:
    """A CA file that did not sign the server's certificate."""
    path = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


# -- plain TCP and ACL ----------------------------------------------------------------------------------


def test_plain_url_gives_a_working_client_on_the_urls_database(server: RedisServer) -> None:
    # When connecting to database 3
    client = connect(f"redis://127.0.0.1:{server.port}/3")
    try:
        assert_works(client)
    finally:
        client.close()

    # Then the keys are in database 3, not 0
    raw = redis.Redis(host="127.0.0.1", port=server.port, db=3)
    try:
        assert raw.get("mageflow:test:k") == b"v1"
        assert raw.execute_command("SELECT", 0) and raw.dbsize() == 0  # type: ignore[no-untyped-call]
    finally:
        raw.close()


def test_acl_user_in_the_url_is_who_the_client_is(server: RedisServer) -> None:
    # Given an ACL user with a password that needs percent-encoding
    url = server.add_acl_user("swarm-worker", "p@ss:w/rd")

    # When connecting with its URL
    client = connect(url)
    try:
        # Then the server sees that user, and commands work
        assert client.acl_whoami() == "swarm-worker"
        assert_works(client)
    finally:
        client.close()


def test_acl_user_with_a_wrong_password_is_a_state_store_error_hiding_the_password(server: RedisServer) -> None:
    server.add_acl_user("swarm-worker", "right")

    with pytest.raises(StateStoreError, match="cannot reach the state Redis") as info:
        connect(f"redis://swarm-worker:wrong-secret@127.0.0.1:{server.port}/0")

    assert "wrong-secret" not in str(info.value)
    assert "swarm-worker:***@" in str(info.value)


def test_unix_socket_urls_in_redis_py_and_celery_spellings(tmp_path: Path) -> None:
    # Given a server that also listens on a Unix socket
    sock = tmp_path / "redis.sock"
    with RedisServer(extra_args=["--unixsocket", str(sock), "--unixsocketperm", "700"]) as server:
        # When connecting through the socket, in redis-py's and in Celery's spelling, each to its database
        for url, db in ((f"unix://{sock}?db=2", 2), (f"redis+socket://{sock}?virtual_host=4", 4)):
            client = connect(url)
            try:
                assert_works(client, key=f"mageflow:test:{db}")
            finally:
                client.close()

            # Then the keys landed in that database of the same server
            raw = redis.Redis(host="127.0.0.1", port=server.port, db=db)
            try:
                assert raw.get(f"mageflow:test:{db}") == b"v1"
            finally:
                raw.close()


# -- TLS ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cert_reqs", ["CERT_REQUIRED", "required"])
def test_rediss_with_celerys_ssl_cert_reqs_spellings_gives_a_working_client(
    tls_server: RedisTLSServer, cert_reqs: str
) -> None:
    # Given the server's own rediss URL, spelled the way Celery's backend accepts it
    assert tls_server.tls is not None
    url = tls_url(tls_server, cert_reqs, tls_server.tls.ca)

    # Then the client works over TLS (redis.Redis.from_url rejects CERT_REQUIRED)
    client = connect(url)
    try:
        assert_works(client)
    finally:
        client.close()


def test_helper_url_of_the_tls_server_works(tls_server: RedisTLSServer) -> None:
    client = connect(tls_server.url)
    try:
        assert_works(client, key="mageflow:test:helper")
    finally:
        client.close()


def test_a_ca_that_did_not_sign_the_server_fails_with_a_clear_error(tls_server: RedisTLSServer, other_ca: Path) -> None:
    with pytest.raises(StateStoreError, match="CERTIFICATE_VERIFY_FAILED.*not signed by ssl_ca_certs"):
        connect(tls_url(tls_server, "CERT_REQUIRED", other_ca))


@pytest.mark.parametrize("cert_reqs", ["CERT_NONE", "none"])
def test_cert_none_connects_whatever_the_ca(tls_server: RedisTLSServer, other_ca: Path, cert_reqs: str) -> None:
    # ssl_cert_reqs reaches the TLS layer: with verification off, the wrong CA does not matter
    client = connect(tls_url(tls_server, cert_reqs, other_ca))
    try:
        assert_works(client, key=f"mageflow:test:{cert_reqs}")
    finally:
        client.close()


def test_plain_redis_url_to_a_tls_port_is_a_state_store_error(tls_server: RedisTLSServer) -> None:
    with pytest.raises(StateStoreError, match="cannot reach the state Redis"):
        connect(f"redis://127.0.0.1:{tls_server.port}/0?socket_timeout=0.5")


def test_client_certificate_files_from_the_url_are_presented() -> None:
    # Given a server that requires a client certificate signed by its CA
    with RedisTLSServer(require_client_cert=True) as server:
        # Then its URL, which carries ssl_certfile and ssl_keyfile, works
        client = connect(server.url)
        try:
            assert_works(client)
        finally:
            client.close()

        # And without them the server refuses the connection
        assert server.tls is not None
        with pytest.raises(StateStoreError):
            connect(tls_url(server, "required", server.tls.ca))


# -- Sentinel -------------------------------------------------------------------------------------------


def test_sentinel_url_with_celerys_master_name_option_reaches_the_master() -> None:
    with RedisSentinel(master_name="swarm-state") as setup:
        # When connecting with the Sentinel URL and Celery's transport option
        client = connect(setup.url, {"master_name": "swarm-state"})
        try:
            assert_works(client)
        finally:
            client.close()

        # Then the data is on the master the Sentinel monitors
        master = setup.servers[0].client()
        try:
            assert master.get("mageflow:test:k") == b"v1"
        finally:
            master.close()


def test_sentinel_master_name_in_the_query_and_unknown_master() -> None:
    with RedisSentinel(master_name="m1") as setup:
        client = connect(f"{setup.url}?master_name=m1")
        try:
            assert client.ping()
        finally:
            client.close()

        with pytest.raises(StateStoreError, match=r"master 'nope'"):
            connect(setup.url, {"master_name": "nope"})


def test_unreachable_sentinel_is_a_state_store_error() -> None:
    port = find_free_port()

    with pytest.raises(StateStoreError, match=f"cannot reach the state Redis at sentinel://127.0.0.1:{port}"):
        connect(f"sentinel://127.0.0.1:{port}/0", {"master_name": "m"})


@pytest.mark.slow
def test_sentinel_client_follows_a_failover_to_the_promoted_replica() -> None:
    # Given a master with one replica, and a client connected through the Sentinel
    with RedisSentinel(replicas=1) as setup:
        old_master, replica = setup.servers
        client = connect(setup.url, setup.transport_options)
        try:
            assert client.set("before", "1")
            assert client.wait(1, 5000) == 1  # replicated before the failover (replication is asynchronous)

            # When the Sentinel fails over to the replica and the old master goes away
            sentinel = setup.sentinel
            assert sentinel is not None
            probe = sentinel.client()
            try:
                assert probe.execute_command("SENTINEL", "FAILOVER", setup.master_name)  # type: ignore[no-untyped-call]
            finally:
                probe.close()
            wait_for(lambda: setup.master_port() == replica.port, timeout_s=20, message="the failover")
            old_master.stop()

            # Then the same client writes to the promoted replica
            wait_for(lambda: _try_set(client, "after", "2"), timeout_s=10, message="a write after the failover")
        finally:
            client.close()
        promoted = replica.client()
        try:
            assert promoted.info("replication")["role"] == "master"
            assert promoted.mget("before", "after") == [b"1", b"2"]
        finally:
            promoted.close()


def _try_set(client: redis.Redis, key: str, value: str) -> bool:
    try:
        return bool(client.set(key, value))
    except redis.ConnectionError:  # redis-py < 6 does not retry by itself: the next call reconnects
        return False


# -- Cluster --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_cluster_node_url_gives_a_cluster_client_and_db_other_than_0_is_refused() -> None:
    with RedisCluster() as cluster:
        client = connect(cluster.url)
        try:
            assert isinstance(client, redis.cluster.RedisCluster)
            assert_works(client, key="mageflow:swarm:{s1}:k")
        finally:
            client.close()

        with pytest.raises(MageflowError, match="a cluster has database 0 only"):
            connect(cluster.url.replace("/0", "/1"))


# -- the helpers themselves -----------------------------------------------------------------------------


def test_tls_and_sentinel_helpers_remove_their_processes_and_directories_on_stop() -> None:
    tls = RedisTLSServer().start()
    setup = RedisSentinel(replicas=1).start()
    servers = [tls, *setup.servers, setup.sentinel]
    dirs = [server.dir for server in servers if server is not None]
    assert len(dirs) == 4 and all(d is not None and d.is_dir() for d in dirs)

    tls.stop()
    setup.stop()

    assert not any(server.running for server in servers if server is not None)
    assert not any(d is not None and d.exists() for d in dirs)
    setup.stop()  # a second stop does nothing


def test_helpers_say_which_binary_is_missing() -> None:
    with pytest.raises(RuntimeError, match="'no-such-redis-server' was not found on PATH"):
        RedisSentinel(executable="no-such-redis-server").start()
    with pytest.raises(RuntimeError, match="'no-such-redis-server' was not found on PATH"):
        RedisTLSServer(executable="no-such-redis-server").start()
